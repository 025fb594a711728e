// Generates src/generated/frames.ts, the SDK's frame types, from asyncapi.json:
// one type per message payload schema (json-schema-to-typescript, pinned in
// package.json), and the unions of what the client sends (the document's
// `receive` operations: the server receives them) and what the server sends.
// The SDK is type-checked against these, so it cannot use a frame or field the
// document does not have.
//
// Usage: node scripts/frames.mjs PATH_TO_ASYNCAPI_JSON OUTPUT_TS
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { compile } from "json-schema-to-typescript";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node scripts/frames.mjs PATH_TO_ASYNCAPI_JSON OUTPUT_TS");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(input, "utf8"));
const schemaOf = (messageRef) => {
  const message = doc.components.messages[messageRef.split("/").pop()];
  return message.payload.$ref.split("/").pop();
};
const unions = { receive: [], send: [] };
for (const op of Object.values(doc.operations)) {
  for (const m of op.messages) unions[op.action].push(schemaOf(m.$ref));
}

// A schema with no constraint at all (a ping's `id`) is any JSON value:
// json-schema-to-typescript would call it an object.
const structural = ["type", "const", "enum", "oneOf", "anyOf", "allOf", "$ref", "properties", "items"];
function unconstrainedIsUnknown(schema) {
  if (schema === null || typeof schema !== "object") return;
  for (const sub of Object.values(schema.properties ?? {})) {
    if (sub && typeof sub === "object" && !structural.some((k) => k in sub)) sub.tsType = "unknown";
  }
  for (const key of ["oneOf", "anyOf", "allOf"]) (schema[key] ?? []).forEach(unconstrainedIsUnknown);
  Object.values(schema.properties ?? {}).forEach(unconstrainedIsUnknown);
  if (schema.items) unconstrainedIsUnknown(schema.items);
}

let out = `// Generated from asyncapi.json by scripts/frames.mjs; do not edit.\n`;
for (const [name, schema] of Object.entries(doc.components.schemas)) {
  const copy = structuredClone(schema);
  unconstrainedIsUnknown(copy);
  const ts = await compile(copy, name, {
    bannerComment: "",
    additionalProperties: false,
    strictIndexSignatures: true,
    format: false,
    declareExternallyReferenced: true,
  });
  out += `\n${ts.trim()}\n`;
}
out += `\n/** Every frame a client sends. */\nexport type ClientFrame = ${unions.receive.join(" | ")};\n`;
out += `\n/** Every frame the server sends. */\nexport type ServerFrame = ${unions.send.join(" | ")};\n`;
mkdirSync(dirname(output), { recursive: true });
writeFileSync(output, out);
