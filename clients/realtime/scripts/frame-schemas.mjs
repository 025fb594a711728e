// The frames' JSON Schemas from asyncapi.json, compiled with ajv: the one place
// where both the document check and the SDK's tests validate a frame.
import Ajv from "ajv";
import addFormats from "ajv-formats";

/**
 * frameValidator(doc)(frame) → { ok, name, errors }: `name` is the message whose
 * payload schema the frame's `type` selects; `ok` whether the frame is valid
 * against that schema.
 */
export function frameValidator(doc) {
  const ajv = new Ajv({ allErrors: true, strict: true });
  addFormats(ajv);
  // schemars names Rust's integer widths as formats (uint64, …): check them too.
  ajv.addFormat("uint64", { type: "number", validate: (n) => Number.isInteger(n) && n >= 0 });
  const byType = new Map();
  for (const [name, message] of Object.entries(doc.components.messages)) {
    const ref = message.payload.$ref;
    const schema = ref ? doc.components.schemas[ref.split("/").pop()] : message.payload;
    const tag = schema.properties?.type?.const;
    byType.set(tag, { name, check: ajv.compile(schema) });
  }
  return (frame) => {
    const entry = byType.get(frame?.type);
    if (!entry) return { ok: false, name: undefined, errors: [`no message has type ${frame?.type}`] };
    const ok = entry.check(frame);
    return { ok, name: entry.name, errors: ok ? [] : entry.check.errors };
  };
}
