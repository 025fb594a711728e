#!/usr/bin/env bash
# Browser end-to-end tests in Debian's headless Chromium against a fresh doorman (and a
# third one for passkeys), and the cookie-tossing reproduction (issue 31) against a
# second one behind a TLS proxy.
# Usage: e2e/run.sh PATH_TO_DOORMAN_BINARY [SCREENSHOT_DIR]
set -euo pipefail
# Both paths are relative to the caller's directory (README: `e2e/run.sh target/release/doorman docs`).
DOORMAN_BIN="$(realpath "$1")"
screenshot_dir="${2:+$(realpath -m "$2")}"
cd "$(dirname "$0")"
source ../scripts/lib.sh
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "browser: SKIPPED — no Chromium at $chromium (apt-get install chromium chromium-driver)"
  exit 0
fi
ensure_node_modules .

port=18700
export DOORMAN_PORT=$port PARTNER_PORT=18701 FOREIGN_PORT=18702
# The second doorman believes it is https://app.example.test behind a TLS proxy (the
# proxy is cookie-tossing.mjs's own, on TLS_PORT, and forwards from 127.0.0.1).
export TLS_DOORMAN_PORT=18703 TLS_PORT=18704
# Passkeys need the page on a domain name (Chromium refuses WebAuthn on IP hosts, and
# the RP ID is the public URL's host): a third doorman that is http://localhost:PORT.
# Its log is read by the test (a signature-counter regression is logged).
export PASSKEY_PORT=18705
work="$(mktemp -d)"
on_exit rm -rf "$work"
# A short history (5 messages per room): the recovery scenario outruns it.
# Its mail goes to an outbox the mailed-links scenario reads (MAIL_DIR).
export MAIL_DIR="$work/mail"
start_doorman "$port" "$work/server.log" \
  DOORMAN_ALLOWED_ORIGINS="http://127.0.0.1:$PARTNER_PORT" DOORMAN_LOGIN_PER_MINUTE=1000 \
  DOORMAN_HISTORY_SIZE=5 DOORMAN_MAIL_DIR="$MAIL_DIR"
start_doorman "$TLS_DOORMAN_PORT" "$work/server-tls.log" \
  DOORMAN_PUBLIC_URL="https://app.example.test:$TLS_PORT" DOORMAN_TRUSTED_PROXIES=127.0.0.1 \
  DOORMAN_LOGIN_PER_MINUTE=1000
# A short step-up window, so the passkey scenario meets the step-up prompt for sure.
export PASSKEY_LOG="$work/server-passkey.log"
start_doorman "$PASSKEY_PORT" "$PASSKEY_LOG" \
  DOORMAN_PUBLIC_URL="http://localhost:$PASSKEY_PORT" DOORMAN_LOGIN_PER_MINUTE=1000 \
  DOORMAN_STEP_UP_SECONDS=3

# Both suites run even when the first fails; the script fails if either did.
status=0
SCREENSHOT_DIR="$screenshot_dir" node browser.mjs || status=1
node cookie-tossing.mjs || status=1
exit "$status"
