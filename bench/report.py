"""Turns bench/run.sh's measurements into the table of docs/benchmarks.md.

Usage: report.py RESULTS MODE SECONDS IDLE_SOCKETS CHURN_SECONDS CALLGRIND_DIR CALLGRIND_N
                 ROUND_SECONDS ROUNDS HANDSHAKE_ROUNDS
Prints the tables; in `full` mode also writes docs/benchmarks.md.
"""

import datetime
import os
import subprocess
import sys

path, mode, seconds, idle, churn, cg_dir, cg_n, round_s, rounds, hs_rounds = sys.argv[1:11]
r = {}
for line in open(path):
    key, _, value = line.strip().partition("=")
    try:
        r[key] = float(value)
    except ValueError:
        r[key] = value


def ratio(a, b):
    try:
        return r[a] / r[b]
    except (KeyError, ZeroDivisionError, TypeError):
        return float("nan")


def verdict(ok):
    return "met" if ok else "**missed**"


rows = []

# What the measurements say about the misses: written from this commit's runs.
ANALYSIS = """## Where the misses come from

- **WebSocket rows against the peer** (req/s) are measured with a Rust client on the
  same two cores: a handshake or a round trip costs the client about as much as it
  costs doorman, so the client caps doorman's figure while the Python peer is slow
  enough to be measured almost unhindered. The CPU-per-operation table reads the
  servers alone.
- **`/api/me` against doorman's own `/healthz`** (req/s, an earlier issue's target):
  authentication is real work on top of a request that is already at the floor, and
  the rate follows the server's CPU: in the CPU table `/api/me` costs 1.2–1.3× what
  `/healthz` costs, so it serves about 0.8× as many requests. Issue 14 set the target
  for the same work against the floor serving the same bytes (≤ 1.3×), and that row
  is met.
- **50,000 idle sockets**: this machine's hard open-file limit (`ulimit -Hn`) is
  20,000 and the sandbox withholds `CAP_SYS_RESOURCE`, so neither the server nor the
  client may raise it (`prlimit` is refused); one process cannot hold more than about
  19,900 sockets here. The row measures as many as the limit allows, over four source
  addresses; the memory per socket is flat in the count (see the hand-written notes).
- **Fan-out CPU and latency**: the floor — bare poem writing the same frame to the
  same sockets — costs about as much per delivery, and most of it is kernel time:
  one `write` per socket per message, which on loopback also runs the receiving
  socket's TCP path. Ten thousand such writes take over 100 ms of CPU on these cores,
  shared with the 10,000 client sockets reading them, so neither 1.5 µs per delivery
  nor 50 ms for the last subscriber is reachable by any server on this machine; what
  doorman adds is the difference to the floor in the same row."""


def row(work, measured, target, ok):
    rows.append(f"| {work} | {measured} | {target} | {verdict(ok)} |")




def num(key):
    try:
        return float(r[key])
    except (KeyError, TypeError, ValueError):
        return float("nan")


def us(key):
    spread = r.get("cpu_range_" + key)
    if isinstance(spread, str) and len(set(spread.split("-"))) > 1:
        lo, _, hi = spread.partition("-")
        return f"{num('cpu_' + key):.1f} µs [{float(lo):.1f}–{float(hi):.1f}]"
    return f"{num('cpu_' + key):.1f} µs"


def per_s(key):
    v = num(key)
    return "–" if v != v else f"{v:,.0f}/s"


# Server CPU per operation: doorman against the floor (the same poem serving the
# same bytes, no auth) and the FastAPI peer (all its worker processes).
cpu_rows = []


def paired(a, b):
    """The median of a's per-round ratios to b (the verdict), else the ratio of medians."""
    v = num(f"paired_{a}_{b}")
    return v if v == v else ratio("cpu_" + a, "cpu_" + b)


def paired_cell(a, b):
    """Three decimals: the verdict reads this figure, not a rounding of it."""
    medians = ratio("cpu_" + a, "cpu_" + b)
    v = num(f"paired_{a}_{b}")
    if v != v:
        return f"**{medians:.3f}×** (medians; no paired figure)"
    cell = f"**{v:.3f}×**"
    spread = r.get(f"paired_range_{a}_{b}")
    if isinstance(spread, str) and len(set(spread.split("-"))) > 1:
        lo, _, hi = spread.partition("-")
        cell += f" [{float(lo):.2f}–{float(hi):.2f}]"
    return cell + f"; medians {medians:.2f}×"


def cpu_row(work, d, f, p, targets):
    """targets: (label, ok) pairs; d, f, p: result keys (None where no such server)."""
    cells = []
    for key in (d, f, p):
        cells.append("–" if key is None else f"{us(key)} ({per_s(key)})")
    x_peer = ratio("cpu_" + p, "cpu_" + d) if p else float("nan")
    ok = all(t[1] for t in targets)
    cpu_rows.append(
        f"| {work} | {cells[0]} | {cells[1]} | {cells[2]} | "
        f"{paired_cell(d, f) if f else '–'} | "
        f"{'–' if x_peer != x_peer else f'**{x_peer:.1f}×** less'} | "
        f"{'; '.join(t[0] for t in targets)} | {verdict(ok)} |"
    )


x = paired("healthz_doorman", "healthz_floor")
cpu_row("`GET /healthz`", "healthz_doorman", "healthz_floor", "healthz_peer", [("≤ 1.2× floor", x <= 1.2)])
for source in ("bearer", "cookie"):
    d = f"me_{source}_doorman"
    x = paired(d, "me_floor")
    px = ratio(f"cpu_me_{source}_peer", "cpu_" + d)
    targets = [("≤ 1.3× floor", x <= 1.3), ("≥ 12× less than peer", px >= 12)]
    if source == "cookie":
        c = paired(d, "me_bearer_doorman")
        targets.append((f"within 10% of bearer ({c:.3f}×; medians {ratio('cpu_' + d, 'cpu_me_bearer_doorman'):.2f}×)", c <= 1.1))
    cpu_row(f"`GET /api/me` ({source})", d, "me_floor", f"me_{source}_peer", targets)
x = paired("host_bare", "host_floor")
cpu_row("a host's `GET /api/orders` with `Authenticated` (bearer), the extractor alone", "host_bare", "host_floor",
        None, [("≤ 1.1× its poem-openapi floor", x <= 1.1)])
# The same operation behind the edge and the guarded listener (`Doorman::serve`):
# the work of doorman's `/api/me` row (request ids, bounds, security headers,
# deadlines), held to that row's bound.
x = paired("host_doorman", "host_floor")
cpu_row("the same behind `Doorman::serve` (edge + guarded listener)", "host_doorman", "host_floor", None,
        [("≤ 1.3× its poem-openapi floor, as `/api/me`", x <= 1.3)])
for source in ("bearer", "cookie"):
    d = f"ws_handshake_{source}_doorman"
    x = paired(d, "ws_handshake_floor")
    cpu_row(f"WS handshake + welcome ({source})", d, "ws_handshake_floor", f"ws_handshake_{source}_peer",
            [("≤ 1.1× floor", x <= 1.1)])
x = paired("ws_ping_doorman", "ws_ping_floor")
cpu_row("WS ping/pong (50 sockets)", "ws_ping_doorman", "ws_ping_floor", "ws_ping_peer", [("≤ 1.1× floor", x <= 1.1)])
if "cpu_ws_publish_history" in r:
    x = paired("ws_publish_history", "ws_publish_plain")
    cpu_row("WS publish into a room with history (SQLite; 8 sockets, each its own room, its echo awaited); "
            "the floor column: the same doorman with `DOORMAN_HISTORY_SIZE=0`",
            "ws_publish_history", "ws_publish_plain", None, [("≤ 1.5× a publish without history", x <= 1.5)])

cpu_table = "\n".join(
    [
        "| work | doorman | floor | peer | doorman ÷ floor, paired | peer ÷ doorman | target | |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *cpu_rows,
    ]
)

# Instructions per request (callgrind), and where they go.
ir_rows = []
for work, d, f in (
    ("`GET /healthz`", "healthz_doorman", "healthz_floor"),
    ("`GET /api/me` (bearer)", "me_bearer_doorman", "me_floor"),
    ("`GET /api/me` (cookie)", "me_cookie_doorman", "me_floor"),
    ("a host's `GET /api/orders` with `Authenticated` (bearer), the extractor alone", "host_bare", "host_floor"),
    ("the same behind `Doorman::serve` (edge + guarded listener)", "host_doorman", "host_floor"),
    ("WS handshake + welcome + close (bearer)", "ws_handshake_doorman", "ws_handshake_floor"),
    ("WS ping/pong (one socket)", "ws_ping_doorman", "ws_ping_floor"),
):
    ir_rows.append(
        f"| {work} | {num('ir_' + d):,.0f} | {num('ir_' + f):,.0f} | **{ratio('ir_' + d, 'ir_' + f):.2f}×** |"
    )
ir_table = "\n".join(
    ["| work | doorman Ir/operation | floor Ir/operation | doorman ÷ floor |", "| --- | --- | --- | --- |", *ir_rows]
)


def breakdown(name):
    try:
        lines = open(os.path.join(cg_dir, f"breakdown-{name}.txt")).read().splitlines()[1:]
    except OSError:
        return {}
    return {k: float(v) for k, v in (l.split("\t") for l in lines)}


def breakdown_table(d, f):
    bd, bf = breakdown(d), breakdown(f)
    groups = sorted(set(bd) | set(bf), key=lambda g: -max(bd.get(g, 0), bf.get(g, 0)))[:12]
    rows = [f"| {g} | {bd.get(g, 0):,.0f} | {bf.get(g, 0):,.0f} | {bd.get(g, 0) - bf.get(g, 0):+,.0f} |" for g in groups]
    return "\n".join(["| self cost by crate | doorman Ir/request | floor Ir/request | difference |",
                      "| --- | --- | --- | --- |", *rows])


breakdown_me = breakdown_table("me_bearer_doorman", "me_floor")
breakdown_healthz = breakdown_table("healthz_doorman", "healthz_floor")
breakdown_handshake = breakdown_table("ws_handshake_doorman", "ws_handshake_floor")

for source in ("bearer", "cookie"):
    own = ratio(f"me_{source}_doorman", "healthz_doorman")
    peer = ratio(f"me_{source}_doorman", f"me_{source}_peer")
    row(
        f"`GET /api/me` ({source})",
        f"doorman {r[f'me_{source}_doorman']:,.0f} req/s, own `/healthz` {r['healthz_doorman']:,.0f}, "
        f"peer {r[f'me_{source}_peer']:,.0f} → **{own:.2f}×** own healthz, **{peer:.1f}×** peer",
        "≥ 0.9× own healthz, ≥ 10× peer",
        own >= 0.9 and peer >= 10,
    )
for source in ("cookie", "bearer"):
    x = ratio(f"ws_handshake_{source}_doorman", f"ws_handshake_{source}_peer")
    row(
        f"WS handshake + welcome ({source})",
        f"doorman {r[f'ws_handshake_{source}_doorman']:,.0f}/s, peer {r[f'ws_handshake_{source}_peer']:,.0f}/s → **{x:.1f}×**",
        "≥ 10× peer",
        x >= 10,
    )
x = ratio("ws_ping_doorman", "ws_ping_peer")
row(
    "WS ping/pong (50 sockets)",
    f"doorman {r['ws_ping_doorman']:,.0f}/s, peer {r['ws_ping_peer']:,.0f}/s → **{x:.1f}×**",
    "≥ 5× peer",
    x >= 5,
)
x = ratio("me_p99_ms_with_logins", "me_p99_ms_alone")
row(
    "`GET /api/me` p99 while logins run flat out",
    f"{r['me_p99_ms_alone']:.2f} ms alone, {r['me_p99_ms_with_logins']:.2f} ms with "
    f"{r['logins_per_s']:.1f} logins/s → **{x:.2f}×**",
    "≤ 2× without logins",
    x <= 2,
)
q = r["pg_queries"] / r["pg_requests"] if r.get("pg_requests") else float("nan")
row(
    "database queries per authenticated request (PostgreSQL, steady state)",
    f"{int(r['pg_queries'])} transactions for {int(r['pg_requests']):,} requests → **{q:.5f}** per request; "
    f"`/api/me` right after logout: {int(r['pg_status_right_after_logout'])}",
    "0, while revocation still refuses at once",
    q < 0.001 and int(r["pg_status_right_after_logout"]) == 401,
)
change = (r["rss_after_churn_kib"] - r["rss_after_warmup_kib"]) * 100 / r["rss_after_warmup_kib"]
row(
    f"server RSS after {int(float(churn))} s of handshake churn",
    f"{r['rss_after_warmup_kib']:,.0f} KiB after warm-up → {r['rss_after_churn_kib']:,.0f} KiB "
    f"({int(r['churn_handshakes']):,} handshakes) → **{change:+.1f}%**",
    "within 5%",
    abs(change) <= 5,
)

table = "\n".join(
    ["| work | measured | target | |", "| --- | --- | --- | --- |", *rows]
)

# Scale (issue 14, items 4 and 5).
scale = []


def scale_row(work, measured, target, ok):
    scale.append(f"| {work} | {measured} | {target} | {verdict(ok)} |")


n_idle = int(num("idle_sockets")) if num("idle_sockets") == num("idle_sockets") else int(float(idle))
limit = int(num("open_file_limit")) if num("open_file_limit") == num("open_file_limit") else 0
held_at_limit = limit and n_idle >= limit - 1000
scale_row(
    f"idle authenticated sockets on one instance ({n_idle:,}, over 4 source addresses)",
    f"**{num('idle_socket_kib'):.2f} KiB** server RSS each"
    + (f"; {n_idle:,} is what the hard open-file limit here ({limit:,}) lets one process hold" if held_at_limit and n_idle < 50000 else ""),
    "50,000 sockets at ≤ 8 KiB each",
    n_idle >= 50000 and num("idle_socket_kib") <= 8,
)
fan, pubs = int(num("fanout_subscribers") or 0), int(num("fanout_publishes") or 0)
d_cpu, f_cpu = num("fanout_cpu_doorman"), num("fanout_cpu_floor")
scale_row(
    f"one publish to {fan:,} subscribers: server CPU per delivered message",
    f"doorman **{d_cpu:.2f} µs** ({num('fanout_sys_doorman'):.2f} of it in the kernel), "
    f"floor {f_cpu:.2f} µs ({num('fanout_sys_floor'):.2f} in the kernel) → **{d_cpu / f_cpu:.2f}×** floor",
    "≤ 1.5 µs",
    d_cpu <= 1.5,
)
scale_row(
    f"… every subscriber served (the last of {fan:,}, p99 over {pubs} publishes)",
    f"doorman **{num('fanout_last_p99_ms_doorman'):.0f} ms** (p50 {num('fanout_last_p50_ms_doorman'):.0f}), "
    f"floor {num('fanout_last_p99_ms_floor'):.0f} ms (p50 {num('fanout_last_p50_ms_floor'):.0f}); "
    f"delivered {int(num('fanout_delivered_doorman')):,} of {fan * pubs:,}",
    "≤ 50 ms",
    num("fanout_last_p99_ms_doorman") <= 50,
)
if "cluster_logout_p99_ms" in r:
    scale_row(
        "logout on one instance → its socket on the other closed (1,000 sockets open on each, PostgreSQL NOTIFY)",
        f"p50 {num('cluster_logout_p50_ms'):.1f} ms, **p99 {num('cluster_logout_p99_ms'):.1f} ms**, "
        f"max {num('cluster_logout_max_ms'):.1f} ms",
        "p99 ≤ 20 ms over 100 trials",
        num("cluster_logout_p99_ms") <= 20,
    )
if "cluster_nats_logout_p99_ms" in r:
    scale_row(
        "… the same over the NATS bus",
        f"p50 {num('cluster_nats_logout_p50_ms'):.1f} ms, **p99 {num('cluster_nats_logout_p99_ms'):.1f} ms**, "
        f"max {num('cluster_nats_logout_max_ms'):.1f} ms",
        "p99 ≤ 20 ms over 100 trials",
        num("cluster_nats_logout_p99_ms") <= 20,
    )
if "cluster_notify_msgs_per_s" in r:
    best = max(num("cluster_notify_msgs_per_s"), num("cluster_nats_msgs_per_s") if "cluster_nats_msgs_per_s" in r else 0)
    measured = (
        f"PostgreSQL NOTIFY **{num('cluster_notify_msgs_per_s'):,.0f}/s** delivered on B, "
        f"{int(num('cluster_notify_msgs_lost'))} lost, {num('cluster_notify_cpu_us_per_msg'):.1f} µs "
        "of both servers' CPU per message"
    )
    if "cluster_nats_msgs_per_s" in r:
        measured += f", NATS **{num('cluster_nats_msgs_per_s'):,.0f}/s**"
    scale_row(
        "room messages between two instances, at the ceiling",
        measured,
        "measured; if below 20,000/s, an optional NATS bus",
        best >= 20000,
    )
scale_table = "\n".join(["| work | measured | target | |", "| --- | --- | --- | --- |", *scale])
print()
print(cpu_table)
print()
print(ir_table)
print()
print(breakdown_me)
print()
print(scale_table)
print()
print(table)

MARK = "<!-- Below this line: hand-written sections, kept as they are by bench/report.py. -->"

if mode == "full":
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    try:
        old = open("docs/benchmarks.md").read()
        kept = old[old.index(MARK) + len(MARK):] if MARK in old else ""
    except OSError:
        kept = ""
    doc = f"""# Benchmarks

Measured by `bench/run.sh` on {datetime.date.today()} at commit `{commit}`, on this
project's machine: {os.cpu_count()} cores ({cpu}), the servers, the load generators
and PostgreSQL all sharing them. Every ratio compares figures taken in the same run:
the verdicts against the floor, per-round ratios of figures taken seconds apart.

- **doorman**: release build, SQLite (the PostgreSQL row uses its own instance),
  `RUST_LOG=warn`.
- **floor**: `doorman-floor` (`bench/src/floor.rs`), the same poem version with no
  authentication, no request scope and no logging, serving the bytes doorman served in
  this run: `/healthz` and the exact `/api/me` response (status, headers, body) captured
  from doorman, and on `/ws` the captured `welcome` frame and `pong` frames byte for
  byte. What doorman costs above it is doorman's own work.
- **peer**: the reference FastAPI design in `bench/peer/` (one dependency reading the
  cookie or Bearer header from Starlette's `HTTPConnection`, sessions in SQLite, PyJWT
  with Ed25519, `uvicorn --workers 2` with uvloop and httptools).
- HTTP load: `wrk -t2 -c32 -d{round_s}s` (p99 rows: `-t1 -c8 --latency -d{seconds}s`). WebSocket
  load: `doorman-bench` (`bench/src/main.rs`): 32 concurrent handshake loops; ping/pong
  over 50 open sockets; idle memory is server RSS growth divided by sockets; churn is 32
  handshake loops for the stated time.
- Rows compared with the floor run in {rounds} interleaved rounds of {round_s} s, the
  WebSocket rows in {hs_rounds} (their CPU figures are the noisiest: mostly kernel work
  on both servers). The order of each compared pair flips every round (bearer, floor,
  cookie, then cookie, floor, bearer), so each order runs in half the rounds. Each
  figure is the median of its rounds, with the range of the CPU figures in brackets.
  **Each ratio to the floor, and cookie to bearer, is judged by the median of its
  per-round ratios** (each round's two figures taken seconds apart), with their
  range in brackets; the ratio of the two medians is shown beside it. Single rounds
  of the same server differ by up to 15 % here, and two medians taken over minutes
  can differ by as much with no change in the code; a round's two halves share most
  of that drift. The peer runs one round.
- **Server CPU per operation**: user + system time of the server's processes
  (`/proc/<pid>/stat`, the peer's master and both workers) read before and after each
  load, divided by the operations served (for WebSockets read by `doorman-bench`
  around the timed stretch only). The load generator shares the two cores, so
  requests per second mostly measure the client; CPU per operation does not.
- **Instructions per operation**: `bench/callgrind.sh` runs doorman and the floor under
  `valgrind --tool=callgrind`, warms each up, then counts {int(cg_n):,} sequential
  operations (requests on one connection, WebSocket handshakes with their close, pings
  on one socket; counters zeroed before, dumped after) less an idle stretch of the
  same length. Exact and repeatable where CPU time is not; it counts user-space
  instructions only: the kernel's share (the same system calls per request for both
  servers, checked with `strace -c`) is not in it.

## Server CPU per operation

{cpu_table}

## Instructions per operation (callgrind)

{ir_table}

Where they go, self cost per request grouped by the crate a function's symbol names
(`bench/callgrind_breakdown.py`; generic code counts for the crate whose type it
instantiates):

`GET /api/me` (bearer):

{breakdown_me}

`GET /healthz`:

{breakdown_healthz}

WebSocket handshake + welcome + close:

{breakdown_handshake}

## Scale

{scale_table}

- **Idle sockets**: `doorman-bench idle-memory` starts a fresh doorman, opens the
  sockets with a Bearer token from 127.0.0.2–127.0.0.5 (each source address has its
  own ephemeral ports), and divides the server's RSS growth by their number.
- **Fan-out**: `doorman-bench fanout` against the running doorman and against the
  floor (whose `/ws` keeps one room: a `subscribe` adds the socket's queue, a `publish`
  sends a `message` frame of doorman's shape and length through every queue, each
  socket written by its own task as in doorman). Each subscriber notes when each
  message arrived; the publisher waits until all have it, pauses 50 ms, publishes the
  next. Server CPU is read around the publishes and divided by the deliveries; the
  kernel's share is the system time, which on loopback includes the receiving
  socket's TCP work.

## Throughput, memory and latency (earlier issues' targets)

{table}

{ANALYSIS}

Reproduce: `bench/run.sh` (about twelve minutes). CI runs `bench/run.sh --smoke`, one
second per scenario and callgrind on 50 requests, so the harness keeps working; it
asserts nothing about speed.

{MARK}{kept}"""
    with open("docs/benchmarks.md", "w") as f:
        f.write(doc)
    print("\nwrote docs/benchmarks.md")
