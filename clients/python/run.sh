#!/usr/bin/env bash
# Generate the Python client from openapi.json and run flow.py through it against a
# running server. Works from any directory.
#
# Usage: clients/python/run.sh BASE_URL      e.g. http://127.0.0.1:18500
#
# The venv (${DOORMAN_PYCLIENT_VENV:-/var/tmp/doorman-pyclient-venv}) is built from
# requirements.txt when missing or when requirements.txt changed. The client is
# generated into a temporary directory each run, installed into the venv, and the
# directory removed: no generated code lands in the repo.
#
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../scripts/lib.sh"
base_url="${1:?usage: $0 BASE_URL}"
spec="$here/../../openapi.json"
venv="${DOORMAN_PYCLIENT_VENV:-/var/tmp/doorman-pyclient-venv}"
ensure_python_venv "$venv" "$here/requirements.txt"

work="$(mktemp -d)"
on_exit rm -rf "$work"

cp "$spec" "$work/openapi.json"

# ruff (pinned in requirements.txt) must be on PATH for the generator's formatting
# hooks, or it warns, and --fail-on-warning turns any warning into a failure: a schema
# or operation the generator skips must fail the run, not vanish from the client.
echo "run.sh: generating the client (openapi-python-client $("$venv/bin/pip" show openapi-python-client | sed -n 's/^Version: //p'))"
(
  cd "$work"
  PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate \
    --path "$work/openapi.json" --output-path "$work/doorman-client" \
    --meta setup --fail-on-warning > "$work/generate.log" 2>&1
) || { cat "$work/generate.log"; echo "run.sh: client generation failed" >&2; exit 1; }

# Deps are pinned in requirements.txt and setuptools is there, so neither dependency
# resolution nor an isolated build env is needed.
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
  --force-reinstall "$work/doorman-client"
"$venv/bin/pip" check --disable-pip-version-check > /dev/null

"$venv/bin/python" "$here/flow.py" "$base_url"
