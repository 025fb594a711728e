// Validates asyncapi.json with the official AsyncAPI parser (@asyncapi/parser, pinned
// in package.json): every diagnostic it reports, errors and warnings alike, fails
// the run. Then checks each message's examples against the message's own payload
// schema (ajv, draft-07, as AsyncAPI's default schema format extends it), so an
// example cannot drift from the schema it illustrates.
//
// Usage: node scripts/validate-asyncapi.mjs PATH_TO_ASYNCAPI_JSON
// Prints "asyncapi document: N passed, N failed".
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";
import { frameValidator } from "./frame-schemas.mjs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node scripts/validate-asyncapi.mjs PATH_TO_ASYNCAPI_JSON");
  process.exit(2);
}
const text = readFileSync(path, "utf8");
let passed = 0;
let failed = 0;
function check(ok, what, detail = "") {
  if (ok) {
    passed += 1;
    console.log(`ok   ${what}`);
  } else {
    failed += 1;
    console.log(`FAIL ${what}${detail ? `\n     ${detail}` : ""}`);
  }
}

const severities = {
  [DiagnosticSeverity.Error]: "error",
  [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "information",
  [DiagnosticSeverity.Hint]: "hint",
};
const { document, diagnostics } = await new Parser().parse(text);
for (const d of diagnostics) {
  console.log(`     ${severities[d.severity] ?? d.severity} ${d.code} at ${d.path.join(".")}: ${d.message}`);
}
const serious = diagnostics.filter(
  (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning,
);
check(document !== undefined, "the parser accepts the document");
check(serious.length === 0, "no errors and no warnings from @asyncapi/parser", `${serious.length} reported above`);

if (document !== undefined) {
  check(document.version() === "3.0.0", "AsyncAPI 3.0.0", document.version());
  const schemes = document.components().securitySchemes().all().map((s) => s.id()).sort();
  check(
    JSON.stringify(schemes) === JSON.stringify(["authFrame", "bearer", "cookie"]),
    "three credential sources as security schemes",
    JSON.stringify(schemes),
  );
  const actions = document.operations().all().map((o) => o.action());
  check(
    actions.includes("send") && actions.includes("receive"),
    "operations in both directions",
    JSON.stringify(actions),
  );
}

const raw = JSON.parse(text);
const validate = frameValidator(raw);
for (const [name, message] of Object.entries(raw.components.messages)) {
  const examples = message.examples ?? [];
  const bad = examples
    .map((e) => validate(e.payload))
    .filter((r) => !r.ok || r.name !== name);
  check(
    examples.length > 0 && bad.length === 0,
    `message ${name}: ${examples.length} example(s) valid against its payload schema`,
    JSON.stringify(bad),
  );
}

console.log(`asyncapi document: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
