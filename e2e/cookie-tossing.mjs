// Issue 31, item 1, as the outside attack did it: login CSRF by cookie tossing, in
// Debian's headless Chromium, behind TLS, with two host names under one parent domain.
//
// Usage: node cookie-tossing.mjs   (env: TLS_DOORMAN_PORT, TLS_PORT)
// The doorman under test listens on 127.0.0.1:$TLS_DOORMAN_PORT with
// DOORMAN_PUBLIC_URL=https://app.example.test:$TLS_PORT and trusts 127.0.0.1 as a proxy.
// This script generates a self-signed certificate for *.example.test with openssl and
// serves, on 127.0.0.1:$TLS_PORT, a TLS-terminating proxy: https://app.example.test
// goes to doorman, https://evil.example.test is the attacker's page. Chromium resolves
// *.example.test to 127.0.0.1 and trusts the certificate by its key
// (--ignore-certificate-errors-spki-list): both are real secure origins.
//
// The proxy records the Cookie header of every request it forwards to doorman, so the
// test shows that the planted cookie really reached doorman on the refresh request,
// under the name the server read before the fix (`__Secure-doorman_refresh`).

import https from "node:https";
import http from "node:http";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const backendPort = Number(process.env.TLS_DOORMAN_PORT);
const tlsPort = Number(process.env.TLS_PORT);
const app = `https://app.example.test:${tlsPort}`;
const evil = `https://evil.example.test:${tlsPort}`;
const backend = `http://127.0.0.1:${backendPort}`;
const password = "browser password";
const uniqueEmail = (tag) => `e2e-${tag}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.org`;

// A throwaway certificate for example.test and every name under it, and the base64
// SHA-256 of its public key, which is what Chromium's SPKI allow-list takes.
function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), "doorman-tls-"));
  try {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=example.test",
      "-addext", "subjectAltName=DNS:example.test,DNS:*.example.test",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    const spkiDer = execFileSync("openssl", ["pkey", "-in", key, "-pubout", "-outform", "DER"]);
    const spki = execFileSync("openssl", ["dgst", "-sha256", "-binary"], { input: spkiDer }).toString("base64");
    return { key: readFileSync(key), cert: readFileSync(cert), spki };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The TLS proxy. app.example.test is forwarded to doorman (Host kept, as a load
// balancer does; X-Forwarded-For and X-Forwarded-Proto added); every forwarded request
// is recorded with its Cookie header. evil.example.test answers a plain page.
const forwarded = [];
function serveTls({ key, cert }) {
  const agent = new http.Agent({ keepAlive: true });
  const server = https.createServer({ key, cert }, (req, res) => {
    const host = (req.headers.host || "").toLowerCase();
    if (host === `evil.example.test:${tlsPort}`) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<!doctype html><meta charset=utf-8><title>evil</title><p>a sibling subdomain</p>");
      return;
    }
    if (host !== `app.example.test:${tlsPort}`) {
      res.writeHead(421).end();
      return;
    }
    forwarded.push({ method: req.method, path: req.url, cookie: req.headers.cookie || "" });
    const upstream = http.request({
      host: "127.0.0.1", port: backendPort, method: req.method, path: req.url, agent,
      headers: { ...req.headers, "x-forwarded-for": req.socket.remoteAddress, "x-forwarded-proto": "https" },
    }, (up) => {
      res.writeHead(up.statusCode, up.rawHeaders);
      up.pipe(res);
    });
    upstream.on("error", (e) => { res.writeHead(502).end(String(e)); });
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(tlsPort, "127.0.0.1", () => resolve({ server, agent })));
}

// The Cookie header as name/value pairs, in order.
const cookiePairs = (header) => header.split(/;\s*/).filter(Boolean).map((p) => {
  const eq = p.indexOf("=");
  return eq < 0 ? [p, ""] : [p.slice(0, eq), p.slice(eq + 1)];
});

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

const certificate = makeCertificate();
const proxy = await serveTls(certificate);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP *.example.test 127.0.0.1",
    `--ignore-certificate-errors-spki-list=${certificate.spki}`,
  ],
});

// The attacker signs in to their own account through the API (token mode) and keeps
// the refresh token: what the evil page plants.
async function attackerRefreshToken(email) {
  const post = (path, body) => fetch(`${backend}${path}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  if (email === undefined) {
    email = uniqueEmail("attacker");
    assert.equal((await post("/api/auth/register", { email, password })).status, 201);
  }
  const login = await post("/api/auth/login", { email, password, mode: "token" });
  assert.equal(login.status, 200);
  const body = await login.json();
  return { email, id: body.user.id, token: body.refresh_token };
}

// After the test: the planted token was a live credential of the attacker's (token
// mode still accepts it), so a server that read it would have signed the victim in.
async function assertStillLive(attacker) {
  const r = await fetch(`${backend}/api/auth/refresh`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: attacker.token }),
  });
  assert.equal(r.status, 200, "the planted refresh token was not a live credential");
  assert.equal((await r.json()).user.id, attacker.id);
}

// The app's documented cookie refresh, then /api/me, from the app's page. Returns the
// statuses, who /api/me is, and the Cookie header the refresh request carried.
async function documentedRefresh(page) {
  const before = forwarded.length;
  const result = await page.evaluate(async () => {
    const refresh = await fetch("/api/auth/refresh", { method: "POST", credentials: "include" });
    const me = await fetch("/api/me", { credentials: "include" });
    const body = await me.json().catch(() => null);
    return { refresh: refresh.status, me: me.status, user: body && body.user ? body.user.id : null };
  });
  const sent = forwarded.slice(before).filter((r) => r.method === "POST" && r.path === "/api/auth/refresh");
  assert.equal(sent.length, 1, `refresh requests seen by the proxy: ${JSON.stringify(sent)}`);
  return { ...result, cookie: sent[0].cookie };
}

// The evil page plants `name=<token>; Domain=example.test; Path=/api/auth; Secure`,
// as in the finding; the browser must hold it for the parent domain.
async function plant(context, name, token) {
  const page = await context.newPage();
  try {
    await page.goto(`${evil}/`);
    assert.equal(await page.evaluate(() => window.isSecureContext), true, "evil.example.test is not a secure context");
    await page.evaluate(({ name, token }) => {
      document.cookie = `${name}=${token}; Domain=example.test; Path=/api/auth; Secure`;
    }, { name, token });
  } finally {
    await page.close();
  }
  const held = (await context.cookies(`${app}/api/auth/refresh`)).filter((c) => c.name === name);
  assert.equal(held.length, 1, `${name} not held for ${app}/api/auth/refresh`);
  assert.equal(held[0].domain, ".example.test");
  assert.equal(held[0].value, token);
}

// What the proxy saw on the refresh request: the planted cookie under its name, with
// the attacker's token. Without it the test would prove nothing.
function assertPlantedWasSent(cookie, name, token, label) {
  const pairs = cookiePairs(cookie);
  assert.ok(pairs.some(([n, v]) => n === name && v === token),
    `${label}: the planted ${name} did not reach doorman; Cookie: ${cookie.replace(/=[^;]*/g, "=…")}`);
  // A short trace of the evidence: the cookie names on the wire, the attacker's marked.
  console.log(`     ${label}: refresh request's Cookie names: ${pairs.map(([n, v]) =>
    (v === token ? `${n}=<attacker's token>` : n)).join("; ")}`);
  return pairs;
}

for (const name of ["__Secure-doorman_refresh", "doorman_refresh"]) {
  await scenario(`behind TLS, ${name} planted by evil.example.test (Domain=example.test) never signs the victim into the attacker's account`, async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${app}/`);
      assert.equal(await page.evaluate(() => window.isSecureContext), true, "app.example.test is not a secure context");

      // The victim signs in on the app with cookies.
      const victimEmail = uniqueEmail("victim");
      const victim = await page.evaluate(async ({ email, password }) => {
        const post = (path, body) => fetch(path, {
          method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
        });
        await post("/api/auth/register", { email, password });
        const login = (await post("/api/auth/login", { email, password, mode: "cookie" })).status;
        const me = await (await fetch("/api/me")).json();
        return { login, id: me.user && me.user.id, source: me.auth_source };
      }, { email: victimEmail, password });
      assert.equal(victim.login, 200);
      assert.equal(victim.source, "cookie");
      // Over https every credential cookie is host-only and __Host- prefixed.
      const own = await context.cookies(app);
      for (const n of ["__Host-doorman_access", "__Host-doorman_refresh"]) {
        const c = own.find((c) => c.name === n);
        assert.ok(c, `${n} not set: ${own.map((c) => c.name)}`);
        assert.deepEqual([c.domain, c.path, c.secure, c.httpOnly], ["app.example.test", "/", true, true], n);
      }

      // Signed in: the evil page plants the attacker's refresh token; the app refreshes.
      const attacker = await attackerRefreshToken();
      assert.notEqual(attacker.id, victim.id);
      await plant(context, name, attacker.token);
      const signedIn = await documentedRefresh(page);
      const pairs = assertPlantedWasSent(signedIn.cookie, name, attacker.token, "signed in");
      assert.ok(pairs.some(([n]) => n === "__Host-doorman_refresh"), "the victim's own refresh cookie was not sent");
      assert.notEqual(signedIn.user, attacker.id, "/api/me is the attacker after the cookie refresh");
      assert.deepEqual({ refresh: signedIn.refresh, me: signedIn.me, user: signedIn.user },
        { refresh: 200, me: 200, user: victim.id }, "the victim's own refresh");
      await assertStillLive(attacker);

      // Signed out (no refresh cookie of the victim's left): the planted token is the
      // only refresh credential the browser sends, and still signs nobody in.
      const out = await page.evaluate(() => fetch("/api/auth/logout", { method: "POST", credentials: "include" })
        .then((r) => r.status));
      assert.equal(out, 204);
      const again = await attackerRefreshToken(attacker.email);
      await plant(context, name, again.token);
      const signedOut = await documentedRefresh(page);
      const outPairs = assertPlantedWasSent(signedOut.cookie, name, again.token, "signed out");
      assert.ok(!outPairs.some(([n]) => n.startsWith("__Host-doorman_refresh") || n.endsWith("doorman_access")),
        `a credential of the victim's was still sent: ${outPairs.map(([n]) => n)}`);
      assert.notEqual(signedOut.user, attacker.id, "/api/me is the attacker after the cookie refresh");
      assert.deepEqual({ refresh: signedOut.refresh, me: signedOut.me, user: signedOut.user },
        { refresh: 401, me: 401, user: null }, "signed out stays signed out");
      assert.ok(!(await context.cookies(app)).some((c) => c.name === "__Host-doorman_access"),
        "an access cookie was set from the planted token");
      await assertStillLive(again);
    } finally {
      await context.close();
    }
  });
}

await browser.close();
proxy.server.close();
proxy.agent.destroy();
console.log(`cookie tossing: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
