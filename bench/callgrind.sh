#!/usr/bin/env bash
# Instructions per operation, counted by callgrind: exact and repeatable on a noisy
# machine, where CPU time is not. For doorman and the floor (bench/src/floor.rs,
# serving the bytes doorman served), each under `valgrind --tool=callgrind`:
# warm-up requests, then per operation a window of N sequential ones (requests on
# one connection, WebSocket handshakes, pings on one socket; counters zeroed
# before, dumped after) and an idle window of the same length (the timers that
# run anyway); Ir per operation = (window - idle) / N.
# Also writes, per window, the self cost grouped by crate (the breakdown in
# docs/benchmarks.md) and keeps the callgrind files for callgrind_annotate.
#
# Usage: bench/callgrind.sh RESULTS OUT_DIR N
#   RESULTS: key=value lines are appended (ir_<route>_<server>, ir_idle_…)
#   OUT_DIR: callgrind.out.* and breakdown-*.txt
# Needs DOORMAN_BIN, FLOOR_BIN and LOAD_BIN (release builds); with HOST_BIN
# (doorman-host, bench/src/host.rs) also a host app's operation and its floor.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
results="$1" out="$2" n="$3"
ensure_apt valgrind valgrind
mkdir -p "$out"
record() { echo "$1=$2" >> "$results"; echo "  $1 = $2"; }

DP=18810 FP=18811 HP=18812 HFP=18813
limits=(DOORMAN_WS_HANDSHAKE_PER_SECOND=1000000 DOORMAN_WS_HANDSHAKE_BURST=1000000
        DOORMAN_WS_MAX_SOCKETS_PER_USER=1000000 DOORMAN_WS_MESSAGES_PER_SECOND=1000000)
creds='{"email":"bench@example.org","password":"bench password"}'

# A database with a user, a session and a token, made natively (argon2 under
# valgrind would take minutes); the server under callgrind then opens the same file.
start_doorman "$DP" "$out/doorman-setup.log" RUST_LOG=warn
dir="$DOORMAN_DIR"
curl -fsS "http://127.0.0.1:$DP/api/auth/register" -H 'content-type: application/json' -d "$creds" >/dev/null
tok="$(curl -fsS "http://127.0.0.1:$DP/api/auth/login" -H 'content-type: application/json' -d "$creds" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
# The floor serves what doorman serves.
curl -fsS -i "http://127.0.0.1:$DP/healthz" > "$out/healthz.http"
curl -fsS -i -H "Authorization: Bearer $tok" "http://127.0.0.1:$DP/api/me" > "$out/me.http"
uid="$(curl -fsS -H "Authorization: Bearer $tok" "http://127.0.0.1:$DP/api/me" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["id"])')"
stop_process "$DOORMAN_PID" || true

# dump PID NAME: callgrind's counters since the last zeroing into $out/callgrind.NAME.
# Dumps are numbered .1, .2, … per process; callgrind_control returns once the
# dump is written, the loop is only a guard.
dumps=0
dump() {
  local i
  dumps=$((dumps + 1))
  callgrind_control -d "$1" >/dev/null 2>&1
  for ((i = 0; i < 100; i++)); do [[ -s "$out/callgrind.out.$1.$dumps" ]] && break; sleep 0.1; done
  mv "$out/callgrind.out.$1.$dumps" "$out/callgrind.$2"
}

# window NAME PID LOAD_ARGS...: Ir per operation of `doorman-bench LOAD_ARGS
# --count N`, less an idle window of the same length.
window() {
  local name="$1" pid="$2" t0 t1
  shift 2
  callgrind_control -z "$pid" >/dev/null 2>&1
  t0="$(date +%s.%N)"
  "$LOAD_BIN" "$@" --count "$n" >/dev/null
  t1="$(date +%s.%N)"
  dump "$pid" "$name"
  callgrind_control -z "$pid" >/dev/null 2>&1
  sleep "$(python3 -c "print($t1 - $t0)")"
  dump "$pid" "$name.idle"
  python3 bench/callgrind_breakdown.py "$out/callgrind.$name" "$out/callgrind.$name.idle" "$n" \
    > "$out/breakdown-$name.txt"
  record "ir_$name" "$(head -1 "$out/breakdown-$name.txt")"
}

# under_callgrind DIR PORT LOG [NAME=VALUE...] CMD...: starts CMD under callgrind in
# DIR with the NAME=VALUE pairs in its environment (and no DATABASE_URL from the
# caller), waits for its /healthz; sets CG_PID.
under_callgrind() {
  local dir="$1" port="$2" log="$3" envs=()
  shift 3
  while [[ "${1:-}" == [A-Za-z_]*=* ]]; do envs+=("$1"); shift; done
  (cd "$dir" && exec env -u DATABASE_URL "${envs[@]}" \
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" "$@") >"$log" 2>&1 &
  CG_PID=$!
  dumps=0
  on_exit stop_process "$CG_PID"
  wait_http "http://127.0.0.1:$port/healthz" 300
}

echo "== callgrind: doorman ($n requests per window)"
under_callgrind "$dir" "$DP" "$out/doorman-callgrind.log" DOORMAN_BIND="127.0.0.1:$DP" \
  DOORMAN_DRAIN_SECONDS=0 RUST_LOG=warn "${limits[@]}" "$(realpath "$DOORMAN_BIN")"
"$LOAD_BIN" requests --url "http://127.0.0.1:$DP/healthz" --count 200 >/dev/null
"$LOAD_BIN" requests --url "http://127.0.0.1:$DP/api/me" --header "Authorization: Bearer $tok" --count 200 >/dev/null
"$LOAD_BIN" requests --url "http://127.0.0.1:$DP/api/me" --header "Cookie: doorman_access=$tok" --count 200 >/dev/null
window healthz_doorman "$CG_PID" requests --url "http://127.0.0.1:$DP/healthz"
window me_bearer_doorman "$CG_PID" requests --url "http://127.0.0.1:$DP/api/me" --header "Authorization: Bearer $tok"
window me_cookie_doorman "$CG_PID" requests --url "http://127.0.0.1:$DP/api/me" --header "Cookie: doorman_access=$tok"
"$LOAD_BIN" welcome --url "ws://127.0.0.1:$DP/ws" --header "Authorization: Bearer $tok" > "$out/welcome.json"
"$LOAD_BIN" sequential --url "ws://127.0.0.1:$DP/ws" --header "Authorization: Bearer $tok" --count 20 >/dev/null
window ws_handshake_doorman "$CG_PID" sequential --url "ws://127.0.0.1:$DP/ws" --header "Authorization: Bearer $tok"
window ws_ping_doorman "$CG_PID" sequential --pings --url "ws://127.0.0.1:$DP/ws" --header "Authorization: Bearer $tok"
stop_process "$CG_PID" || true

echo "== callgrind: floor ($n requests per window)"
under_callgrind "$out" "$FP" "$out/floor-callgrind.log" "$(realpath "$FLOOR_BIN")" --bind "127.0.0.1:$FP" \
  --canned "/healthz=$out/healthz.http" --canned "/api/me=$out/me.http" --welcome "$out/welcome.json"
"$LOAD_BIN" requests --url "http://127.0.0.1:$FP/healthz" --count 200 >/dev/null
"$LOAD_BIN" requests --url "http://127.0.0.1:$FP/api/me" --count 200 >/dev/null
"$LOAD_BIN" sequential --url "ws://127.0.0.1:$FP/ws" --count 20 >/dev/null
window healthz_floor "$CG_PID" requests --url "http://127.0.0.1:$FP/healthz"
window me_floor "$CG_PID" requests --url "http://127.0.0.1:$FP/api/me" --header "Authorization: Bearer $tok"
window ws_handshake_floor "$CG_PID" sequential --url "ws://127.0.0.1:$FP/ws" --header "Authorization: Bearer $tok"
window ws_ping_floor "$CG_PID" sequential --pings --url "ws://127.0.0.1:$FP/ws" --header "Authorization: Bearer $tok"
stop_process "$CG_PID" || true

if [[ -n "${HOST_BIN:-}" ]]; then
  echo "== callgrind: a host app's operation with doorman's extractor, and its floor ($n requests per window)"
  # The host opens doorman's database with doorman's public URL: the token is its too.
  under_callgrind "$dir" "$HP" "$out/host-callgrind.log" DOORMAN_BIND="127.0.0.1:$HP" RUST_LOG=warn \
    DOORMAN_PUBLIC_URL="http://127.0.0.1:$DP" DOORMAN_DRAIN_SECONDS=0 "$(realpath "$HOST_BIN")"
  "$LOAD_BIN" requests --url "http://127.0.0.1:$HP/api/orders" --header "Authorization: Bearer $tok" --count 200 >/dev/null
  window host_doorman "$CG_PID" requests --url "http://127.0.0.1:$HP/api/orders" --header "Authorization: Bearer $tok"
  stop_process "$CG_PID" || true
  # The extractor alone: the handle attached with `.data()`, poem's listener.
  under_callgrind "$dir" "$HP" "$out/host-bare-callgrind.log" DOORMAN_BIND="127.0.0.1:$HP" RUST_LOG=warn \
    DOORMAN_PUBLIC_URL="http://127.0.0.1:$DP" DOORMAN_DRAIN_SECONDS=0 "$(realpath "$HOST_BIN")" --bare
  "$LOAD_BIN" requests --url "http://127.0.0.1:$HP/api/orders" --header "Authorization: Bearer $tok" --count 200 >/dev/null
  window host_bare "$CG_PID" requests --url "http://127.0.0.1:$HP/api/orders" --header "Authorization: Bearer $tok"
  stop_process "$CG_PID" || true
  under_callgrind "$out" "$HFP" "$out/host-floor-callgrind.log" "$(realpath "$HOST_BIN")" --floor \
    --bind "127.0.0.1:$HFP" --user-id "$uid"
  "$LOAD_BIN" requests --url "http://127.0.0.1:$HFP/api/orders" --header "Authorization: Bearer $tok" --count 200 >/dev/null
  window host_floor "$CG_PID" requests --url "http://127.0.0.1:$HFP/api/orders" --header "Authorization: Bearer $tok"
  stop_process "$CG_PID" || true
fi
