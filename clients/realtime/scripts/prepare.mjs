// npm's `prepare` script: runs on `npm pack` (and `npm publish`), on `npm ci` here,
// and when a project installs this directory (`npm install path/to/clients/realtime`).
// Generates src/generated/frames.ts from ../../asyncapi.json, then builds lib/
// (JavaScript and .d.ts) with tsconfig.build.json.
//
// Both steps need this package's devDependencies, and npm does not install those for
// a directory another project depends on: without them this says so in plain words,
// instead of failing on a missing module.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const asyncapi = fileURLToPath(new URL("../../../asyncapi.json", import.meta.url));
const require = createRequire(import.meta.url);

function fail(lines) {
  console.error(["", ...lines.map((l) => `@doorman/realtime: ${l}`), ""].join("\n"));
  process.exit(1);
}

let tsc;
try {
  require.resolve("json-schema-to-typescript");
  tsc = require.resolve("typescript/bin/tsc");
} catch {
  fail([
    "building the package needs its devDependencies, which are not installed in",
    `  ${here}`,
    "(npm does not install them for a directory that another project installs).",
    `Run \`npm ci\` in that directory once, then install again; or install the tarball`,
    "that `npm pack` writes there (see the package's README, \"Install\").",
  ]);
}
if (!existsSync(asyncapi)) {
  fail([`the frame types are generated from ${asyncapi}, which is missing:`, "build from a checkout of doorman."]);
}

const run = (args) => execFileSync(process.execPath, args, { cwd: here, stdio: "inherit" });
run(["scripts/frames.mjs", asyncapi, "src/generated/frames.ts"]);
run([tsc, "-p", "tsconfig.build.json"]);
