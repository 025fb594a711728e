#!/usr/bin/env bash
# The benchmark: doorman, the floor (bench/src/floor.rs: bare poem serving the bytes
# doorman serves) and the reference FastAPI peer (bench/peer) measured side by side
# in one run, on this machine. Every load row records requests per second and the
# server CPU time per operation (user + system time of the server's processes from
# /proc, read before and after, divided by the operations served); callgrind counts
# instructions per request (bench/callgrind.sh). Prints a table of absolute figures
# and ratios; a full run also writes docs/benchmarks.md. `--smoke` runs every
# scenario for about a second and callgrind on 50 requests (CI uses it so the
# harness cannot rot); it asserts nothing about speed.
#
# Usage: bench/run.sh [--smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
mode=full
[ "${1:-}" = --smoke ] && mode=smoke
# Idle sockets in a full run: 50,000, or as many as the hard open-file limit lets one
# process hold (each socket is a descriptor in the server and in the client).
max_fds="$(ulimit -Hn)"
[ "$max_fds" = unlimited ] && max_fds=1000000
if [ "$mode" = smoke ]; then S=1; RS=1; ROUNDS=1; HS_ROUNDS=1; IDLE=200; CHURN=2; WARM=1; CG=50; FAN=500; FANPUB=5
else S=10; RS=5; ROUNDS=6; HS_ROUNDS=8; IDLE=$(( max_fds - 1000 < 50000 ? max_fds - 1000 : 50000 )); CHURN=60; WARM=5; CG=2000
  FAN=10000; FANPUB=20; fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/doorman-target}"
cargo build -q --release -p doorman -p bench
ensure_apt wrk wrk
ensure_postgres
bin="$CARGO_TARGET_DIR/release/doorman"
DOORMAN_BIN="$bin"
load="$CARGO_TARGET_DIR/release/doorman-bench"
floor="$CARGO_TARGET_DIR/release/doorman-floor"
host="$CARGO_TARGET_DIR/release/doorman-host"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"
peer_venv="${DOORMAN_PEER_VENV:-/var/tmp/doorman-peer-venv}"

work="$(mktemp -d)"
on_exit rm -rf "$work"
results="$work/results"
record() { echo "$1=$2" >> "$results"; echo "  $1 = $2"; }

DP=18800; PP=18801; QP=18802; FP=18803; HP=18804; HFP=18805; HBP=18806; NP=18807
D="http://127.0.0.1:$DP"; P="http://127.0.0.1:$PP"
limits=(DOORMAN_LOGIN_PER_MINUTE=1000000 DOORMAN_WS_HANDSHAKE_PER_SECOND=1000000
        DOORMAN_WS_HANDSHAKE_BURST=1000000 DOORMAN_WS_MAX_SOCKETS_PER_USER=1000000
        DOORMAN_WS_MESSAGES_PER_SECOND=1000000 DOORMAN_MAX_CONNECTIONS_PER_IP=1000000
        DOORMAN_PUBLISH_PER_SECOND=1000000 DOORMAN_HISTORY_BYTES_PER_USER=4294967295 RUST_LOG=warn)

echo "== starting doorman (SQLite) and the FastAPI peer"
# The peer's venv is built here, in the foreground, so that a first run's pip install
# does not eat into the wait for the peer's /healthz below.
ensure_python_venv "$peer_venv" bench/peer/requirements.txt \
  "${DOORMAN_PEER_PYTHON:-$(command -v python3.11 || command -v python3)}"
# run.sh execs uvicorn: this pid is the peer's master process, its workers its children.
DOORMAN_PEER_VENV="$peer_venv" bench/peer/run.sh "$work/peer" "$PP" > "$work/peer.log" 2>&1 &
peer_pid=$!
on_exit stop_process "$peer_pid"
start_doorman "$DP" "$work/doorman.log" "${limits[@]}"
dpid=$DOORMAN_PID
wait_http "$P/healthz" 100 || { cat "$work/peer.log"; exit 1; }

creds='{"email":"bench@example.org","password":"bench password"}'
curl -fsS "$D/api/auth/register" -H 'content-type: application/json' -d "$creds" >/dev/null
token() { curl -fsS "$1/api/auth/login" -H 'content-type: application/json' -d "$creds" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'; }
dtok="$(token "$D")"
ptok="$("$peer_venv/bin/python" bench/peer/setup.py "$work/peer" --token)"

echo "== starting the floor with doorman's bytes"
curl -fsS -i "$D/healthz" > "$work/healthz.http"
curl -fsS -i -H "Authorization: Bearer $dtok" "$D/api/me" > "$work/me.http"
"$load" welcome --url "ws://127.0.0.1:$DP/ws" --header "Authorization: Bearer $dtok" > "$work/welcome.json"
"$floor" --bind "127.0.0.1:$FP" --canned "/healthz=$work/healthz.http" \
  --canned "/api/me=$work/me.http" --welcome "$work/welcome.json" > "$work/floor.log" 2>&1 &
fpid=$!
on_exit stop_process "$fpid"
F="http://127.0.0.1:$FP"
wait_http "$F/healthz"

echo "== starting a host app on doorman's library (bench/src/host.rs) and its poem-openapi floor"
# The host opens doorman's database (the bench user, its session, the signing keys)
# with doorman's public URL, so doorman's tokens are the host's too.
uid="$(curl -fsS -H "Authorization: Bearer $dtok" "$D/api/me" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["id"])')"
(cd "$DOORMAN_DIR" && exec env -u DATABASE_URL DOORMAN_BIND="127.0.0.1:$HP" DOORMAN_PUBLIC_URL="$D" \
  DOORMAN_DRAIN_SECONDS=0 "${limits[@]}" "$host") > "$work/host.log" 2>&1 &
hpid=$!
on_exit stop_process "$hpid"
# The same app with the extractor alone (`--bare`: the handle attached with
# `.data()`, poem's own listener, no edge): what the extractor costs by itself.
(cd "$DOORMAN_DIR" && exec env -u DATABASE_URL DOORMAN_BIND="127.0.0.1:$HBP" DOORMAN_PUBLIC_URL="$D" \
  DOORMAN_DRAIN_SECONDS=0 "${limits[@]}" "$host" --bare) > "$work/host-bare.log" 2>&1 &
hbpid=$!
on_exit stop_process "$hbpid"
"$host" --floor --bind "127.0.0.1:$HFP" --user-id "$uid" > "$work/host-floor.log" 2>&1 &
hfpid=$!
on_exit stop_process "$hfpid"
H="http://127.0.0.1:$HP"; HF="http://127.0.0.1:$HFP"; HB="http://127.0.0.1:$HBP"
wait_http "$H/healthz"
wait_http "$HF/healthz"
wait_http "$HB/healthz"
for host_url in "$H" "$HB"; do
  [ "$(curl -fsS -H "Authorization: Bearer $dtok" "$host_url/api/orders")" = "$(curl -fsS "$HF/api/orders")" ] ||
    { echo "the host ($host_url) and its floor answer differently"; exit 1; }
done

hz="$(getconf CLK_TCK)"
cpu_ticks() { "$load" cpu-ticks "${@/#/--pid=}" | value cpu_ticks; }
value() { awk -F': ' -v k="$1" '$1 == k { print $2 }'; }
p99_ms() { wrk -t1 -c8 -d"${S}s" --latency "$@" | awk '$1 == "99%" {
  v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
  printf "%.3f\n", v }'; }

# sample NAME PID http WRK_ARGS... | sample NAME PID ws SCENARIO ARGS...
# One measurement of NAME in round $round: operations per second and server CPU
# microseconds per operation of PID and its descendants, appended to $work/samples.
# `settle` records the median of each name's samples (NAME, cpu_NAME), the CPU range,
# and for each pair compared in the report the median of its per-round ratios.
sample() {
  local name="$1" pid="$2" kind="$3" before after out rate cpu
  shift 3
  if [ "$kind" = http ]; then
    before="$(cpu_ticks "$pid")"
    out="$(wrk -t2 -c32 -d"${RS}s" "$@")"
    after="$(cpu_ticks "$pid")"
    rate="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    cpu="$(awk -v t="$((after - before))" -v hz="$hz" '/ requests in / { printf "%.2f\n", t * 1e6 / hz / $1 }' <<<"$out")"
  else
    # doorman-bench reads the CPU around the timed stretch itself.
    out="$("$load" "$@" --seconds "$RS" --cpu-of "$pid")"
    rate="$(value ws_handshakes_per_s <<<"$out")$(value ws_pongs_per_s <<<"$out")$(value ws_publishes_per_s <<<"$out")"
    cpu="$(value server_cpu_us_per_op <<<"$out")"
  fi
  echo "$name $rate $cpu $round" >> "$work/samples"
  echo "  $name: $rate/s, $cpu µs CPU per operation"
}
settle() {
  local key value
  # Through a file, not a process substitution: a failure here must stop the run.
  python3 - "$work/samples" > "$work/settled" <<'PY'
import statistics, sys
samples, rounds = {}, {}
for line in open(sys.argv[1]):
    name, rate, cpu, round_ = line.split()
    samples.setdefault(name, []).append((float(rate), float(cpu)))
    rounds.setdefault(name, {})[round_] = float(cpu)
for name, s in samples.items():
    cpus = [c for _, c in s]
    print(f"{name}={statistics.median(r for r, _ in s)}")
    print(f"cpu_{name}={statistics.median(cpus)}")
    print(f"cpu_range_{name}={min(cpus)}-{max(cpus)}")
# Paired ratios: each round's doorman figure over the same round's floor figure,
# taken seconds apart. A burst of someone else's work or a slower stretch of the
# machine then lands on both halves of a ratio, not on one server's median.
PAIRS = [("healthz_doorman", "healthz_floor"), ("me_bearer_doorman", "me_floor"),
         ("me_cookie_doorman", "me_floor"), ("me_cookie_doorman", "me_bearer_doorman"),
         ("host_doorman", "host_floor"), ("host_bare", "host_floor"),
         ("ws_handshake_bearer_doorman", "ws_handshake_floor"),
         ("ws_handshake_cookie_doorman", "ws_handshake_floor"), ("ws_ping_doorman", "ws_ping_floor"),
         ("ws_publish_history", "ws_publish_plain")]
for a, b in PAIRS:
    both = sorted(set(rounds.get(a, {})) & set(rounds.get(b, {})) - {"0"})
    ratios = [rounds[a][k] / rounds[b][k] for k in both if rounds[b][k] > 0]
    if ratios:
        print(f"paired_{a}_{b}={statistics.median(ratios):.4f}")
        print(f"paired_range_{a}_{b}={min(ratios):.4f}-{max(ratios):.4f}")
PY
  while IFS='=' read -r key value; do record "$key" "$value"; done < "$work/settled"
  : > "$work/samples"
}

# Rows compared with the floor run in interleaved rounds, the order of each compared
# pair flipping every round (an even number of rounds, so each order runs equally
# often): single rounds of the same server differ by up to 15 % on this shared
# machine, and the one that goes first may find it warmer or colder. Each
# figure is the median of its rounds; each ratio to the floor is also taken round by
# round (see `settle`). The peer is slower by an order of magnitude; one round each.
# odd: true in odd rounds.
odd() { (( round % 2 )); }
echo "== HTTP (wrk, 2 threads, 32 connections, ${RS}s each, $ROUNDS rounds)"
for ((round = 1; round <= ROUNDS; round++)); do
  healthz=(healthz_doorman "$dpid" http "$D/healthz") healthz_floor=(healthz_floor "$fpid" http "$F/healthz")
  if odd; then sample "${healthz[@]}"; sample "${healthz_floor[@]}"
  else sample "${healthz_floor[@]}"; sample "${healthz[@]}"; fi
  # Bearer and cookie take turns going first, the floor between them: the cookie
  # row is judged against the bearer row as well as against the floor.
  bearer=(me_bearer_doorman "$dpid" http -H "Authorization: Bearer $dtok" "$D/api/me")
  cookie=(me_cookie_doorman "$dpid" http -H "Cookie: doorman_access=$dtok" "$D/api/me")
  # The floor's /api/me: the same request bytes as doorman's bearer row.
  me_floor=(me_floor "$fpid" http -H "Authorization: Bearer $dtok" "$F/api/me")
  if odd; then sample "${bearer[@]}"; sample "${me_floor[@]}"; sample "${cookie[@]}"
  else sample "${cookie[@]}"; sample "${me_floor[@]}"; sample "${bearer[@]}"; fi
  # A host's own operation with doorman's extractor, against the same operation in
  # poem-openapi without doorman (same request bytes, same JSON).
  # Once with the extractor alone, once behind doorman's edge and listener.
  host_op=(host_doorman "$hpid" http -H "Authorization: Bearer $dtok" "$H/api/orders")
  host_bare=(host_bare "$hbpid" http -H "Authorization: Bearer $dtok" "$HB/api/orders")
  host_floor=(host_floor "$hfpid" http -H "Authorization: Bearer $dtok" "$HF/api/orders")
  if odd; then sample "${host_bare[@]}"; sample "${host_floor[@]}"; sample "${host_op[@]}"
  else sample "${host_op[@]}"; sample "${host_floor[@]}"; sample "${host_bare[@]}"; fi
done
round=0
sample healthz_peer "$peer_pid" http "$P/healthz"
sample me_bearer_peer "$peer_pid" http -H "Authorization: Bearer $ptok" "$P/api/me"
sample me_cookie_peer "$peer_pid" http -H "Cookie: doorman_access=$ptok" "$P/api/me"
settle

# Sockets in more rounds than the rest: a handshake or a ping is mostly the kernel's
# work on both servers, so doorman's share is a small difference between two noisy
# figures (single 5 s rounds of the same server read 107-160 us on one machine).
echo "== WebSocket (doorman-bench, ${RS}s each; handshakes and pings $HS_ROUNDS rounds)"
hs() { sample "$1" "$2" ws ws-handshake --url "$3/ws" --header "$4"; }
ping() { sample "$1" "$2" ws ws-ping --url "$3/ws" --header "Authorization: Bearer $4" --sockets 50; }
for ((round = 1; round <= HS_ROUNDS; round++)); do
  bearer=(ws_handshake_bearer_doorman "$dpid" "ws://127.0.0.1:$DP" "Authorization: Bearer $dtok")
  cookie=(ws_handshake_cookie_doorman "$dpid" "ws://127.0.0.1:$DP" "Cookie: doorman_access=$dtok")
  hs_floor=(ws_handshake_floor "$fpid" "ws://127.0.0.1:$FP" "Authorization: Bearer $dtok")
  if odd; then hs "${bearer[@]}"; hs "${hs_floor[@]}"; hs "${cookie[@]}"
  else hs "${cookie[@]}"; hs "${hs_floor[@]}"; hs "${bearer[@]}"; fi
done
for ((round = 1; round <= HS_ROUNDS; round++)); do
  if odd; then ping ws_ping_doorman "$dpid" "ws://127.0.0.1:$DP" "$dtok"; ping ws_ping_floor "$fpid" "ws://127.0.0.1:$FP" "$dtok"
  else ping ws_ping_floor "$fpid" "ws://127.0.0.1:$FP" "$dtok"; ping ws_ping_doorman "$dpid" "ws://127.0.0.1:$DP" "$dtok"; fi
done
round=0
hs ws_handshake_bearer_peer "$peer_pid" "ws://127.0.0.1:$PP" "Authorization: Bearer $ptok"
hs ws_handshake_cookie_peer "$peer_pid" "ws://127.0.0.1:$PP" "Cookie: doorman_access=$ptok"
ping ws_ping_peer "$peer_pid" "ws://127.0.0.1:$PP" "$ptok"
settle

# Publishing with room history (the default) against the same doorman with history
# off: what storing, offsets and the write task cost per message (issue 33). Eight
# sockets, each in a room of its own, each publishing and awaiting its echo.
echo "== WebSocket publish with history and without (doorman-bench, ${RS}s each, $HS_ROUNDS rounds)"
start_doorman "$NP" "$work/doorman-plain.log" "${limits[@]}" DOORMAN_HISTORY_SIZE=0
npid=$DOORMAN_PID
N="http://127.0.0.1:$NP"
curl -fsS "$N/api/auth/register" -H 'content-type: application/json' -d "$creds" >/dev/null
ntok="$(token "$N")"
publish() { sample "$1" "$2" ws ws-publish --url "$3/ws" --header "Authorization: Bearer $4" --sockets 8; }
for ((round = 1; round <= HS_ROUNDS; round++)); do
  if odd; then publish ws_publish_history "$dpid" "ws://127.0.0.1:$DP" "$dtok"; publish ws_publish_plain "$npid" "ws://127.0.0.1:$NP" "$ntok"
  else publish ws_publish_plain "$npid" "ws://127.0.0.1:$NP" "$ntok"; publish ws_publish_history "$dpid" "ws://127.0.0.1:$DP" "$dtok"; fi
done
round=0
settle
stop_process "$npid" || true

echo "== fan-out: $FANPUB publishes, one at a time, to $FANPUB × $FAN subscribers (doorman, then the floor)"
fanout() {
  local name="$1" base="$2" pid="$3" out
  out="$("$load" fanout --base "$base" --token "$dtok" --cpu-of "$pid" \
    --subscribers "$FAN" --publishes "$FANPUB" --sources 4)"
  echo "$out" | sed 's/^/  /'
  record "fanout_cpu_$name" "$(value server_cpu_us_per_op <<<"$out")"
  record "fanout_sys_$name" "$(value server_sys_us_per_op <<<"$out")"
  record "fanout_last_p50_ms_$name" "$(value fanout_last_subscriber_p50_ms <<<"$out")"
  record "fanout_last_p99_ms_$name" "$(value fanout_last_subscriber_p99_ms <<<"$out")"
  record "fanout_delivered_$name" "$(value fanout_delivered <<<"$out" | awk '{ print $1 }')"
  sleep 1   # the subscribers' sockets close
}
fanout doorman "$D" "$dpid"
fanout floor "$F" "$fpid"
record fanout_subscribers "$FAN"
record fanout_publishes "$FANPUB"

echo "== idle sockets ($IDLE over 4 source addresses, a fresh doorman)"
"$load" --server "$bin" idle-memory --sockets "$IDLE" --sources 4 | tee "$work/idle"
record idle_socket_kib "$(awk '/per idle socket/ { print $(NF-1) }' "$work/idle")"
record idle_sockets "$IDLE"
record open_file_limit "$max_fds"

echo "== /api/me p99 (wrk, 1 thread, 8 connections) alone and while logins run flat out"
record me_p99_ms_alone "$(p99_ms -H "Authorization: Bearer $dtok" "$D/api/me")"
"$load" login-load --base "$D" --email bench@example.org --password "bench password" \
  --concurrency 8 --seconds "$((S + 1))" > "$work/logins" &
lpid=$!
sleep 0.3
record me_p99_ms_with_logins "$(p99_ms -H "Authorization: Bearer $dtok" "$D/api/me")"
wait "$lpid"
record logins_per_s "$(value logins_per_s < "$work/logins")"

echo "== database queries per authenticated request (doorman on PostgreSQL)"
qdb="doorman_bench_$$"
psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $qdb" -c "CREATE DATABASE $qdb"
start_doorman "$QP" "$work/doorman-pg.log" "${limits[@]}" DATABASE_URL="${PG_ADMIN_URL%/*}/$qdb"
qpid=$DOORMAN_PID
Q="http://127.0.0.1:$QP"
curl -fsS "$Q/api/auth/register" -H 'content-type: application/json' -d "$creds" >/dev/null
qtok="$(token "$Q")"
curl -fsS -o /dev/null -H "Authorization: Bearer $qtok" "$Q/api/me"   # warm the caches
xacts() { psql "$PG_ADMIN_URL" -Atc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$qdb'"; }
# pg_stat counters are flushed lazily; give them a moment before each reading.
sleep 1.2; before="$(xacts)"
requests="$(wrk -t2 -c32 -d"${S}s" -H "Authorization: Bearer $qtok" "$Q/api/me" | awk '/requests in/ { print $1 }')"
sleep 1.2; after="$(xacts)"
record pg_requests "$requests"
record pg_queries "$((after - before))"
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $qtok" "$Q/api/auth/logout"
record pg_status_right_after_logout "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $qtok" "$Q/api/me")"
stop_process "$qpid" || true
psql "$PG_ADMIN_URL" -qc "DROP DATABASE $qdb WITH (FORCE)"

echo "== RSS under handshake churn (${CHURN}s after ${WARM}s warm-up)"
"$load" churn --url "ws://127.0.0.1:$DP/ws" --header "Authorization: Bearer $dtok" \
  --pid "$dpid" --seconds "$CHURN" --warmup-seconds "$WARM" > "$work/churn"
record rss_after_warmup_kib "$(value rss_after_warmup_kib < "$work/churn")"
record rss_after_churn_kib "$(value rss_after_churn_kib < "$work/churn")"
record churn_handshakes "$(value churn_handshakes < "$work/churn")"

echo "== across two instances on PostgreSQL (bench/cluster.sh)"
if [ "$mode" = smoke ]; then bench/cluster.sh --smoke "$results"; else bench/cluster.sh "$results"; fi

echo "== instructions per request (callgrind, $CG requests per window)"
DOORMAN_BIN="$bin" FLOOR_BIN="$floor" LOAD_BIN="$load" HOST_BIN="$host" bench/callgrind.sh "$results" "$work/callgrind" "$CG"

python3 bench/report.py "$results" "$mode" "$S" "$IDLE" "$CHURN" "$work/callgrind" "$CG" "$RS" "$ROUNDS" "$HS_ROUNDS"
