#!/usr/bin/env bash
# The realtime SDK as its users get it: the tarball `npm pack` writes, installed into a
# fresh project, never the source tree.
#
#   clients/realtime/package-test.sh PATH_TO_DOORMAN_BINARY
#
# 1. copies the files git knows of clients/realtime and asyncapi.json (committed, staged
#    or new and not ignored, as they are in the work tree) into a temporary checkout:
#    no node_modules, no lib/, what a fresh clone has;
# 2. runs every code block of README.md, in order, as written, in an empty project
#    directory (scripts/readme.mjs), with the variables the README names: it builds the
#    tarball in the copy (npm ci, npm pack), installs it, compiles chat.ts with
#    tsc --strict and runs it against a fresh release server, and writes index.html;
# 3. checks the tarball: built JavaScript and .d.ts, no sources, no tests;
# 4. from the project: (a) package-test/node.mjs against the server; (b) tsc --strict
#    on TypeScript that uses the package (package-test/types.mjs); (c) Chromium loading
#    the README's page and package-test/page.html from a page server on another origin
#    (package-test/browser.mjs), against the server and a second one whose access
#    cookies live 2 s.
# Ports 18730 (doorman), 18731 (the pages), 18732 (the short-lived doorman). Each part
# closes with a "…: N passed, N failed" line; the script fails if any part failed.
set -euo pipefail
if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 PATH_TO_DOORMAN_BINARY" >&2
  exit 2
fi
export DOORMAN_BIN
DOORMAN_BIN="$(realpath "$1")"
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd -- "$here/../.." && pwd)"
source "$root/scripts/lib.sh"
ensure_node_modules "$root/e2e"  # playwright-core, for (c)

work="$(mktemp -d)"
on_exit rm -rf "$work"
checkout="$work/checkout"
project="$work/project"
mkdir -p "$checkout" "$project"
(
  cd "$root"
  git ls-files -z --cached --others --exclude-standard -- clients/realtime asyncapi.json |
    while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -
) | tar -xf - -C "$checkout"

port=18730 page_port=18731 short_port=18732
doorman="http://127.0.0.1:$port"
short="http://127.0.0.1:$short_port"
start_doorman "$port" "$work/server.log" \
  DOORMAN_ALLOWED_ORIGINS="http://127.0.0.1:$page_port" DOORMAN_LOGIN_PER_MINUTE=1000
start_doorman "$short_port" "$work/server-short.log" \
  DOORMAN_ALLOWED_ORIGINS="http://127.0.0.1:$page_port" DOORMAN_LOGIN_PER_MINUTE=1000 \
  DOORMAN_ACCESS_TTL_SECONDS=2

# The README's account: a fresh user, as its reader registers on the demo page.
email="readme-$$-$(date +%s)@example.test"
password="readme password"
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\"}" "$doorman/api/auth/register"

status=0
echo "== README.md, every block in order, in an empty project"
DOORMAN_CHECKOUT="$checkout" DOORMAN_URL="$doorman" DOORMAN_EMAIL="$email" DOORMAN_PASSWORD="$password" \
  node "$here/scripts/readme.mjs" "$checkout/clients/realtime/README.md" "$project" || status=1

echo "== the tarball"
tarball="$checkout/clients/realtime/$(node -p 'const p = require(process.argv[1]); `${p.name.replace(/^@/, "").replace("/", "-")}-${p.version}.tgz`' "$here/package.json")"
passed=0 failed=0
check() {  # check NAME COMMAND...: one line, counted
  local name="$1"
  shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
listing="$work/listing"
tar -tzf "$tarball" >"$listing" 2>/dev/null || true
for f in lib/index.js lib/index.d.ts lib/generated/frames.js lib/generated/frames.d.ts bundle/doorman-realtime.js package.json README.md; do
  check "$(basename "$tarball") holds $f" grep -qx "package/$f" "$listing"
done
no_sources() {
  ! grep -qE '^package/(src|test|dist|scripts|package-test|node_modules)/' "$listing" &&
    ! grep -E '\.ts$' "$listing" | grep -qv '\.d\.ts$'
}
check "it holds no sources, tests or build scripts" no_sources
installed_from_tarball() {
  tar -xzOf "$tarball" package/lib/index.js | cmp -s - "$project/node_modules/@doorman/realtime/lib/index.js"
}
check "the project's node_modules holds the tarball's lib/index.js" installed_from_tarball
echo "realtime package tarball: $passed passed, $failed failed"
[[ $failed -eq 0 ]] || status=1

cp "$here"/package-test/{node.mjs,types-node.ts,types-browser.ts,types-refused.ts,tsconfig.browser.json,page.html} "$project/"

echo "== (a) Node, from the project"
(cd "$project" && DOORMAN_URL="$doorman" node node.mjs) || status=1

echo "== (b) tsc --strict, from the project"
(cd "$project" && node "$here/package-test/types.mjs") || status=1

echo "== (c) Chromium, pages served from the project"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$chromium" ]]; then
  PROJECT="$project" PAGE_PORT="$page_port" DOORMAN_URL="$doorman" SHORT_URL="$short" CHROMIUM="$chromium" \
    node "$here/package-test/browser.mjs" || status=1
else
  echo "FAIL no Chromium at $chromium (apt-get install chromium chromium-driver)"
  echo "realtime package browser: 0 passed, 1 failed"
  status=1
fi
exit "$status"
