#!/usr/bin/env bash
# Browser end-to-end tests in Debian's headless Chromium against a fresh doorman.
# Usage: e2e/run.sh PATH_TO_DOORMAN_BINARY [SCREENSHOT_DIR]
set -euo pipefail
cd "$(dirname "$0")"
bin="$(realpath "$1")"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "browser: SKIPPED — no Chromium at $chromium (apt-get install chromium chromium-driver)"
  exit 0
fi
[ -d node_modules ] && cmp -s package-lock.json node_modules/.package-lock.json || npm ci --no-audit --no-fund

port=18700
export DOORMAN_PORT=$port PARTNER_PORT=18701 FOREIGN_PORT=18702
work="$(mktemp -d)"
DOORMAN_BIND="127.0.0.1:$port" DATABASE_URL="sqlite://$work/e2e.db?mode=rwc" \
  DOORMAN_ALLOWED_ORIGINS="http://127.0.0.1:$PARTNER_PORT" DOORMAN_LOGIN_PER_MINUTE=1000 \
  "$bin" > "$work/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
kill -0 "$pid"  # answering, and it is ours

SCREENSHOT_DIR="${2:-}" node browser.mjs
