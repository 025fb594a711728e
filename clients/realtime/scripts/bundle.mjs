// Builds the browser bundle of the SDK that the demo page inlines
// (bundle/doorman-realtime.js, committed): one IIFE defining the global
// `DoormanRealtime`, no imports, no network. esbuild is pinned in package.json,
// so the same source gives the same bytes.
//
//   node scripts/bundle.mjs           writes the bundle
//   node scripts/bundle.mjs --check   fails when the committed bundle is not current
import { readFileSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const out = new URL("../bundle/doorman-realtime.js", import.meta.url);
const result = await build({
  entryPoints: [new URL("../src/index.ts", import.meta.url).pathname],
  bundle: true,
  write: false,
  format: "iife",
  globalName: "DoormanRealtime",
  platform: "browser",
  target: "es2022",
  charset: "utf8",
  legalComments: "none",
  // The page inlines it in a <script>: esbuild escapes "</script" in strings.
  banner: { js: "// doorman realtime SDK (clients/realtime), built by scripts/bundle.mjs; do not edit." },
});
const text = result.outputFiles[0].text;
// Inside a <script>, "</script" ends it and "<!--" changes how the parser reads on.
for (const bad of ["</script", "<!--"]) {
  if (text.toLowerCase().includes(bad)) throw new Error(`the bundle cannot be inlined: it contains ${bad}`);
}
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(out, "utf8");
  } catch {
    // missing: not current
  }
  if (committed !== text) {
    console.log("FAIL the committed bundle/doorman-realtime.js is not current: run `node scripts/bundle.mjs` in clients/realtime");
    console.log("realtime bundle: 0 passed, 1 failed");
    process.exit(1);
  }
  console.log("realtime bundle: 1 passed, 0 failed");
} else {
  writeFileSync(out, text);
  console.log(`wrote ${out.pathname} (${text.length} bytes)`);
}
