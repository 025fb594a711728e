#!/usr/bin/env bash
# Both generated API clients (clients/python, clients/ts) against one fresh doorman,
# then the realtime SDK (clients/realtime) and the Python realtime client
# (clients/python-realtime), whose tests start their own servers.
# Usage: clients/run.sh PATH_TO_DOORMAN_BINARY
# Each part prints its closing "…: N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
DOORMAN_BIN="${1:?usage: $0 PATH_TO_DOORMAN_BINARY}"

work="$(mktemp -d)"
on_exit rm -rf "$work"
start_doorman 18500 "$work/server.log" DOORMAN_LOGIN_PER_MINUTE=1000
clients/python/run.sh http://127.0.0.1:18500
clients/ts/run.sh http://127.0.0.1:18500
clients/realtime/run.sh "$DOORMAN_BIN"
clients/python-realtime/run.sh "$DOORMAN_BIN"
