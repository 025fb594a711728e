#!/usr/bin/env bash
# The Python realtime client (clients/python-realtime) against the release server:
#
#   clients/python-realtime/run.sh PATH_TO_DOORMAN_BINARY
#
# 1. keeps a venv at ${DOORMAN_PYREALTIME_VENV:-/var/tmp/doorman-pyrealtime-venv},
#    built from requirements.txt (rebuilt when that file changes);
# 2. checks that doorman_realtime/frames.py is what scripts/gen_frames.py makes of
#    ../../asyncapi.json (the frame types and the close-code table);
# 3. installs the package into the venv (no network: its one dependency is pinned in
#    requirements.txt) and runs the tests in tests/ against the binary, which they
#    start, restart, kill and freeze themselves on free ports.
# Closes with "python realtime: N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 PATH_TO_DOORMAN_BINARY" >&2
  exit 2
fi
export DOORMAN_BIN
DOORMAN_BIN="$(realpath "$1")"
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../scripts/lib.sh"
venv="${DOORMAN_PYREALTIME_VENV:-/var/tmp/doorman-pyrealtime-venv}"
ensure_python_venv "$venv" "$here/requirements.txt"

echo "== doorman_realtime/frames.py is current with asyncapi.json"
"$venv/bin/python" "$here/scripts/gen_frames.py" --check

echo "== install the package"
# Built in a copy: setuptools leaves build/ and *.egg-info beside the sources.
work="$(mktemp -d)"
on_exit rm -rf "$work"
cp -r "$here/pyproject.toml" "$here/README.md" "$here/doorman_realtime" "$work/"
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
  --force-reinstall "$work"
"$venv/bin/pip" check --disable-pip-version-check >/dev/null

echo "== the client against the release server"
# From an empty directory, so that the installed package is imported, not the sources
# beside the tests (pytest's settings come from pyproject.toml all the same).
mkdir "$work/run"
cd "$work/run"
"$venv/bin/python" -m pytest -p no:cacheprovider --rootdir "$here" -c "$here/pyproject.toml" \
  --import-mode=importlib -v -rfE "$here/tests"
