#!/usr/bin/env bash
# The realtime SDK (clients/realtime) and the protocol document it is built on:
#
#   clients/realtime/run.sh PATH_TO_DOORMAN_BINARY
#
# 1. validates ../../asyncapi.json with the official @asyncapi/parser (no errors, no
#    warnings) and every message example against its payload schema;
# 2. generates src/generated/frames.ts from it and type-checks the SDK and its tests
#    (strict): the SDK cannot use a frame or field the document does not have;
# 3. checks that the committed browser bundle (bundle/doorman-realtime.js, inlined by
#    the demo page) is what the pinned esbuild builds from the source;
# 4. runs the Node tests against the release binary, which they start, restart,
#    kill and freeze themselves (ports 18650-18655, metrics 18660-18665); every
#    frame the clients receive is validated against the document;
# 5. package-test.sh: the package as its users get it (the tarball in a fresh project:
#    the README's blocks as written, Node, tsc --strict, Chromium; ports 18730-18732).
# Each part closes with a "…: N passed, N failed" line. Exits non-zero on any failure.
set -euo pipefail
if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 PATH_TO_DOORMAN_BINARY" >&2
  exit 2
fi
export DOORMAN_BIN
DOORMAN_BIN="$(realpath "$1")"
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
source ../../scripts/lib.sh

ensure_node_modules .

echo "== asyncapi.json: @asyncapi/parser and the examples"
node scripts/validate-asyncapi.mjs ../../asyncapi.json

echo "== frame types from asyncapi.json; tsc (strict)"
rm -rf src/generated dist
node scripts/frames.mjs ../../asyncapi.json src/generated/frames.ts
npx --no-install tsc -p tsconfig.json

echo "== the demo page's bundle is current"
node scripts/bundle.mjs --check

echo "== the SDK against the release server"
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./scripts/summary-reporter.mjs --test-reporter-destination=stdout \
  dist/test/realtime.test.js

echo "== the package as its users get it (npm pack, a fresh project)"
./package-test.sh "$DOORMAN_BIN"
