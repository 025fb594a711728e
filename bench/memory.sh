#!/usr/bin/env bash
# Memory of password hashing, and a login storm against the bounded hash queue.
#
# Starts a release doorman on a fresh SQLite file and prints its VmRSS: idle; after
# 100 registrations, eight at a time; after 240 logins, eight at a time; after 400
# sockets opened and closed (with doorman-bench beside the binary); the peak (VmHWM). Then fires 600 concurrent logins (two curl processes of 300 parallel
# transfers each, curl's own cap) and prints how many got 200/401/503 and the
# slowest answer.
#
#   bench/memory.sh [path/to/doorman]
#
# Default binary: $CARGO_TARGET_DIR/release/doorman (or target/release/doorman);
# build it first with `cargo build --release`. Needs bash, curl, xargs, awk.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

DOORMAN_BIN=${1:-${CARGO_TARGET_DIR:-target}/release/doorman}
port=${PORT:-18777}
db=${DB:-/tmp/pw-bench.db}
base="http://127.0.0.1:$port"
password="correct horse battery"
work=$(mktemp -d)
on_exit rm -rf "$work"

rm -f "$db" "$db-wal" "$db-shm"
start_doorman "$port" "$work/server.log" DATABASE_URL="sqlite://$db?mode=rwc" \
    DOORMAN_LOGIN_PER_MINUTE=100000 DOORMAN_MAX_CONNECTIONS_PER_IP=100000 \
    DOORMAN_WS_MAX_SOCKETS_PER_USER=100000 DOORMAN_WS_HANDSHAKE_PER_SECOND=100000 \
    DOORMAN_WS_HANDSHAKE_BURST=100000
pid=$DOORMAN_PID

status_of() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
row() { printf '%-32s %6d KiB  %5.1f MiB\n' "$1" "$2" "$(awk -v k="$2" 'BEGIN{print k/1024}')"; }
# VmRSS at once, and again after the server's periodic malloc_trim (every 10 s).
rss() {
    row "$1" "$(status_of VmRSS)"
    sleep 11
    row "  ... 11 s later" "$(status_of VmRSS)"
}
# Runs curl for each line of stdin (a user number), `parallel` at a time, and
# prints a count per HTTP status.
post_each() {
    local path=$1 parallel=$2 body=$3
    xargs -P"$parallel" -I{} curl -s -o /dev/null -w '%{http_code}\n' \
        -H 'content-type: application/json' -d "$body" "$base$path" | sort | uniq -c |
        awk '{printf "%s %s  ", $2, $1} END {print ""}'
}

sleep 1
rss "idle"
printf '  register x100: '
seq 100 | post_each /api/auth/register 8 \
    "{\"email\":\"bench-{}@example.org\",\"password\":\"$password\"}"
rss "after 100 registrations (x8)"
printf '  login x240: '
seq 240 | awk '{print ($1 - 1) % 100 + 1}' | post_each /api/auth/login 8 \
    "{\"email\":\"bench-{}@example.org\",\"password\":\"$password\"}"
rss "after 240 logins (x8)"
# 400 authenticated sockets opened at once, pinged for a second, closed.
load="$(dirname "$DOORMAN_BIN")/doorman-bench"
if [ -x "$load" ]; then
    token=$(curl -fsS "$base/api/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"bench-1@example.org\",\"password\":\"$password\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    "$load" --server "$DOORMAN_BIN" ws-ping --url "ws://127.0.0.1:$port/ws" \
        --header "Authorization: Bearer $token" --sockets 400 --seconds 1 > "$work/sockets.log"
    sleep 1
    rss "after 400 sockets opened and closed"
else
    echo "  (no $load: cargo build --release -p bench for the sockets row)"
fi
row "peak (VmHWM)" "$(status_of VmHWM)"

# 600 concurrent logins with the right password, spread over the 100 users.
for half in 0 1; do
    for i in $(seq 300); do
        n=$(((half * 300 + i - 1) % 100 + 1))
        [ "$i" -gt 1 ] && printf 'next\n'
        printf 'url = "%s/api/auth/login"\n' "$base"
        printf 'header = "content-type: application/json"\n'
        printf 'data = "{\\"email\\":\\"bench-%d@example.org\\",\\"password\\":\\"%s\\"}"\n' \
            "$n" "$password"
        printf 'output = "/dev/null"\n'
        printf 'write-out = "%%{http_code} %%{time_total}\\n"\n'
    done >"$work/storm-$half.cfg"
done
curl -s --parallel --parallel-immediate --parallel-max 300 -K "$work/storm-0.cfg" \
    >"$work/storm-0.out" 2>/dev/null &
first=$!
curl -s --parallel --parallel-immediate --parallel-max 300 -K "$work/storm-1.cfg" \
    >"$work/storm-1.out" 2>/dev/null
wait "$first" || true
cat "$work"/storm-*.out | awk '
    { n[$1]++; total++; if ($2 > max[$1]) max[$1] = $2 }
    END {
        printf "600 concurrent logins: %d answers;", total
        for (s in n) printf " %s: %d (slowest %.2f s);", s, n[s], max[s]
        print ""
    }'
rss "after 600 concurrent logins"
row "peak (VmHWM)" "$(status_of VmHWM)"
