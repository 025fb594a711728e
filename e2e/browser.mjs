// Browser end-to-end tests: the demo page, cross-origin pages and Swagger UI in
// Debian's headless Chromium, against a running doorman.
//
// Usage: node browser.mjs   (env: DOORMAN_PORT, PARTNER_PORT, FOREIGN_PORT,
//                            SCREENSHOT_DIR to write the README's screenshots)
// The doorman under test must list http://127.0.0.1:$PARTNER_PORT in
// DOORMAN_ALLOWED_ORIGINS and must not list the foreign port.
// Chromium resolves every *.doorman.test name to 127.0.0.1 (--host-resolver-rules),
// so app.doorman.test:$DOORMAN_PORT and other.doorman.test:$FOREIGN_PORT are two
// sites that share the registrable domain doorman.test, as on a real deployment.

import http from "node:http";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const port = Number(process.env.DOORMAN_PORT);
const partnerPort = Number(process.env.PARTNER_PORT);
const foreignPort = Number(process.env.FOREIGN_PORT);
const screenshots = process.env.SCREENSHOT_DIR || new URL("./artifacts", import.meta.url).pathname;
mkdirSync(screenshots, { recursive: true });
const api = `http://127.0.0.1:${port}`;
const wsUrl = `ws://127.0.0.1:${port}/ws`;
const password = "browser password";
const uniqueEmail = (tag) => `e2e-${tag}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.org`;

// A plain page on another origin: the pages' logic arrives through page.evaluate.
// `/cookie-bytes` answers the hex of the raw Cookie header bytes it received.
function servePlainPage(listenPort) {
  const server = http.createServer((req, res) => {
    if (req.url === "/cookie-bytes") {
      // Node decodes header bytes as latin1: encoding back gives the bytes on the wire.
      const raw = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if (req.rawHeaders[i].toLowerCase() === "cookie") raw.push(Buffer.from(req.rawHeaders[i + 1], "latin1"));
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(raw.map((b) => b.toString("hex"))));
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><meta charset=utf-8><title>another origin</title><p>another origin</p>");
  });
  return new Promise((resolve) => server.listen(listenPort, "127.0.0.1", () => resolve(server)));
}

let passed = 0;
let failed = 0;
async function scenario(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${String(err && err.stack || err).split("\n").slice(0, 6).join("\n     ")}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP *.doorman.test 127.0.0.1",
  ],
});
const partner = await servePlainPage(partnerPort);
const foreign = await servePlainPage(foreignPort);

// Content-Security-Policy violations on a context's pages, seen two ways: the
// `securitypolicyviolation` event inside the page, and Chromium's console report.
async function watchCsp(context) {
  const seen = [];
  await context.exposeBinding("__reportCspViolation", ({ page }, v) => seen.push({ url: page.url(), ...v }));
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => window.__reportCspViolation({
      directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample, line: e.lineNumber,
    }));
  });
  context.on("console", (msg) => {
    if (/Content[- ]Security[- ]Policy/i.test(msg.text())) seen.push({ url: msg.page()?.url(), console: msg.text() });
  });
  return seen;
}

// The page's response carries the hardening headers.
function assertHardened(response) {
  const h = response.headers();
  assert.match(h["content-security-policy"] || "", /(^|;)\s*frame-ancestors 'none'\s*(;|$)/);
  assert.match(h["content-security-policy"], /(^|;)\s*default-src 'none'/);
  assert.equal(h["x-content-type-options"], "nosniff");
  assert.equal(h["referrer-policy"], "same-origin");
  assert.equal(h["x-frame-options"], "DENY");
}

async function demoPageFlow(origin, screenshot) {
  const context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
  const violations = await watchCsp(context);
  const page = await context.newPage();
  try {
    assertHardened(await page.goto(`${origin}/`));
    await page.fill("#email", uniqueEmail("demo"));
    await page.fill("#password", password);
    await page.click("#register");
    await page.waitForFunction(() => document.querySelector("#me").textContent.includes("registered"));
    await page.click("#login");
    await page.waitForFunction(() => document.querySelector("#me").textContent.includes('"auth_source": "cookie"'));

    // The credentials are cookies the page's script cannot read.
    const visible = await page.evaluate(() => document.cookie);
    assert.ok(!visible.includes("doorman_access") && !visible.includes("doorman_refresh"),
      `document.cookie exposes a credential: ${visible}`);
    const cookies = await context.cookies();
    const access = cookies.find((c) => c.name === "doorman_access");
    const refresh = cookies.find((c) => c.name === "doorman_refresh");
    assert.ok(access && refresh, "both cookies stored");
    assert.equal(access.httpOnly, true);
    assert.equal(access.sameSite, "Lax");
    assert.equal(access.path, "/");
    assert.equal(refresh.httpOnly, true);
    assert.equal(refresh.path, "/api/auth");

    await page.click("#connect");
    await page.waitForFunction(() => document.querySelector("#status").textContent.includes("auth_source: cookie"));
    await page.click("#join");
    await page.waitForSelector("#send:not([disabled])");
    await page.fill("#text", "hello from the browser");
    await page.click("#send");
    await page.waitForFunction(() =>
      document.querySelector("#log").textContent.includes('"body":"hello from the browser"'));
    if (screenshot) await page.screenshot({ path: `${screenshots}/${screenshot}` });

    await page.click("#logout");
    await page.waitForFunction(() => document.querySelector("#status").textContent.includes("closed 4403 session_revoked"));
    await page.waitForFunction(() => document.querySelector("#me").textContent.includes("not logged in (401"));
    assert.deepEqual(violations, [], "CSP violations on the demo page");
  } finally {
    await context.close();
  }
}

await scenario("demo page as http://localhost: cookie login, socket, room, logout closes 4403", () =>
  demoPageFlow(`http://localhost:${port}`, "demo.png"));
await scenario("demo page as http://127.0.0.1: same flow", () =>
  demoPageFlow(`http://127.0.0.1:${port}`));

await scenario("a foreign origin cannot ride the cookie into /ws or read the API", async () => {
  const context = await browser.newContext();
  try {
    const own = await context.newPage();
    await own.goto(`${api}/`);
    const email = uniqueEmail("victim");
    const status = await own.evaluate(async ({ email, password }) => {
      const post = (path, body) => fetch(path, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      await post("/api/auth/register", { email, password });
      return (await post("/api/auth/login", { email, password, mode: "cookie" })).status;
    }, { email, password });
    assert.equal(status, 200);

    const evil = await context.newPage();
    await evil.goto(`http://127.0.0.1:${foreignPort}/`);
    const outcome = await evil.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      let opened = false;
      ws.onopen = () => { opened = true; };
      ws.onmessage = (ev) => resolve({ opened, code: 0, first: ev.data });
      ws.onclose = (ev) => resolve({ opened, code: ev.code });
    }), wsUrl);
    assert.equal(outcome.opened, false, `handshake was accepted: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.code, 1006);

    const read = await evil.evaluate((url) =>
      fetch(url, { credentials: "include" }).then((r) => `read ${r.status}`, (e) => `blocked: ${e.name}`),
      `${api}/api/me`);
    assert.ok(read.startsWith("blocked"), `a foreign origin read /api/me: ${read}`);
  } finally {
    await context.close();
  }
});

await scenario("an allowed partner origin uses token mode and first-message auth", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${partnerPort}/`);
    const result = await page.evaluate(async ({ api, wsUrl, email, password }) => {
      const post = (path, body) => fetch(`${api}${path}`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      const reg = await post("/api/auth/register", { email, password });
      const login = await (await post("/api/auth/login", { email, password, mode: "token" })).json();
      const welcome = await new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl);
        ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: login.access_token }));
        ws.onmessage = (ev) => { resolve(JSON.parse(ev.data)); ws.close(1000); };
        ws.onclose = (ev) => reject(new Error(`closed ${ev.code} ${ev.reason}`));
      });
      return { registered: reg.status, welcome, session: login.session_id };
    }, { api, wsUrl, email: uniqueEmail("partner"), password });
    assert.equal(result.registered, 201);
    assert.equal(result.welcome.type, "welcome");
    assert.equal(result.welcome.auth_source, "message");
    assert.equal(result.welcome.session_id, result.session);
  } finally {
    await context.close();
  }
});

await scenario("Swagger UI: Authorize with a Bearer token, Try it out on GET /api/me", async () => {
  const email = uniqueEmail("swagger");
  const post = (path, body) => fetch(`${api}${path}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  assert.equal((await post("/api/auth/register", { email, password })).status, 201);
  const { access_token: token } = await (await post("/api/auth/login", { email, password })).json();

  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  const violations = await watchCsp(context);
  const page = await context.newPage();
  try {
    assertHardened(await page.goto(`${api}/docs`));
    await page.click(".btn.authorize");
    const bearer = page.locator(".modal-ux .auth-container", { hasText: "bearerAuth" });
    await bearer.locator("input").fill(token);
    await bearer.locator("button.authorize").click();
    await page.click(".modal-ux .btn-done");
    const op = page.locator("#operations-Sessions-me");
    await op.locator(".opblock-summary").click();
    await op.locator(".try-out__btn").click();
    await op.locator(".btn.execute").click();
    const status = op.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor();
    assert.equal((await status.textContent()).trim(), "200");
    const body = await op.locator(".live-responses-table .microlight").first().textContent();
    assert.ok(body.includes('"auth_source": "bearer"'), body);
    await op.scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${screenshots}/swagger.png` });
    assert.deepEqual(violations, [], "CSP violations in Swagger UI");
  } finally {
    await context.close();
  }
});

await scenario("the CSP is enforced: an injected inline script is refused and reported; no framing", async () => {
  const context = await browser.newContext();
  const violations = await watchCsp(context);
  try {
    const page = await context.newPage();
    assertHardened(await page.goto(`${api}/`));
    const ran = await page.evaluate(async () => {
      const s = document.createElement("script");
      s.textContent = "window.__injected = true;";
      document.body.appendChild(s);
      await new Promise((r) => setTimeout(r, 200));
      return window.__injected === true;
    });
    assert.equal(ran, false, "an injected inline script ran");
    await page.waitForTimeout(200);
    assert.ok(violations.some((v) => v.directive === "script-src-elem"), JSON.stringify(violations));

    // Another site cannot frame the page (frame-ancestors 'none').
    const evil = await context.newPage();
    await evil.goto(`http://127.0.0.1:${foreignPort}/`);
    await evil.evaluate((url) => new Promise((resolve) => {
      const f = document.createElement("iframe");
      f.src = url;
      f.onload = resolve;
      document.body.appendChild(f);
      setTimeout(resolve, 3000);
    }), `${api}/`);
    const child = evil.frames().find((f) => f !== evil.mainFrame());
    assert.ok(child, "no iframe");
    assert.equal(await child.evaluate(() => document.querySelector("#login"), null).catch(() => null), null,
      "the demo page rendered inside a foreign frame");
    assert.ok(violations.some((v) => v.console && v.console.includes("frame-ancestors")), JSON.stringify(violations));
  } finally {
    await context.close();
  }
});

// Issue 10, finding 1: a sibling site under the same registrable domain sets a
// cookie with a non-ASCII value for the whole domain (nothing doorman can prevent);
// Chromium then sends its raw UTF-8 bytes in the same Cookie header as doorman's
// cookies. That must not log the user out of doorman.
await scenario("a sibling site's non-ASCII cookie does not log the user out (/api/me, refresh, /ws)", async () => {
  const app = `http://app.doorman.test:${port}`;
  const other = `http://other.doorman.test:${foreignPort}`;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${app}/`);
    const email = uniqueEmail("foreign-cookie");
    const before = await page.evaluate(async ({ email, password }) => {
      const post = (path, body) => fetch(path, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      await post("/api/auth/register", { email, password });
      const login = (await post("/api/auth/login", { email, password, mode: "cookie" })).status;
      return { login, me: (await fetch("/api/me")).status };
    }, { email, password });
    assert.deepEqual(before, { login: 200, me: 200 }, "logged in on app.doorman.test before the foreign cookie");

    const sibling = await context.newPage();
    await sibling.goto(`${other}/`);
    const { visible, bytes } = await sibling.evaluate(async () => {
      document.cookie = "lang=café; domain=doorman.test; path=/";
      return { visible: document.cookie, bytes: await (await fetch("/cookie-bytes")).json() };
    });
    assert.equal(visible, "lang=café");
    // The raw bytes on the wire: "lang=caf" c3 a9 — UTF-8, not percent-encoded.
    assert.deepEqual(bytes, [Buffer.from("lang=café", "utf8").toString("hex")]);
    const stored = (await context.cookies(app)).map((c) => `${c.name}@${c.domain}`);
    for (const c of ["doorman_access@app.doorman.test", "lang@.doorman.test"]) {
      assert.ok(stored.includes(c), `${c} not sent to ${app}: ${stored}`);
    }

    const after = await page.evaluate(async (wsUrl) => {
      const me = await fetch("/api/me");
      const meBody = await me.json().catch(() => null);
      const refresh = await fetch("/api/auth/refresh", {
        method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: "{}",
      });
      const meAfterRefresh = (await fetch("/api/me")).status;
      const welcome = await new Promise((resolve) => {
        const ws = new WebSocket(wsUrl);
        ws.onmessage = (ev) => { resolve(JSON.parse(ev.data)); ws.close(1000); };
        ws.onclose = (ev) => resolve({ closed: ev.code, reason: ev.reason });
      });
      return { me: me.status, auth_source: meBody && meBody.auth_source, error: meBody && meBody.error,
        refresh: refresh.status, meAfterRefresh, welcome };
    }, `ws://app.doorman.test:${port}/ws`);
    assert.equal(after.me, 200, `GET /api/me with the foreign cookie: ${JSON.stringify(after)}`);
    assert.equal(after.auth_source, "cookie");
    assert.equal(after.refresh, 200, `cookie-mode refresh: ${JSON.stringify(after)}`);
    assert.equal(after.meAfterRefresh, 200, `GET /api/me after refresh: ${JSON.stringify(after)}`);
    assert.equal(after.welcome.type, "welcome", `/ws: ${JSON.stringify(after)}`);
    assert.equal(after.welcome.auth_source, "cookie");
  } finally {
    await context.close();
  }
});

await browser.close();
partner.close();
foreign.close();
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
