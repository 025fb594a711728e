#!/usr/bin/env bash
# Type-checks and runs the TypeScript client flow against a running doorman.
#
#   clients/ts/run.sh BASE_URL        e.g. clients/ts/run.sh http://127.0.0.1:18600
#
# Works from any directory. Installs the pinned packages from package-lock.json
# (npm ci) when node_modules does not match the lockfile, generates
# src/generated/schema.d.ts from the repository's openapi.json, type-checks
# (strict), compiles to dist/ and runs dist/flow.js. Exits non-zero on any failure.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 BASE_URL" >&2
  exit 2
fi
base_url="$1"

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
source ../../scripts/lib.sh

spec="../../openapi.json"
[[ -f "$spec" ]] || { echo "run.sh: $here/$spec not found" >&2; exit 1; }

ensure_node_modules .

echo "== generate types from openapi.json"
rm -rf src/generated dist
npx --no-install openapi-typescript "$spec" --output src/generated/schema.d.ts

echo "== tsc --noEmit (strict)"
npx --no-install tsc --noEmit -p tsconfig.json

echo "== tsc (build to dist/)"
npx --no-install tsc -p tsconfig.json

echo "== flow against $base_url"
node dist/flow.js "$base_url"
