// The installed package (the tarball `npm pack` wrote, installed into a fresh project)
// in Node 20 against the release server. Run from that project's directory, so that
// `@doorman/realtime` and `ws` resolve from its node_modules.
//
//   DOORMAN_URL=http://127.0.0.1:PORT node node.mjs
import assert from "node:assert/strict";
import { lstatSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { RealtimeClient, RealtimeError } from "@doorman/realtime";

const base = process.env.DOORMAN_URL;
assert.ok(base, "DOORMAN_URL is not set");
const wsUrl = `${base.replace(/^http/, "ws")}/ws`;

let passed = 0;
let failed = 0;
const clients = [];
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${String(err?.stack ?? err).split("\n").slice(0, 6).join("\n     ")}`);
  }
}

async function post(path, body, expect) {
  const r = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, expect, `${path}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function tokens() {
  const email = `pkg-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.test`;
  const password = "package test password";
  await post("/api/auth/register", { email, password }, 201);
  return post("/api/auth/login", { email, password, mode: "token" }, 200);
}

// Sockets the clients open, counted.
let opened = 0;
class CountingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    opened += 1;
  }
}

function client(auth, extra = {}) {
  const c = new RealtimeClient({ url: wsUrl, auth, WebSocket: CountingWebSocket, ...extra });
  clients.push(c);
  return c;
}

await check("@doorman/realtime resolves to the installed tarball's lib/, not a link to the source tree", () => {
  const resolved = fileURLToPath(import.meta.resolve("@doorman/realtime"));
  const installed = join(process.cwd(), "node_modules", "@doorman", "realtime");
  assert.equal(resolved, join(installed, "lib", "index.js"));
  assert.equal(lstatSync(installed).isSymbolicLink(), false, "node_modules/@doorman/realtime is a link");
  assert.equal(realpathSync(resolved), resolved);
});

await check("Bearer (ws): connect() resolves with the welcome; a publish made before it is delivered", async () => {
  const t = await tokens();
  const room = `pkg-${Date.now()}`;
  const rt = client({ kind: "bearer", getToken: () => t.access_token });
  const bodies = [];
  rt.on("message", (m) => bodies.push(m.body));
  rt.subscribe(room);
  const welcomed = rt.connect();
  assert.equal(rt.state, "connecting");
  const queued = rt.publish(room, "queued before the welcome");
  const welcome = await welcomed;
  assert.equal(welcome.type, "welcome");
  assert.equal(welcome.auth_source, "bearer");
  assert.equal(welcome.session_id, t.session_id);
  await queued;
  const deadline = Date.now() + 5000;
  while (bodies.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(bodies, ["queued before the welcome"]);
  assert.ok((await rt.ping()) >= 0);
  rt.close();
  await assert.rejects(rt.publish(room, "after close()"), (e) => {
    assert.ok(e instanceof RealtimeError, String(e));
    assert.equal(e.code, "not_connected");
    assert.equal(e.name, "RealtimeError");
    return true;
  });
});

await check("first-frame auth: welcomed as `message`", async () => {
  const t = await tokens();
  const rt = client({ kind: "frame", getToken: async () => t.access_token });
  const welcome = await rt.connect();
  assert.equal(welcome.auth_source, "message");
  rt.close();
});

await check("a cookie client without a cookie: signed_out in about 1.5 s with the host-name explanation, then nothing", async () => {
  const rt = client({ kind: "cookie" });
  const before = opened;
  const started = Date.now();
  const events = [];
  rt.on("signedOut", (info) => events.push(info));
  await assert.rejects(rt.connect(), (e) => {
    assert.ok(e instanceof RealtimeError, String(e));
    assert.equal(e.code, "signed_out");
    assert.match(e.message, /Cookies belong to the host name/);
    return true;
  });
  const took = Date.now() - started;
  assert.ok(took >= 1400 && took < 5000, `took ${took} ms`);
  assert.equal(rt.state, "signedOut");
  assert.equal(events.length, 1);
  assert.equal(events[0].meUrl, `${base}/api/me`);
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(opened - before, 1, "the client opened another socket after signing out");
});

for (const c of clients) c.close();
console.log(`realtime package node: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
