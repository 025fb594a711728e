#!/usr/bin/env bash
# Fuzz the running server against the committed openapi.json with schemathesis
# (pinned in .ci/requirements-schemathesis.txt), authenticated with a Bearer token.
# Usage: .ci/schemathesis.sh PATH_TO_DOORMAN_BINARY [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
DOORMAN_BIN="$1"
seconds="${2:-60}"
venv="${DOORMAN_VENV:-/var/tmp/doorman-venv}"
port="${SCHEMATHESIS_PORT:-18081}"
base="http://127.0.0.1:$port"

ensure_python_venv "$venv" .ci/requirements-schemathesis.txt

work="$(mktemp -d)"
on_exit rm -rf "$work"
# The mail limits too: the fuzzer asks for many links to few addresses (they go to
# the outbox in the server's directory).
start_doorman "$port" "$work/server.log" DOORMAN_LOGIN_PER_MINUTE=100000 DOORMAN_MAIL_PER_ADDRESS_PER_HOUR=100000

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
