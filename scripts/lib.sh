# shellcheck shell=bash
# Shared by the repository's shell scripts; source it, don't run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
#
# Every function is safe under `set -euo pipefail`: it fails (non-zero) only when what
# it was asked for cannot be had, and it never reads an unset variable. Messages about
# installing things go to stderr, so a script's stdout stays what its caller parses.

# Sourced twice in one shell (a script sourcing a script), the cleanup list must survive.
[[ -n "${_DOORMAN_LIB_SOURCED:-}" ]] && return 0
_DOORMAN_LIB_SOURCED=1

# A CI heading.
step() { printf '\n=== %s\n' "$*"; }

# on_exit CMD [ARG...]: run CMD when the script exits, however it exits (bash runs the
# EXIT trap on errors and on SIGTERM too). Cleanups run last-registered first, so a
# server is stopped before its directory is removed. Scripts use this instead of their
# own `trap ... EXIT`, which would replace every other cleanup.
_on_exit=()
on_exit() { _on_exit+=("$(printf '%q ' "$@")"); }
_run_on_exit() {
  local i
  set +e  # one failing cleanup must not skip the others
  for ((i = ${#_on_exit[@]} - 1; i >= 0; i--)); do eval "${_on_exit[i]}"; done
  return 0  # bash keeps the script's own exit status (a failing trap would re-run it)
}
trap _run_on_exit EXIT

# wait_http URL [TRIES]: poll URL until it answers 2xx, 0.2 s apart (default 50 tries,
# 10 s). Fails with a message when it never does.
wait_http() {
  local url="$1" tries="${2:-50}" i
  for ((i = 0; i < tries; i++)); do
    curl -fs --max-time 2 -o /dev/null "$url" && return 0
    sleep 0.2
  done
  echo "not ready after $tries tries: $url" >&2
  return 1
}

# stop_process PID: SIGTERM, then wait for it and return its exit status. A process
# that ignores SIGTERM for 10 s gets SIGKILL, so a cleanup cannot hang. Only a child of
# this shell is signalled: a pid that has already exited (stopped earlier, or died on
# its own) may since belong to another process. For one that is gone this returns its
# remembered exit status (or 127), quietly.
stop_process() {
  local pid="$1" i
  if [[ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$pid/status" 2>/dev/null)" == "$BASHPID" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    # bash reaps its children as they exit, so `kill -0` fails once this one has.
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid"
  else
    wait "$pid" 2>/dev/null
  fi
}

# start_doorman PORT LOG [NAME=VALUE...]
# Starts $DOORMAN_BIN on 127.0.0.1:PORT, stdout and stderr to LOG, with the NAME=VALUE
# pairs added to its environment, its working directory a fresh temporary directory
# ($DOORMAN_DIR). Unless a DATABASE_URL pair is given, the server uses its default,
# doorman.db in that directory: a fresh SQLite database, and the README's run command.
# Waits for /readyz, then checks that the process is still alive: another server
# already listening on PORT would answer /readyz just as well. Sets DOORMAN_PID; the
# server is stopped (stop_process) and its directory removed when the script exits.
start_doorman() {
  local port="$1" log="$2" bin dir pair
  shift 2
  bin="${DOORMAN_BIN:-}"
  [[ -x "$bin" ]] || { echo "start_doorman: DOORMAN_BIN='$bin' is not an executable" >&2; return 1; }
  bin="$(realpath "$bin")"
  for pair in "$@"; do
    [[ "$pair" == [A-Za-z_]*=* ]] || { echo "start_doorman: not NAME=VALUE: $pair" >&2; return 1; }
  done
  dir="$(mktemp -d)"
  on_exit rm -rf "$dir"
  # exec: the pid we record is the server's own, not a subshell's.
  (cd "$dir" && exec env -u DATABASE_URL DOORMAN_BIND="127.0.0.1:$port" DOORMAN_DRAIN_SECONDS=0 "$@" "$bin") >"$log" 2>&1 &
  DOORMAN_PID=$!
  DOORMAN_DIR="$dir"
  on_exit stop_process "$DOORMAN_PID"
  if ! wait_http "http://127.0.0.1:$port/readyz" || ! kill -0 "$DOORMAN_PID" 2>/dev/null; then
    echo "doorman did not start on port $port (or another process answers there); its log:" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}

# ensure_python_venv DIR REQUIREMENTS [PYTHON]: a venv at DIR with REQUIREMENTS
# installed. Rebuilt from scratch when missing or when the requirements file changed
# since the last build (its sha256 is stored in the venv; written last, so a build
# that was interrupted is redone). Refuses to replace a directory that is not a venv.
ensure_python_venv() {
  local venv="$1" req="$2" python="${3:-python3}" want
  want="$(sha256sum <"$req" | cut -d' ' -f1)"
  if [[ -x "$venv/bin/python" && "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" == "$want" ]]; then
    return 0
  fi
  if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]]; then
    echo "ensure_python_venv: $venv exists and is not a venv; refusing to replace it" >&2
    return 1
  fi
  echo "building the Python venv $venv from $req" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  echo "$want" >"$venv/.requirements.sha256"
}

# ensure_smtp_sink: Python with aiosmtpd for the mail tests' loopback SMTP server
# (tests/smtp/sink.py), in a venv built from tests/smtp/requirements.txt; exports
# DOORMAN_TEST_PYTHON (that venv's python) and DOORMAN_TEST_SMTP=required, so a
# test run that cannot start the server fails instead of skipping the SMTP tests.
ensure_smtp_sink() {
  local venv="${DOORMAN_SMTP_VENV:-/var/tmp/doorman-smtp-venv}" root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  ensure_python_venv "$venv" "$root/tests/smtp/requirements.txt"
  export DOORMAN_TEST_PYTHON="$venv/bin/python" DOORMAN_TEST_SMTP=required
}

# ensure_node_modules DIR: `npm ci` in DIR unless node_modules holds exactly the
# packages of DIR/package-lock.json. npm ci records what it installed in
# node_modules/.package-lock.json; that file is not byte-identical to the lockfile (it
# has no root "" entry), so the packages are compared one by one: version and integrity.
ensure_node_modules() {
  local dir="$1" installed="$1/node_modules/.package-lock.json"
  if [[ -f "$installed" ]] && node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).packages;
    const have = JSON.parse(fs.readFileSync(process.argv[2], "utf8")).packages;
    for (const [k, v] of Object.entries(want)) {
      if (k === "") continue;
      if (!have[k] || have[k].version !== v.version || have[k].integrity !== v.integrity) process.exit(1);
    }
    for (const k of Object.keys(have)) if (!(k in want)) process.exit(1);
  ' "$dir/package-lock.json" "$installed"; then
    return 0
  fi
  echo "npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
}

# ensure_apt COMMAND PACKAGE...: install PACKAGEs with apt-get (quietly) unless COMMAND
# is already on PATH. The package lists are updated once per run: the marker is
# exported, so scripts started by this one skip the update too.
ensure_apt() {
  local cmd="$1"
  shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "installing $* (apt-get) for $cmd" >&2
  if [[ -z "${DOORMAN_APT_UPDATED:-}" ]]; then
    apt-get update -qq
    export DOORMAN_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || { echo "ensure_apt: still no $cmd after installing $*" >&2; return 1; }
}

# ensure_postgres: a PostgreSQL server accepting connections on 127.0.0.1 (the one
# Debian's postgresql package installs; started if it is not running).
ensure_postgres() {
  pg_isready -h 127.0.0.1 >/dev/null 2>&1 && return 0
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  local i
  for ((i = 0; i < 30; i++)); do pg_isready -h 127.0.0.1 >/dev/null 2>&1 && return 0; sleep 1; done
  echo "ensure_postgres: PostgreSQL is not accepting connections on 127.0.0.1" >&2
  return 1
}
