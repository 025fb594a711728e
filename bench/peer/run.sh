#!/usr/bin/env bash
# Start the reference peer (FastAPI) on 127.0.0.1:PORT with its data in DATA_DIR.
#
#   bench/peer/run.sh DATA_DIR PORT
#
# The venv lives at ${DOORMAN_PEER_VENV:-/var/tmp/doorman-peer-venv} and is
# (re)built when missing or when requirements.txt changed. A DATA_DIR without
# peer.db is set up first (setup.py prints an access token on stdout); mint more
# with: "$VENV/bin/python" bench/peer/setup.py DATA_DIR --token
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 DATA_DIR PORT" >&2
    exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../scripts/lib.sh"
DATA_DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
PORT="$2"
VENV="${DOORMAN_PEER_VENV:-/var/tmp/doorman-peer-venv}"
PYTHON="${DOORMAN_PEER_PYTHON:-$(command -v python3.11 || command -v python3)}"

ensure_python_venv "$VENV" "$HERE/requirements.txt" "$PYTHON"

if [[ ! -f "$DATA_DIR/peer.db" ]]; then
    "$VENV/bin/python" "$HERE/setup.py" "$DATA_DIR"
fi

export PEER_DATA_DIR="$DATA_DIR"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ left in the work tree
# websockets-sansio is uvicorn's current implementation on the websockets
# library (what --ws auto picks); the legacy "websockets" one is deprecated.
exec "$VENV/bin/uvicorn" app:app --app-dir "$HERE" \
    --workers 2 --loop uvloop --http httptools --ws "${DOORMAN_PEER_WS:-websockets-sansio}" \
    --host 127.0.0.1 --port "$PORT" --log-level warning
