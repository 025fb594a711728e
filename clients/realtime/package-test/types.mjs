// The package's types as a TypeScript user meets them, in the fresh project that
// installed the tarball (run from its directory, with the package-test files copied
// there): `tsc --strict` must accept types-node.ts (Node, with @types/ws) and
// types-browser.ts (DOM, no Node types), and must refuse exactly the marked lines of
// types-refused.ts with the marked errors.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
function report(ok, name, detail = "") {
  if (ok) passed += 1;
  else failed += 1;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok || !detail ? "" : `\n     ${detail.trim().replace(/\n/g, "\n     ")}`}`);
}

// The project's own TypeScript (installed by the README's blocks), never a global one.
function tsc(args) {
  const r = spawnSync("npx", ["--no-install", "tsc", ...args], { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
const strict = ["--strict", "--noEmit", "--module", "nodenext", "--target", "es2022", "--skipLibCheck", "false"];

const node = tsc([...strict, "types-node.ts"]);
report(node.status === 0, "tsc --strict: types-node.ts (Node, ws) compiles against the package's .d.ts", node.out);

const browser = tsc(["-p", "tsconfig.browser.json"]);
report(browser.status === 0, "tsc --strict: types-browser.ts (DOM, no @types/node) compiles", browser.out);

const want = new Map();
readFileSync("types-refused.ts", "utf8")
  .split("\n")
  .forEach((line, i) => {
    const m = /\/\/ expect (TS\d+)/.exec(line);
    if (m) want.set(i + 1, m[1]);
  });
const refused = tsc([...strict, "types-refused.ts"]);
const got = new Map();
for (const m of refused.out.matchAll(/^types-refused\.ts\((\d+),\d+\): error (TS\d+)/gm)) {
  got.set(Number(m[1]), [...(got.get(Number(m[1])) ?? []), m[2]]);
}
for (const [line, code] of want) {
  report((got.get(line) ?? []).includes(code), `tsc --strict refuses types-refused.ts line ${line} with ${code}`,
    `got: ${JSON.stringify(got.get(line) ?? [])}`);
}
const unexpected = [...got].filter(([line]) => !want.has(line));
report(unexpected.length === 0 && want.size > 0, "no other error in types-refused.ts", refused.out);

console.log(`realtime package types: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
