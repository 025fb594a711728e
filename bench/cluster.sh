#!/usr/bin/env bash
# Two release doorman instances on one throw-away PostgreSQL database (events between
# them over LISTEN/NOTIFY), measured by doorman-cluster-bench (bench/src/cluster.rs):
# logout on A → close (4403) on B, with background sockets open on both
# instances (p50/p99/max over the trials, from sending the logout to the close frame);
# and room messages published on A and delivered on B per second, at the ceiling (the
# publishers keep a window of messages in flight per room), with the messages lost, the
# publish → delivery latency and the CPU time of both servers per relayed message; then
# the same paced at DOORMAN_BENCH_RATE (default 10,000) messages a second.
#
# Usage: bench/cluster.sh [--smoke] [RESULTS_FILE]
#   --smoke       fewer sockets, trials and seconds (well under a minute)
#   RESULTS_FILE  `key=value` lines are appended to it
# Environment: PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/test),
# DOORMAN_BENCH_PORT (default 19100: the pair uses it and the next port),
# DOORMAN_BIN (default: the release build) to measure another build of the server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
mode=full
if [ "${1:-}" = --smoke ]; then mode=smoke; shift; fi
results="${1:-}"
if [ -n "$results" ]; then results="$(realpath "$results")"; fi
if [ "$mode" = smoke ]; then BG=100; TRIALS=20; SECONDS_=2; ROOMS=16
else BG=1000; TRIALS=100; SECONDS_=5; ROOMS=32; fi
RATE="${DOORMAN_BENCH_RATE:-10000}"  # messages a second for the paced run

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/doorman-target}"
cargo build -q --release -p doorman -p bench
ensure_postgres
# Two thousand sockets, both ends on this machine.
ulimit -n "$(ulimit -Hn)"
DOORMAN_BIN="${DOORMAN_BIN:-$CARGO_TARGET_DIR/release/doorman}"
bench="$CARGO_TARGET_DIR/release/doorman-cluster-bench"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"
port="${DOORMAN_BENCH_PORT:-19100}"

work="$(mktemp -d)"
on_exit rm -rf "$work"
record() {
  if [ -n "$results" ]; then echo "$1=$2" >> "$results"; fi
  printf '  %-34s %s\n' "$1" "$2"
}
value() { awk -F': ' -v k="$1" '$1 == k { print $2 }' "$2"; }
limits=(DOORMAN_LOGIN_PER_MINUTE=1000000 DOORMAN_WS_HANDSHAKE_PER_SECOND=1000000
        DOORMAN_WS_HANDSHAKE_BURST=1000000 DOORMAN_WS_MAX_SOCKETS_PER_USER=1000000
        DOORMAN_WS_MESSAGES_PER_SECOND=1000000 DOORMAN_MAX_CONNECTIONS_PER_IP=1000000
        DOORMAN_PUBLISH_PER_SECOND=1000000 RUST_LOG=warn)

# measure BUS KEY_PREFIX [NAME=VALUE...]: a fresh database, a pair on it, both scenarios.
measure() {
  local bus="$1" prefix="$2" db pa pb apid bpid
  shift 2
  db="doorman_cluster_bench_$$_$bus"
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $db"
  on_exit psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  pa=$port; pb=$((port + 1)); port=$((port + 2))
  local url="${PG_ADMIN_URL%/*}/$db"
  start_doorman "$pa" "$work/$bus-a.log" "${limits[@]}" "$@" \
    DATABASE_URL="$url?application_name=bench-a" DOORMAN_PUBLIC_URL=http://doorman.bench
  apid=$DOORMAN_PID
  start_doorman "$pb" "$work/$bus-b.log" "${limits[@]}" "$@" \
    DATABASE_URL="$url?application_name=bench-b" DOORMAN_PUBLIC_URL=http://doorman.bench
  bpid=$DOORMAN_PID
  local A="http://127.0.0.1:$pa" B="http://127.0.0.1:$pb"

  echo "== $bus: logout on A → close on B ($BG background sockets per instance, $TRIALS trials)"
  "$bench" --a "$A" --b "$B" logout --background "$BG" --trials "$TRIALS" > "$work/$bus-logout"
  record "cluster_${prefix}logout_p50_ms" "$(value logout_p50_ms "$work/$bus-logout")"
  record "cluster_${prefix}logout_p99_ms" "$(value logout_p99_ms "$work/$bus-logout")"
  record "cluster_${prefix}logout_max_ms" "$(value logout_max_ms "$work/$bus-logout")"

  echo "== $bus: room messages A → B ($ROOMS rooms, ${SECONDS_}s)"
  "$bench" --a "$A" --b "$B" throughput --rooms "$ROOMS" --seconds "$SECONDS_" \
    --cpu-of "$apid" --cpu-of "$bpid" > "$work/$bus-throughput"
  record "cluster_${bus}_msgs_per_s" "$(value msgs_per_s "$work/$bus-throughput")"
  record "cluster_${bus}_msgs_lost" "$(value msgs_lost "$work/$bus-throughput")"
  record "cluster_${bus}_cpu_us_per_msg" "$(value server_cpu_us_per_msg "$work/$bus-throughput")"
  record "cluster_${bus}_ceiling_p99_ms" "$(value latency_p99_ms "$work/$bus-throughput")"

  # The same at a set load (issue 33: at least 10,000 messages a second into
  # history rooms with p99 publish → delivery within 50 ms).
  echo "== $bus: room messages A → B at $RATE a second ($ROOMS rooms, ${SECONDS_}s)"
  "$bench" --a "$A" --b "$B" throughput --rooms "$ROOMS" --seconds "$SECONDS_" --rate "$RATE" \
    --cpu-of "$apid" --cpu-of "$bpid" > "$work/$bus-paced"
  record "cluster_${bus}_paced_msgs_per_s" "$(value msgs_per_s "$work/$bus-paced")"
  record "cluster_${bus}_paced_msgs_lost" "$(value msgs_lost "$work/$bus-paced")"
  record "cluster_${bus}_paced_p50_ms" "$(value latency_p50_ms "$work/$bus-paced")"
  record "cluster_${bus}_paced_p99_ms" "$(value latency_p99_ms "$work/$bus-paced")"
  record "cluster_${bus}_paced_cpu_us_per_msg" "$(value server_cpu_us_per_msg "$work/$bus-paced")"
  if grep -qiE 'panic|error' "$work/$bus-a.log" "$work/$bus-b.log"; then
    echo "   (server logs mention errors:)"; grep -hiE 'panic|error' "$work/$bus-a.log" "$work/$bus-b.log" | head -5
  fi
  stop_process "$apid" || true
  stop_process "$bpid" || true
}

measure notify ""
