// Runs every fenced code block of the SDK's README.md, in order, as written: the README
// is a session a first-time user goes through in an empty directory (their project).
//
//   node scripts/readme.mjs README.md PROJECT_DIR
//
// - A block whose first line names a file (`// file: chat.ts`, `<!-- file: index.html -->`)
//   is written to that file in PROJECT_DIR, unchanged (the line included);
// - an `sh` block is run by `bash -euo pipefail` in PROJECT_DIR;
// - any other block fails: the README may hold nothing CI does not run.
//
// The environment passes through: the README names the variables its blocks read
// (DOORMAN_CHECKOUT, DOORMAN_URL, DOORMAN_EMAIL, DOORMAN_PASSWORD). Stops at the first
// failing block (the later ones build on it) and ends with "realtime readme: N passed,
// N failed", every block not run counted as failed.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [readme, project] = process.argv.slice(2);
if (!readme || !project) {
  console.error("usage: node scripts/readme.mjs README.md PROJECT_DIR");
  process.exit(2);
}

/** The fenced blocks of a Markdown text: {lang, text, line} (line: the fence's, 1-based). */
function blocks(markdown) {
  const found = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]);
    if (!open) continue;
    const fence = open[1];
    const body = [];
    let j = i + 1;
    while (j < lines.length && !lines[j].startsWith(fence)) body.push(lines[j++]);
    if (j === lines.length) throw new Error(`README line ${i + 1}: the code block is never closed`);
    found.push({ lang: open[2], text: body.join("\n") + "\n", line: i + 1 });
    i = j;
  }
  return found;
}

const all = blocks(readFileSync(readme, "utf8"));
let passed = 0;
let failed = 0;
for (const [n, block] of all.entries()) {
  const name = `README block ${n + 1} (line ${block.line}, ${block.lang || "no language"})`;
  const file = /^(?:\/\/|<!--|#)\s*file:\s*([\w.-]+)/.exec(block.text)?.[1];
  let ok;
  if (file) {
    writeFileSync(join(project, file), block.text);
    ok = true;
    console.log(`ok   ${name}: wrote ${file}`);
  } else if (block.lang === "sh") {
    console.log(`---- ${name}:\n${block.text.trimEnd().replace(/^/gm, "     $ ")}`);
    const r = spawnSync("bash", ["-euo", "pipefail", "-c", block.text], { cwd: project, stdio: "inherit" });
    ok = r.status === 0;
    console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok ? "" : `: exit ${r.status ?? r.signal}`}`);
  } else {
    ok = false;
    console.log(`FAIL ${name}: neither an sh block nor a file (its first line: // file: NAME)`);
  }
  if (ok) passed += 1;
  else {
    failed += all.length - n;
    break;
  }
}
if (all.length === 0) failed += 1;
console.log(`realtime readme: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
