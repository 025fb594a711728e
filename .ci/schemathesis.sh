#!/usr/bin/env bash
# Fuzz the running server against the committed openapi.json with schemathesis
# (pinned in .ci/requirements-schemathesis.txt), authenticated with a Bearer token.
# Usage: .ci/schemathesis.sh PATH_TO_DOORMAN_BINARY [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$1"
seconds="${2:-60}"
venv="${DOORMAN_VENV:-/var/tmp/doorman-venv}"
port=18081
base="http://127.0.0.1:$port"

if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/pip" freeze | grep -qxF -f .ci/requirements-schemathesis.txt; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r .ci/requirements-schemathesis.txt
fi

work="$(mktemp -d)"
DOORMAN_BIND="127.0.0.1:$port" DATABASE_URL="sqlite://$work/fuzz.db?mode=rwc" \
  DOORMAN_LOGIN_PER_MINUTE=100000 "$bin" > "$work/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.2; done
kill -0 "$pid"  # answering, and it is ours

creds='{"email":"fuzz@example.org","password":"fuzzing password"}'
curl -fsS "$base/api/auth/register" -H 'content-type: application/json' -d "$creds" >/dev/null
token="$(curl -fsS "$base/api/auth/login" -H 'content-type: application/json' -d "$creds" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"

# logout and revokeAllSessions would end the fuzzer's own session; the test suite
# covers them.
"$venv/bin/schemathesis" run openapi.json --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-operation-id logout --exclude-operation-id revokeAllSessions \
  --max-time "$seconds" --no-color

if grep -q '"level":"ERROR"\|ERROR' "$work/server.log"; then
  echo "the server logged errors during fuzzing:"
  grep 'ERROR' "$work/server.log" | head -20
  exit 1
fi
