#!/usr/bin/env python3
"""Generates doorman_realtime/frames.py from asyncapi.json.

    python scripts/gen_frames.py            # rewrite doorman_realtime/frames.py
    python scripts/gen_frames.py --check    # exit 1 when the committed file differs
    python scripts/gen_frames.py [--check] ASYNCAPI_JSON OUTPUT_PY

What it writes, all from the document:

- one TypedDict per payload schema (``components.schemas``); a schema whose ``oneOf``
  holds object variants (``NoticeFrame``) becomes one TypedDict per variant and a
  Union of them;
- ``ClientFrame`` / ``ServerFrame``: the unions of what the client sends (the
  document's ``receive`` operations: the server receives them) and what the server
  sends, and ``CLIENT_FRAMES`` / ``SERVER_FRAMES``, the same keyed by ``type`` tag;
- ``CLOSE_CODES`` and ``HANDSHAKE_REFUSALS``: the channel's ``x-close-codes`` and
  ``x-handshake-refusals`` rows, and ``CloseAction``, the actions they name. The
  client's close-code policy (doorman_realtime/policy.py) reads these tables; it has
  no table of its own.

Standard library only, so that it runs before anything is installed.
"""

from __future__ import annotations

import json
import keyword
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_INPUT = HERE.parent.parent.parent / "asyncapi.json"
DEFAULT_OUTPUT = HERE.parent / "doorman_realtime" / "frames.py"


def s(text: str) -> str:
    """A Python string literal (JSON's escapes are Python's)."""
    return json.dumps(text, ensure_ascii=False)


def docstring(text: str, indent: str) -> str:
    body = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = body.split("\n")
    if len(lines) == 1:
        return f'{indent}"""{body}"""\n'
    out = f'{indent}"""{lines[0]}\n'
    for line in lines[1:]:
        out += f"{indent}{line}\n" if line else "\n"
    return out + f'{indent}"""\n'


def consts(schema: dict[str, Any]) -> list[Any] | None:
    """The values of a schema that is only constants (const, enum, oneOf of them)."""
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            values: list[Any] = []
            for member in schema[key]:
                got = consts(member)
                if got is None:
                    return None
                values += got
            return values
    return None


def literal(values: list[Any]) -> str:
    return "Literal[" + ", ".join(s(v) if isinstance(v, str) else repr(v) for v in values) + "]"


SIMPLE = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def union(parts: list[str]) -> str:
    seen: list[str] = []
    for p in parts:
        if p not in seen:
            seen.append(p)
    if "Any" in seen:
        return "Any"
    return " | ".join(seen)


def py_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    values = consts(schema)
    if values is not None:
        return literal(values)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return union([py_type(m) for m in schema[key]])
    t = schema.get("type")
    if isinstance(t, list):
        return union([py_type({**schema, "type": one}) for one in t])
    if t in SIMPLE:
        return SIMPLE[t]
    if t == "array":
        return f"list[{py_type(schema.get('items', {}))}]"
    if t == "object":
        return "dict[str, Any]"
    return "Any"  # no constraint: any JSON value (a ping's id)


def typed_dict(name: str, doc: str, props: dict[str, Any], required: list[str]) -> str:
    """A TypedDict; the functional form when a key is no Python identifier (`from`)."""
    order = [k for k in ("type",) if k in props]
    order += [k for k in required if k not in order]
    order += [k for k in props if k not in order]
    fields = []
    for key in order:
        t = py_type(props[key])
        fields.append((key, t if key in required else f"NotRequired[{t}]", props[key].get("description", "")))
    functional = any(not k.isidentifier() or keyword.iskeyword(k) for k in order)
    if functional:
        out = f"{name} = TypedDict(\n    {s(name)},\n    {{\n"
        for key, t, desc in fields:
            for line in desc.strip().splitlines():
                out += f"        # {line}\n".rstrip() + "\n"
            out += f"        {s(key)}: {t},\n"
        out += "    },\n)\n"
        if doc:
            out += f"{name}.__doc__ = {s(doc.strip())}\n"
        return out
    out = f"class {name}(TypedDict):\n"
    out += docstring(doc, "    ") if doc else ""
    for key, t, desc in fields:
        out += f"\n    {key}: {t}\n"
        if desc:
            out += docstring(desc, "    ")
    return out


def camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", "_").split("_"))


def tag_of(schema: dict[str, Any]) -> str:
    return schema["properties"]["type"]["const"]


def generate(doc: dict[str, Any], source_name: str) -> str:
    schemas: dict[str, Any] = doc["components"]["schemas"]
    channel = doc["channels"]["socket"]
    close_rows = channel["x-close-codes"]
    refusals = channel["x-handshake-refusals"]

    def schema_of(message_ref: str) -> str:
        message = doc["components"]["messages"][message_ref.rsplit("/", 1)[-1]]
        return message["payload"]["$ref"].rsplit("/", 1)[-1]

    sides: dict[str, list[str]] = {"receive": [], "send": []}
    for op in doc["operations"].values():
        for m in op["messages"]:
            # Operations name channel messages; channel messages name component messages.
            ref = m["$ref"]
            if ref.startswith("#/channels/"):
                ref = channel["messages"][ref.rsplit("/", 1)[-1]]["$ref"]
            name = schema_of(ref)
            if name not in sides[op["action"]]:
                sides[op["action"]].append(name)

    out = [
        f"# Generated from {source_name} by scripts/gen_frames.py; do not edit.\n"
        "# Regenerate: python scripts/gen_frames.py (run.sh fails when this file is stale).\n",
        docstring(
            f"The frames of doorman's WebSocket protocol ({doc['info']['title']} "
            f"{doc['info']['version']}) and its close-code table.\n\n"
            "Every TypedDict is a payload schema of the document; ``CLOSE_CODES`` and\n"
            "``HANDSHAKE_REFUSALS`` are the channel's ``x-close-codes`` and\n"
            "``x-handshake-refusals``, which the client's policy reads.",
            "",
        ),
        "\nfrom typing import Any, Final, Literal, NamedTuple, NotRequired, TypedDict, Union\n",
        f"\nDOCUMENT_VERSION: Final = {s(doc['info']['version'])}\n",
    ]

    # Which variant classes stand for a schema (one, or its oneOf object variants).
    classes: dict[str, list[str]] = {}
    for name, schema in schemas.items():
        desc = schema.get("description", "")
        variants = [v for v in schema.get("oneOf", []) if v.get("type") == "object"]
        if variants:
            names = []
            for v in variants:
                tag = next(p["const"] for p in v["properties"].values() if "const" in p)
                vname = f"{name}{camel(tag)}"
                props = {**schema.get("properties", {}), **v["properties"]}
                required = list(schema.get("required", [])) + [r for r in v["required"] if r not in schema.get("required", [])]
                text = (desc.strip() + "\n\n" + v.get("description", "").strip()).strip()
                out.append("\n\n" + typed_dict(vname, text, props, required))
                names.append(vname)
            out.append(f"\n\n{name} = Union[{', '.join(names)}]\n")
            out.append(docstring(desc, "") if desc else "")
            classes[name] = names
        else:
            out.append("\n\n" + typed_dict(name, desc, schema.get("properties", {}), schema.get("required", [])))
            classes[name] = [name]

    out.append(
        "\n\n# What the client sends (the document's `receive` operations).\n"
        f"ClientFrame = Union[{', '.join(sides['receive'])}]\n"
        "# What the server sends (the document's `send` operations).\n"
        f"ServerFrame = Union[{', '.join(sides['send'])}]\n"
    )
    out.append("\n# The client's frames by `type` tag.\nCLIENT_FRAMES: Final[dict[str, type]] = {\n")
    for name in sides["receive"]:
        out.append(f"    {s(tag_of(schemas[name]))}: {name},\n")
    out.append("}\n")
    out.append(
        "\n# The server's frames by `type` tag: the TypedDicts a frame of that tag may be\n"
        "# (more than one where the schema has variants).\n"
        "SERVER_FRAMES: Final[dict[str, tuple[type, ...]]] = {\n"
    )
    for name in sides["send"]:
        out.append(f"    {s(tag_of(schemas[name]))}: ({', '.join(classes[name])},),\n")
    out.append("}\n")

    actions = sorted({r["action"] for r in close_rows} | {r["action"] for r in refusals})
    out.append(
        "\n# What a client does after a close or a refused handshake (every `action` the\n"
        "# document's tables name).\n"
        f"CloseAction = {literal(actions)}\n"
    )
    out.append(
        "\n\nclass CloseCodeRow(NamedTuple):\n"
        '    """One row of the channel\'s ``x-close-codes``."""\n\n'
        "    code: int\n    reason: str\n    action: CloseAction\n    client_should: str\n"
        "    sent_by_server: bool\n    when: str\n"
    )
    out.append("\n\nCLOSE_CODES: Final[tuple[CloseCodeRow, ...]] = (\n")
    for r in close_rows:
        out.append(
            f"    CloseCodeRow(\n        code={r['code']},\n        reason={s(r['reason'])},\n"
            f"        action={s(r['action'])},\n        client_should={s(r['client_should'])},\n"
            f"        sent_by_server={r['sent_by_server']!r},\n        when={s(r['when'])},\n    ),\n"
        )
    out.append(")\n")
    out.append(
        "\n\nclass HandshakeRefusal(NamedTuple):\n"
        '    """One row of the channel\'s ``x-handshake-refusals``: an HTTP status that\n'
        '    refuses the upgrade, with the ``error`` codes of its JSON body."""\n\n'
        "    status: int\n    errors: tuple[str, ...]\n    action: CloseAction\n"
        "    client_should: str | None\n    when: str\n"
    )
    out.append("\n\nHANDSHAKE_REFUSALS: Final[tuple[HandshakeRefusal, ...]] = (\n")
    for r in refusals:
        errors = "".join(f"{s(e)}, " for e in r["error"]).rstrip(" ")
        cs = s(r["client_should"]) if "client_should" in r else "None"
        out.append(
            f"    HandshakeRefusal(\n        status={r['status']},\n        errors=({errors}),\n"
            f"        action={s(r['action'])},\n        client_should={cs},\n        when={s(r['when'])},\n    ),\n"
        )
    out.append(")\n")
    return "".join(out)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if len(args) not in (0, 2):
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = (Path(args[0]), Path(args[1])) if args else (DEFAULT_INPUT, DEFAULT_OUTPUT)
    text = generate(json.loads(src.read_text(encoding="utf-8")), src.name)
    compile(text, str(dst), "exec")  # a generator bug fails here, not at import
    if check:
        current = dst.read_text(encoding="utf-8") if dst.exists() else ""
        if current != text:
            print(f"{dst} is not what scripts/gen_frames.py makes of {src}: run python scripts/gen_frames.py", file=sys.stderr)
            return 1
        print(f"{dst.name} is current with {src.name}")
        return 0
    dst.write_text(text, encoding="utf-8")
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
