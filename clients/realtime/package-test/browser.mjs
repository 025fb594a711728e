// The installed package in Debian's headless Chromium: the README's page and
// page.html, served from the fresh project that installed the tarball (a page on
// another origin than doorman's, listed in its DOORMAN_ALLOWED_ORIGINS).
//
//   PROJECT=DIR PAGE_PORT=N DOORMAN_URL=URL SHORT_URL=URL node browser.mjs
//
// SHORT_URL is a second doorman whose access tokens (and access cookies) live 2 s.
// playwright-core comes from e2e/ (its pinned devDependency).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import http from "node:http";
import { createRequire } from "node:module";
import { extname, join, normalize } from "node:path";

const { chromium } = createRequire(new URL("../../../e2e/package.json", import.meta.url))("playwright-core");

const project = process.env.PROJECT;
const pagePort = Number(process.env.PAGE_PORT);
const doorman = process.env.DOORMAN_URL; // http://127.0.0.1:PORT
const short = process.env.SHORT_URL;
const pageOrigin = `http://127.0.0.1:${pagePort}`;
const password = "package browser password";
const uniqueEmail = (tag) => `pkg-${tag}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.test`;

// A static server for the project directory: what `python3 -m http.server` would do.
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".json": "application/json" };
const server = http.createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, pageOrigin).pathname));
  try {
    if (path.includes("..")) throw new Error("outside");
    const file = join(project, path === "/" ? "index.html" : path);
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((resolve) => server.listen(pagePort, "127.0.0.1", resolve));

let passed = 0;
let failed = 0;
async function scenario(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${String(err?.stack ?? err).split("\n").slice(0, 8).join("\n     ")}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// A context signed in (cookie mode) on `host`'s doorman, and every socket and script
// error of its pages recorded.
async function signedIn(base) {
  const context = await browser.newContext();
  const email = uniqueEmail("page");
  const post = (path, data) => context.request.post(`${base}${path}`, { data });
  assert.equal((await post("/api/auth/register", { email, password })).status(), 201);
  assert.equal((await post("/api/auth/login", { email, password, mode: "cookie" })).status(), 200);
  return context;
}
async function open(context, url) {
  const page = await context.newPage();
  const sockets = [];
  const errors = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  const response = await page.goto(url);
  assert.equal(response.status(), 200);
  return { page, sockets, errors };
}

await scenario("README page, signed in on doorman's host name (127.0.0.1): welcomed, and its hello comes back", async () => {
  const context = await signedIn(doorman);
  try {
    const { page, sockets, errors } = await open(context, `${pageOrigin}/?doorman=${doorman}`);
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("welcomed as "), null, { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelector("#messages").textContent.includes("hello from the page"), null, { timeout: 5000 });
    assert.deepEqual(sockets, [`${doorman.replace(/^http/, "ws")}/ws`]);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

await scenario("README page, signed in on localhost only: signed_out within seconds, with the host-name explanation, then no socket more", async () => {
  const context = await signedIn(doorman.replace("127.0.0.1", "localhost"));
  try {
    const started = Date.now();
    const { page, sockets, errors } = await open(context, `${pageOrigin}/?doorman=${doorman}`);
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("signed_out: "), null, { timeout: 6000 });
    const took = Date.now() - started;
    const text = await page.textContent("#status");
    assert.match(text, /Cookies belong to the host name/);
    assert.match(text, /Signing in on localhost:\d+ does not sign you in on 127\.0\.0\.1:\d+/);
    assert.ok(took < 6000, `signed out after ${took} ms`);
    await page.waitForTimeout(3000);
    assert.equal(sockets.length, 1, `sockets: ${JSON.stringify(sockets)}`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

await scenario("page.html: the built module, first-frame auth across origins, a publish queued before the welcome, RealtimeError", async () => {
  const context = await browser.newContext();
  try {
    const { page, errors } = await open(context, `${pageOrigin}/page.html`);
    await page.waitForFunction(() => document.title === "ready");
    const result = await page.evaluate(async ({ doorman, email, password }) => {
      const { RealtimeClient, RealtimeError } = window.RT;
      const post = (path, body) => fetch(`${doorman}${path}`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      await post("/api/auth/register", { email, password });
      const login = await (await post("/api/auth/login", { email, password, mode: "token" })).json();
      const rt = new RealtimeClient({
        url: `${doorman.replace(/^http/, "ws")}/ws`,
        auth: { kind: "frame", getToken: () => login.access_token },
      });
      let early;
      try {
        await rt.publish("lobby", "before connect()");
      } catch (e) {
        early = { isRealtimeError: e instanceof RealtimeError, code: e.code };
      }
      const room = `page-${Date.now()}`;
      const bodies = [];
      rt.on("message", (m) => bodies.push(m.body));
      rt.subscribe(room);
      const welcomed = rt.connect();
      const queued = rt.publish(room, "queued in the browser");
      const welcome = await welcomed;
      await queued;
      for (let i = 0; i < 250 && bodies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      rt.close();
      return { early, auth_source: welcome.auth_source, session: welcome.session_id === login.session_id, bodies };
    }, { doorman, email: uniqueEmail("frame"), password });
    assert.deepEqual(result, {
      early: { isRealtimeError: true, code: "not_connected" },
      auth_source: "message",
      session: true,
      bodies: ["queued in the browser"],
    });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

await scenario("an access cookie that expired is renewed with the refresh cookie, and the cookie client connects", async () => {
  const context = await browser.newContext();
  try {
    const { page, errors } = await open(context, `${pageOrigin}/page.html`);
    await page.waitForFunction(() => document.title === "ready");
    const result = await page.evaluate(async ({ short, email, password }) => {
      const { RealtimeClient } = window.RT;
      const post = (path, body) => fetch(`${short}${path}`, {
        method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      await post("/api/auth/register", { email, password });
      const login = (await post("/api/auth/login", { email, password, mode: "cookie" })).status;
      // The access cookie lives 2 s here (the token's lifetime); the refresh cookie stays.
      await new Promise((r) => setTimeout(r, 3000));
      const meBefore = (await fetch(`${short}/api/me`, { credentials: "include" })).status;
      const rt = new RealtimeClient({ url: `${short.replace(/^http/, "ws")}/ws`, auth: { kind: "cookie" } });
      const closes = [];
      rt.on("close", (c) => closes.push(`${c.code} ${c.reason}`));
      const started = Date.now();
      const welcome = await Promise.race([rt.connect(), new Promise((r) => setTimeout(() => r(null), 8000))]);
      const took = Date.now() - started;
      const state = rt.state;
      rt.close();
      return { login, meBefore, auth_source: welcome?.auth_source, state, closes, took };
    }, { short, email: uniqueEmail("refresh"), password });
    assert.equal(result.login, 200, JSON.stringify(result));
    assert.equal(result.meBefore, 401, `the access cookie had not expired: ${JSON.stringify(result)}`);
    assert.equal(result.auth_source, "cookie", JSON.stringify(result));
    assert.deepEqual(result.closes, ["4000 cookie refreshed"]);
    assert.ok(result.took < 5000, JSON.stringify(result));
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

await browser.close();
server.close();
console.log(`realtime package browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
