#!/usr/bin/env bash
# Login latency with the hashing thread's Argon2 memory held and given back.
#
# Starts a release doorman on a fresh SQLite file, registers one user, and times logins
# with curl: 40 back to back (the hashing thread keeps its 19 MiB; the first five are
# dropped), then 20 each 1.5 s after the last (past the thread's one idle second, so
# each maps its memory again). Prints the median, p10 and p90 of each.
#
#   bench/login-latency.sh [path/to/doorman]
#
# Default binary: $CARGO_TARGET_DIR/release/doorman (or target/release/doorman).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

DOORMAN_BIN=${1:-${CARGO_TARGET_DIR:-target}/release/doorman}
port=${PORT:-18778}
base="http://127.0.0.1:$port"
work=$(mktemp -d)
on_exit rm -rf "$work"

start_doorman "$port" "$work/server.log" DATABASE_URL="sqlite://$work/latency.db?mode=rwc" \
    DOORMAN_LOGIN_PER_MINUTE=100000
body='{"email":"latency@example.org","password":"correct horse battery"}'
curl -fsS -o /dev/null -H 'content-type: application/json' -d "$body" "$base/api/auth/register"
login() {
    curl -fsS -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' \
        -d "$body" "$base/api/auth/login"
}
summary() {
    sort -n | awk '{ a[NR] = $1 } END {
        printf "median %.1f ms  p10 %.1f  p90 %.1f  (n = %d)\n",
            a[int(NR / 2) + 1] * 1000, a[int(NR / 10) + 1] * 1000, a[int(NR * 9 / 10)] * 1000, NR
    }'
}
printf 'back to back:  '
for _ in $(seq 40); do login; done | tail -n 35 | summary
printf '1.5 s apart:   '
for _ in $(seq 20); do sleep 1.5; login; done | summary
