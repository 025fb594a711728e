#!/usr/bin/env bash
# Type-checks and runs the TypeScript client flow against a running doorman.
#
#   clients/ts/run.sh BASE_URL        e.g. clients/ts/run.sh http://127.0.0.1:18600
#
# Works from any directory. Installs the pinned packages from package-lock.json
# (npm ci) when node_modules is missing or older than the lockfile, generates
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

spec="../../openapi.json"
[[ -f "$spec" ]] || { echo "run.sh: $here/$spec not found" >&2; exit 1; }

# npm ci records the lockfile it installed as node_modules/.package-lock.json;
# reinstall when that is missing or differs from the committed lockfile.
installed="node_modules/.package-lock.json"
if [[ ! -f "$installed" ]] || ! node -e '
  const fs = require("fs");
  const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
  const have = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).packages;
  for (const [k, v] of Object.entries(want)) {
    if (k === "") continue;
    if (!have[k] || have[k].version !== v.version || have[k].integrity !== v.integrity) process.exit(1);
  }
  for (const k of Object.keys(have)) if (!(k in want)) process.exit(1);
' "$installed"; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "== generate types from openapi.json"
rm -rf src/generated dist
npx --no-install openapi-typescript "$spec" --output src/generated/schema.d.ts

echo "== tsc --noEmit (strict)"
npx --no-install tsc --noEmit -p tsconfig.json

echo "== tsc (build to dist/)"
npx --no-install tsc -p tsconfig.json

echo "== flow against $base_url"
node dist/flow.js "$base_url"
