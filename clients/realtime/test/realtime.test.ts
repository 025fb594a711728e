// The SDK against the real release server (DOORMAN_BIN): connections, restarts,
// kill -9, logout, expired tokens, a reconnect storm, liveness, messages recovered
// after a reconnect (and the cases the server cannot replay), and the close-code
// policy against asyncapi.json. Every frame received is validated against the
// document's schemas (harness.ts).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  CLOSE_POLICY,
  type CloseInfo,
  type GetToken,
  HANDSHAKE_POLICY,
  HistoryError,
  type Options,
  RealtimeClient,
  RealtimeError,
  type RecoveryFailed,
  type RoomMessage,
  type SubscribedFrame,
  type SignedOutInfo,
  type State,
} from "../src/index.js";
import {
  CheckedWebSocket,
  Server,
  frameStats,
  logout,
  newUser,
  publishHttp,
  refresh,
  sleep,
  socketsOpened,
  until,
  validateFrame,
} from "./harness.js";

const doc = JSON.parse(readFileSync(new URL("../../../../asyncapi.json", import.meta.url), "utf8"));

// Every client a test makes, closed after the suite even when a test failed half-way
// (a client left reconnecting would keep the test process alive).
const made: RealtimeClient[] = [];
function track(c: RealtimeClient): RealtimeClient {
  made.push(c);
  return c;
}

/** A client whose every event is recorded. */
function client(server: Server, auth: Options["auth"], extra: Partial<Options> = {}) {
  const c = track(new RealtimeClient({
    url: server.ws,
    auth,
    WebSocket: CheckedWebSocket,
    // Short waits keep the suite quick; the storm test uses the defaults.
    backoff: { initialMs: 300, maxMs: 3000, rateLimitedMs: 1000, laterMs: 500 },
    ...extra,
  }));
  const seen = {
    messages: [] as RoomMessage[],
    subscribed: 0,
    subscribedFrames: [] as SubscribedFrame[],
    // How many messages had been delivered when each `subscribed` came.
    deliveredAtSubscribed: [] as number[],
    recoveryFailed: [] as RecoveryFailed[],
    welcomes: [] as number[],
    closes: [] as CloseInfo[],
    states: [] as State[],
    sessionEnded: [] as CloseInfo[],
    signedOut: [] as SignedOutInfo[],
  };
  c.on("message", (m) => seen.messages.push(m));
  c.on("subscribed", (f) => {
    seen.subscribed++;
    seen.subscribedFrames.push(f);
    seen.deliveredAtSubscribed.push(seen.messages.length);
  });
  c.on("recoveryFailed", (f) => seen.recoveryFailed.push(f));
  c.on("welcome", () => seen.welcomes.push(Date.now()));
  c.on("close", (i) => seen.closes.push(i));
  c.on("state", (s) => seen.states.push(s.state));
  c.on("sessionEnded", (i) => seen.sessionEnded.push(i));
  c.on("signedOut", (i) => seen.signedOut.push(i));
  return { c, seen };
}

const bearer = (token: string): Options["auth"] => ({ kind: "bearer", getToken: () => token });
/** A matcher for assert.rejects: a RealtimeError with this code. */
const realtimeError = (code: RealtimeError["code"]) => (e: unknown) => {
  assert.ok(e instanceof RealtimeError, `not a RealtimeError: ${String(e)}`);
  assert.equal(e.code, code, e.message);
  return true;
};
// What every request for these paths answered so far, summed over statuses.
const count = (byStatus: Record<string, number>) => Object.values(byStatus).reduce((a, b) => a + b, 0);
const frame = (getToken: GetToken): Options["auth"] => ({ kind: "frame", getToken });

/** A WebSocket constructor for one client whose current socket a test can cut (1006). */
function droppable(): { WebSocket: typeof CheckedWebSocket; drop: () => void } {
  const made: CheckedWebSocket[] = [];
  class Droppable extends CheckedWebSocket {
    constructor(...args: ConstructorParameters<typeof CheckedWebSocket>) {
      super(...args);
      made.push(this);
    }
  }
  // No close frame: the client sees 1006, as when the network goes.
  return { WebSocket: Droppable, drop: () => made.at(-1)?.terminate() };
}

const offsets = (ms: RoomMessage[]) => ms.map((m) => m.offset);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("realtime SDK against the release server", () => {
  // A short drain window: a SIGTERM restart takes a second, not ten.
  const server = new Server(18650, { DOORMAN_DRAIN_SECONDS: "1" });
  before(() => server.start());
  after(async () => {
    for (const c of made) c.close();
    await server.dispose();
  });

  test("a Bearer connection (Node, ws) is welcomed as bearer; ping correlates its id", async () => {
    const u = await newUser(server);
    const t = await u.login();
    const { c, seen } = client(server, bearer(t.access_token));
    c.connect();
    await until(() => c.state === "open", 5000, "open");
    assert.equal(c.welcome?.auth_source, "bearer");
    assert.equal(c.welcome?.session_id, t.session_id);
    const rtts = await Promise.all([c.ping(), c.ping(), c.ping()]);
    assert.equal(rtts.length, 3);
    for (const rtt of rtts) assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    const me = await c.whoami();
    assert.equal(me.user_id, t.user.id);
    c.close();
    assert.equal(c.state, "idle");
    assert.equal(seen.welcomes.length, 1);
  });

  test("a first-frame connection sends auth with getToken()'s token and is welcomed as message", async () => {
    const u = await newUser(server);
    const t = await u.login();
    const calls: string[] = [];
    const { c } = client(
      server,
      frame(({ reason }) => {
        calls.push(reason);
        return t.access_token;
      }),
    );
    c.connect();
    await until(() => c.state === "open", 5000, "open");
    assert.equal(c.welcome?.auth_source, "message");
    assert.deepEqual(calls, ["connect"]);
    c.close();
  });

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    test(`after a server ${signal === "SIGTERM" ? "restart" : "kill -9 and restart"} the SDK reconnects, re-subscribes, and no message is duplicated`, async () => {
      const u = await newUser(server);
      const t = await u.login();
      const { c, seen } = client(server, frame(() => t.access_token));
      c.subscribe("lobby");
      c.connect();
      await until(() => seen.subscribed === 1, 5000, "subscribed");
      await publishHttp(server, t.access_token, "lobby", "before");
      await until(() => seen.messages.length === 1, 5000, "the first message");

      try {
        await server.stop(signal);
        await until(() => c.state === "waiting", 5000, "waiting");
      } finally {
        if (!server.running) await server.start();
      }
      // SIGTERM: 1001 from the drain (a retry during the drain window is refused 503
      // and waits longer); SIGKILL: no close frame at all.
      assert.equal(seen.closes[0]?.code, signal === "SIGTERM" ? 1001 : 1006);
      for (const x of seen.closes.slice(1)) {
        assert.ok(x.code === 1006 && (x.status === undefined || x.status === 503), JSON.stringify(x));
      }
      await until(() => seen.subscribed === 2, 15_000, "re-subscribed after the restart");
      await publishHttp(server, t.access_token, "lobby", "after");
      await until(() => seen.messages.length >= 2, 5000, "the second message");
      await sleep(300); // a duplicate would arrive by now
      assert.deepEqual(
        seen.messages.map((m) => m.body),
        ["before", "after"],
      );
      assert.equal(new Set(seen.messages.map((m) => m.id)).size, 2);
      assert.equal(seen.welcomes.length, 2);
      c.close();
    });
  }

  test("logout from another client ends the session: sessionEnded, then no reconnect attempt", async () => {
    const u = await newUser(server);
    const t = await u.login();
    const { c, seen } = client(server, bearer(t.access_token));
    c.connect();
    await until(() => c.state === "open", 5000, "open");
    const opened = socketsOpened;
    // Another client (plain HTTP) logs this session out.
    await logout(server, t.access_token);
    await until(() => seen.sessionEnded.length === 1, 2000, "sessionEnded");
    assert.equal(seen.sessionEnded[0]?.code, 4403);
    assert.equal(seen.sessionEnded[0]?.reason, "session_revoked");
    assert.equal(c.state, "ended");
    const handshakesAtEnd = server.handshakes().total;
    const authenticatedAtEnd = server.authenticated();
    const metricAtEnd = await server.handshakeMetric();
    // The log does count them: this client's own handshake is there.
    assert.ok(handshakesAtEnd >= 1 && authenticatedAtEnd >= 1 && metricAtEnd >= 1, server.tail());
    // Longer than several backoff caps of this client (3 s).
    await sleep(4000);
    assert.equal(server.handshakes().total, handshakesAtEnd, "the server saw a handshake after the session ended");
    assert.equal(server.authenticated(), authenticatedAtEnd);
    assert.equal(await server.handshakeMetric(), metricAtEnd, "doorman_ws_handshakes_total grew");
    assert.equal(socketsOpened, opened, "the SDK opened a socket after the session ended");
    assert.equal(c.state, "ended");
    // Nothing is queued for a client that stopped: refused, with the reason.
    await assert.rejects(c.publish("lobby", "after the end"), realtimeError("not_connected"));
    await assert.rejects(c.welcomed(), realtimeError("not_connected"));
    await assert.rejects(c.ping(), realtimeError("not_connected"));
  });

  test("connect() resolves with the welcome; publish() and ping() before it wait for it, in order, bounded", async () => {
    const u = await newUser(server);
    const t = await u.login();
    const room = `queue-${Date.now()}`;
    // Someone already in the room, to see what arrives and in which order.
    const { c: observer, seen: watched } = client(server, bearer(t.access_token));
    observer.subscribe(room);
    await observer.connect();
    await until(() => watched.subscribed === 1, 5000, "the observer subscribed");

    const { c, seen } = client(server, frame(() => t.access_token), { maxQueued: 3 });
    // Not connecting yet: refused at once, not held for a connect() that may never come.
    await assert.rejects(c.publish(room, "before connect()"), realtimeError("not_connected"));
    c.subscribe(room);
    const welcomed = c.connect();
    assert.equal(c.state, "connecting");
    const queued = [c.publish(room, "q1"), c.publish(room, "q2"), c.publish(room, "q3")];
    await assert.rejects(c.publish(room, "q4"), realtimeError("queue_full"));
    const rtt = c.ping();
    const welcome = await welcomed;
    assert.equal(welcome.auth_source, "message");
    assert.equal(welcome.session_id, t.session_id);
    assert.equal(c.state, "open");
    await Promise.all(queued);
    assert.ok((await rtt) >= 0);
    assert.equal(await c.connect(), welcome, "connect() when open resolves with the current welcome");
    await until(() => watched.messages.length === 3, 5000, "the three queued publishes");
    assert.deepEqual(
      watched.messages.map((m) => m.body),
      ["q1", "q2", "q3"],
    );
    // The room was joined before the queue was flushed: the sender heard its own.
    await until(() => seen.messages.length === 3, 5000, "the sender's own messages");
    await sleep(300);
    assert.equal(watched.messages.length, 3, "q4 (refused) must not arrive");
    c.close();
    observer.close();
  });

  test("close() before the welcome rejects connect(), welcomed() and queued publishes with `closed`", async () => {
    const u = await newUser(server);
    const t = await u.login();
    const { c, seen } = client(server, bearer(t.access_token));
    const connecting = c.connect();
    const waiting = c.welcomed();
    const queued = c.publish("lobby", "never sent");
    c.close();
    await assert.rejects(connecting, realtimeError("closed"));
    await assert.rejects(waiting, realtimeError("closed"));
    await assert.rejects(queued, realtimeError("closed"));
    assert.equal(c.state, "idle");
    await sleep(500);
    assert.deepEqual(seen.welcomes, [], "welcomed after close()");
  });

  test("a cookie client with no cookie is told it is signed out (one /api/me, one refresh) and does not retry", async () => {
    const { c, seen } = client(server, { kind: "cookie" });
    const handshakes = server.handshakes().total;
    const me = count(server.requests("/api/me"));
    const refreshes = count(server.requests("/api/auth/refresh"));
    const opened = socketsOpened;
    const started = Date.now();
    await assert.rejects(c.connect(), (e: unknown) => {
      realtimeError("signed_out")(e);
      assert.match((e as Error).message, /Cookies belong to the host name/);
      return true;
    });
    const took = Date.now() - started;
    // The socket opened, was not welcomed within probeAfterMs (1.5 s), and asked:
    // well before the server's 4408 (10 s).
    assert.ok(took >= 1400 && took < 5000, `signed out after ${took} ms`);
    assert.equal(c.state, "signedOut");
    assert.equal(seen.signedOut.length, 1);
    const info = seen.signedOut[0];
    assert.equal(info?.host, `127.0.0.1:${server.port}`);
    assert.equal(info?.meUrl, `${server.http}/api/me`);
    assert.equal(info?.close, undefined, "decided while the socket was pending, before any close");
    assert.match(info?.message ?? "", /Signing in on localhost:\d+ does not sign you in on 127\.0\.0\.1:\d+/);
    // Longer than several of this client's backoff caps (3 s): nothing more.
    await sleep(4000);
    assert.equal(server.handshakes().total - handshakes, 1);
    assert.equal(socketsOpened - opened, 1);
    assert.equal(count(server.requests("/api/me")) - me, 1);
    // It tried the (absent) refresh cookie once before giving up.
    assert.equal(count(server.requests("/api/auth/refresh")) - refreshes, 1);
    assert.ok((server.requests("/api/auth/refresh")["401"] ?? 0) >= 1);
    assert.equal(c.state, "signedOut");
    assert.deepEqual(seen.closes, []);
    // connect() starts over.
    const again = c.connect();
    assert.equal(c.state, "connecting");
    c.close();
    await assert.rejects(again, realtimeError("closed"));
  });

  test("an expired access token with first-frame auth: 4401, getToken() is asked again, then connected", async () => {
    // Tokens live half a second here; the server tolerates 5 s of clock skew on exp.
    const short = new Server(18651, { DOORMAN_ACCESS_TTL_SECONDS: "0.5" });
    await short.start();
    try {
      const u = await newUser(short);
      let tokens = await u.login();
      await sleep(7000);
      const calls: string[] = [];
      const { c, seen } = client(
        short,
        frame(async ({ reason }) => {
          calls.push(reason);
          // A careless app hands out its stale token; asked again, it refreshes.
          if (reason === "rejected") tokens = await refresh(short, tokens);
          return tokens.access_token;
        }),
      );
      c.connect();
      await until(() => c.state === "open", 5000, "open after a refresh");
      assert.deepEqual(calls, ["connect", "rejected"]);
      assert.deepEqual(
        seen.closes.map((x) => [x.code, x.reason, x.action]),
        [[4401, "invalid_token", "refresh_token"]],
      );
      assert.equal(c.welcome?.session_id, tokens.session_id);
      c.close();
    } finally {
      await short.dispose();
    }
  });

  type Spread = { times: number[]; busiest: number; spread: number };
  function spreadOf(instants: number[], zero: number): Spread {
    const times = instants.map((t) => t - zero).sort((a, b) => a - b);
    let busiest = 0;
    for (const t of times) busiest = Math.max(busiest, times.filter((x) => x >= t && x < t + 100).length);
    return { times, busiest, spread: (times.at(-1) ?? 0) - (times[0] ?? 0) };
  }

  /**
   * 50 clients, kill -9, restart. `attempts`: when each client started the attempt
   * that got it back in (the SDK's doing); `welcomes`: when it was welcomed (what
   * the server saw; a server that is still starting holds early connections in its
   * accept queue and answers them together). Both in ms after the server was up.
   */
  async function storm(random: () => number): Promise<{ attempts: Spread; welcomes: Spread; statuses: string }> {
    const users = await Promise.all(Array.from({ length: 5 }, () => newUser(server)));
    const tokens = await Promise.all(users.map((u) => u.login()));
    const clients = Array.from({ length: 50 }, (_, i) => {
      const t = tokens[i % tokens.length];
      assert.ok(t);
      // The SDK's default backoff: what an application would ship.
      return track(
        new RealtimeClient({ url: server.ws, auth: bearer(t.access_token), WebSocket: CheckedWebSocket, random }),
      );
    });
    const arrivals: number[] = [];
    const attempts: number[] = [];
    for (const c of clients) c.connect();
    await until(() => clients.every((c) => c.state === "open"), 20_000, "50 open");
    for (const c of clients) {
      let attempt = 0;
      c.on("state", (s) => {
        if (s.state === "connecting") attempt = Date.now();
      });
      c.on("welcome", () => {
        arrivals.push(Date.now());
        attempts.push(attempt);
      });
    }
    const before = server.handshakes();
    try {
      await server.stop("SIGKILL");
    } finally {
      await server.start();
    }
    const up = Date.now();
    await until(() => arrivals.length === 50, 30_000, "50 back");
    const after = server.handshakes();
    for (const c of clients) c.close();
    assert.equal(after.byStatus["101"], (before.byStatus["101"] ?? 0) + 50, "one successful handshake per client");
    const delta = Object.fromEntries(
      Object.entries(after.byStatus).map(([k, v]) => [k, v - (before.byStatus[k] ?? 0)]),
    );
    return { attempts: spreadOf(attempts, up), welcomes: spreadOf(arrivals, up), statuses: JSON.stringify(delta) };
  }

  test("50 clients dropped by kill -9 come back spread out, not in one burst", async () => {
    const line = (s: Spread) =>
      `first ${s.times[0]} ms, median ${s.times[25]} ms, last ${s.times.at(-1)} ms, busiest 100 ms ${s.busiest} of 50`;
    const report = (what: string, r: Awaited<ReturnType<typeof storm>>) =>
      console.log(
        `# ${what} (ms after the server was up): successful attempts started ${line(r.attempts)}; ` +
          `welcomed ${line(r.welcomes)}; handshakes after the kill ${r.statuses}`,
      );
    // The control: the same clients without jitter (every wait at its cap) do come
    // back in one burst, so the measurement below can tell a burst when it sees one.
    const control = await storm(() => 0.999);
    report("without jitter", control);
    const jittered = await storm(Math.random);
    report("with full jitter", jittered);
    assert.ok(control.attempts.busiest >= 35, `the control was not a burst: ${control.attempts.busiest}`);
    assert.ok(jittered.attempts.spread >= 500, `attempts within ${jittered.attempts.spread} ms: one burst`);
    assert.ok(jittered.attempts.busiest <= 25, `${jittered.attempts.busiest} of 50 attempts within 100 ms`);
  });

  test("a frozen server (SIGSTOP) is noticed within about three heartbeats, and the SDK reconnects when it wakes", async () => {
    const hb = new Server(18652, { DOORMAN_WS_HEARTBEAT_SECONDS: "1" });
    await hb.start();
    try {
      const u = await newUser(hb);
      const t = await u.login();
      const { c, seen } = client(hb, bearer(t.access_token));
      c.connect();
      await until(() => c.state === "open", 5000, "open");
      assert.equal(c.welcome?.heartbeat_s, 1);
      // Two intervals of normal traffic: server pings keep it alive.
      await sleep(2500);
      assert.equal(c.state, "open");
      hb.freeze(true);
      const frozeAt = Date.now();
      await until(() => seen.closes.length > 0, 6000, "the silent socket declared dead");
      const noticedAfter = Date.now() - frozeAt;
      assert.equal(seen.closes[0]?.code, 4000);
      // Last heard at most one interval before the freeze; dead after three silent ones.
      assert.ok(noticedAfter >= 1800 && noticedAfter <= 4500, `noticed after ${noticedAfter} ms`);
      hb.freeze(false);
      await until(() => seen.welcomes.length === 2, 10_000, "welcomed again");
      c.close();
    } finally {
      await hb.dispose();
    }
  });

  test("a cookie client: 4408 leads to one sign-in check; /api/me 200 keeps it reconnecting as before", async () => {
    const quick = new Server(18653, { DOORMAN_WS_AUTH_TIMEOUT_SECONDS: "1" });
    await quick.start();
    try {
      // Asks only after the server's 1 s auth timeout: the check follows the 4408.
      const { c, seen } = client(quick, { kind: "cookie" }, { probeAfterMs: 60_000 });
      await assert.rejects(c.connect(), realtimeError("signed_out"));
      assert.deepEqual(
        seen.closes.map((x) => [x.code, x.reason]),
        [[4408, "auth_timeout"]],
      );
      assert.equal(seen.signedOut[0]?.close?.code, 4408);
      assert.equal(count(quick.requests("/api/me")), 1);

      // A /api/me that says "signed in" (here /healthz stands in for it): the client
      // keeps reconnecting, asking once per attempt.
      const { c: hopeful, seen: hoped } = client(
        quick,
        { kind: "cookie" },
        { meUrl: `${quick.http}/healthz`, probeAfterMs: 300, backoff: { initialMs: 200, maxMs: 400 } },
      );
      const health = count(quick.requests("/healthz"));
      void hopeful.connect();
      await until(() => hoped.closes.length >= 3, 10_000, "three 4408s");
      await until(() => hopeful.state === "connecting" || hopeful.state === "waiting", 2000, "still trying");
      hopeful.close();
      assert.ok(hoped.closes.every((x) => x.code === 4408), JSON.stringify(hoped.closes));
      assert.deepEqual(hoped.signedOut, []);
      const asked = count(quick.requests("/healthz")) - health;
      // One check per attempt (the timer's, reused after the 4408); the attempt
      // running at close() may have made its own.
      assert.ok(asked >= 3 && asked <= hoped.closes.length + 1, `${asked} checks for ${hoped.closes.length} attempts`);
    } finally {
      await quick.dispose();
    }
  });

  test("a dropped socket: the messages published meanwhile are replayed once, in order, marked recovered", async () => {
    const [u, p] = await Promise.all([newUser(server), newUser(server)]);
    const [t, pt] = await Promise.all([u.login(), p.login()]);
    const room = `recover-${Date.now()}`;
    const { c: publisher } = client(server, bearer(pt.access_token));
    await publisher.connect();
    // Every reconnect waits 1.5 s (jitter fixed at its cap): the publishes below land
    // while the client is away.
    const net = droppable();
    const { c, seen } = client(server, frame(() => t.access_token), {
      WebSocket: net.WebSocket,
      random: () => 0.999,
      backoff: { initialMs: 1500, maxMs: 1500 },
    });
    c.subscribe(room);
    await c.connect();
    await until(() => seen.subscribed === 1, 5000, "subscribed");
    const first = seen.subscribedFrames[0];
    assert.equal(first?.offset, 0, "a room without messages is at offset 0");
    assert.equal(first?.recovered, undefined, "no since, no recovered");
    await publisher.publish(room, "m1");
    await until(() => seen.messages.length === 1, 5000, "m1 live");
    const epoch = seen.messages[0]?.epoch;
    assert.equal(typeof epoch, "string");
    assert.deepEqual(c.positions.get(room), { offset: 1, epoch });

    net.drop();
    await until(() => c.state === "waiting", 5000, "waiting after the drop");
    for (const body of ["m2", "m3", "m4"]) await publisher.publish(room, body);
    await until(() => seen.subscribed === 2, 10_000, "re-subscribed");
    await until(() => seen.messages.length === 4, 5000, "m2..m4 replayed");
    await publisher.publish(room, "m5");
    await until(() => seen.messages.length === 5, 5000, "m5 live");
    await sleep(300); // a duplicate would be here by now

    const again = seen.subscribedFrames[1];
    assert.equal(again?.recovered, true, JSON.stringify(again));
    assert.equal(again?.offset, 4);
    assert.deepEqual(seen.recoveryFailed, []);
    assert.deepEqual(
      seen.messages.map((m) => [m.body, m.offset, m.recovered]),
      [["m1", 1, false], ["m2", 2, true], ["m3", 3, true], ["m4", 4, true], ["m5", 5, false]],
    );
    assert.ok(seen.messages.every((m) => m.epoch === epoch));
    assert.equal(new Set(seen.messages.map((m) => m.id)).size, 5);
    assert.deepEqual(c.positions.get(room), { offset: 5, epoch });
    assert.deepEqual(seen.closes.map((x) => x.code), [1006]);

    // close() and connect() (an app going offline and back) resume the same way.
    c.close();
    await publisher.publish(room, "m6");
    await c.connect();
    await until(() => seen.messages.length === 6, 5000, "m6 replayed after connect()");
    assert.deepEqual([seen.messages[5]?.body, seen.messages[5]?.recovered], ["m6", true]);
    c.close();
    publisher.close();
  });

  test("no message missing or twice at the seam between replay and live, with publishes during the reconnect", async () => {
    const [u, p] = await Promise.all([newUser(server), newUser(server)]);
    const [t, pt] = await Promise.all([u.login(), p.login()]);
    const room = `seam-${Date.now()}`;
    const { c: publisher } = client(server, bearer(pt.access_token));
    await publisher.connect();
    const net = droppable();
    const { c, seen } = client(server, bearer(t.access_token), {
      WebSocket: net.WebSocket,
      backoff: { initialMs: 300, maxMs: 300 },
    });
    c.subscribe(room);
    await c.connect();
    await until(() => seen.subscribed === 1, 5000, "subscribed");
    // 40 publishes, one every 50 ms (the per-user publish budget is 20 a second); the
    // socket is cut after the 10th and the client comes back while the others are
    // still being published.
    const total = 40;
    for (let i = 1; i <= total; i++) {
      await publisher.publish(room, `n${i}`);
      if (i === 10) net.drop();
      await sleep(50);
    }
    await until(() => seen.messages.length >= total, 10_000, `${total} messages`);
    await sleep(300);
    assert.equal(seen.subscribed, 2, "one reconnect");
    assert.deepEqual(offsets(seen.messages), range(1, total));
    assert.deepEqual(
      seen.messages.map((m) => m.body),
      range(1, total).map((i) => `n${i}`),
    );
    // Three runs: live up to the drop, replayed up to the re-subscription's offset,
    // live after it.
    const had = seen.deliveredAtSubscribed[1] ?? -1;
    const upTo = seen.subscribedFrames[1]?.offset ?? -1;
    assert.equal(seen.subscribedFrames[1]?.recovered, true);
    assert.ok(had >= 1 && upTo > had && upTo < total, `delivered ${had} before, replay up to ${upTo}`);
    for (const m of seen.messages) {
      const offset = m.offset ?? 0;
      assert.equal(m.recovered, offset > had && offset <= upTo, `offset ${offset}: recovered ${m.recovered}`);
    }
    console.log(`# seam: ${had} live before the drop, ${upTo - had} replayed, ${total - upTo} live after`);
    c.close();
    publisher.close();
  });

  test("history too short (DOORMAN_HISTORY_SIZE=3, 10 missed): recoveryFailed too_old, nothing replayed; history() pages", async () => {
    const small = new Server(18654, { DOORMAN_HISTORY_SIZE: "3" });
    await small.start();
    try {
      const u = await newUser(small);
      const t = await u.login();
      const room = `too-old-${Date.now()}`;
      const { c, seen } = client(small, bearer(t.access_token));
      c.subscribe(room);
      await c.connect();
      await until(() => seen.subscribed === 1, 5000, "subscribed");
      await publishHttp(small, t.access_token, room, "seen");
      await until(() => seen.messages.length === 1, 5000, "the first message");
      const epoch = seen.messages[0]?.epoch ?? "";
      c.close();
      for (let i = 1; i <= 10; i++) await publishHttp(small, t.access_token, room, `missed ${i}`);
      await c.connect();
      await until(() => seen.recoveryFailed.length === 1, 5000, "recoveryFailed");
      assert.deepEqual(seen.recoveryFailed[0], {
        room,
        reason: "too_old",
        since: { offset: 1, epoch },
        position: { offset: 11, epoch },
      });
      const answer = seen.subscribedFrames[1];
      assert.deepEqual([answer?.recovered, answer?.reason, answer?.offset], [false, "too_old", 11]);
      await publishHttp(small, t.access_token, room, "live");
      await until(() => seen.messages.length === 2, 5000, "the live message");
      await sleep(200);
      assert.deepEqual(
        seen.messages.map((m) => [m.body, m.offset, m.recovered]),
        [["seen", 1, false], ["live", 12, false]],
      );

      // The refetch: what the room still has, two at a time.
      const bodies: string[] = [];
      let after: number | null = 0;
      let pages = 0;
      while (after !== null) {
        const page = await c.history(room, { after, limit: 2 });
        assert.equal(page.room, room);
        assert.equal(page.epoch, epoch);
        bodies.push(...page.messages.map((m) => `${m.offset}:${m.body}`));
        after = page.next;
        pages += 1;
        assert.ok(pages < 10, "history() does not end");
      }
      assert.deepEqual(bodies, ["10:missed 9", "11:missed 10", "12:live"]);
      const one = await c.history(room, { after: 10, before: 12 });
      assert.deepEqual(one.messages.map((m) => m.offset), [11]);
      // The same rule as subscribing: a private room of nobody's is refused.
      await assert.rejects(c.history("private:nobody-owns-this"), (e: unknown) => {
        assert.ok(e instanceof HistoryError, String(e));
        assert.equal(e.status, 403, e.message);
        return true;
      });
      c.close();
    } finally {
      await small.dispose();
    }
  });

  test("a server without history (DOORMAN_HISTORY_SIZE=0): no offsets; a reconnect reports history_off, never a silent gap", async () => {
    const none = new Server(18655, { DOORMAN_HISTORY_SIZE: "0" });
    await none.start();
    try {
      const u = await newUser(none);
      const t = await u.login();
      const room = `no-history-${Date.now()}`;
      const { c, seen } = client(none, bearer(t.access_token));
      c.subscribe(room);
      await c.connect();
      await until(() => seen.subscribed === 1, 5000, "subscribed");
      await publishHttp(none, t.access_token, room, "one");
      await until(() => seen.messages.length === 1, 5000, "one");
      assert.equal(seen.messages[0]?.offset, undefined);
      assert.equal(seen.messages[0]?.epoch, undefined);
      c.close();
      await publishHttp(none, t.access_token, room, "missed");
      await c.connect();
      await until(() => seen.subscribed === 2, 5000, "re-subscribed");
      await sleep(200);
      assert.deepEqual(seen.messages.map((m) => m.body), ["one"], "nothing replayed");
      if (typeof seen.subscribedFrames[0]?.offset === "number") {
        // The server announces positions: asked to resume, it says it cannot.
        assert.deepEqual(seen.recoveryFailed.map((f) => [f.room, f.reason]), [[room, "history_off"]]);
      } else {
        assert.deepEqual(seen.recoveryFailed, []);
        assert.equal(c.positions.size, 0);
      }
      c.close();
    } finally {
      await none.dispose();
    }
  });

  test("the close-code policy is the one asyncapi.json documents", () => {
    const rows: Array<{ code: number; reason: string; action: string }> = doc.channels.socket["x-close-codes"];
    assert.ok(rows.length >= 10);
    for (const row of rows) {
      const sdk = CLOSE_POLICY[row.code];
      // `none` requires nothing: the SDK reconnects when it did not ask for the close.
      if (row.action === "none") continue;
      assert.equal(sdk, row.action, `close ${row.code} ${row.reason}`);
    }
    // The SDK sees a refused handshake's status, not its error code: where the
    // document gives one status several rows (403: origin_refused → fix_client,
    // account_blocked → sign_in_again), its action is one of theirs.
    const refusals = doc.channels.socket["x-handshake-refusals"] as Array<{ status: number; action: string }>;
    for (const row of refusals) {
      const documented = refusals.filter((r) => r.status === row.status).map((r) => r.action);
      assert.ok(documented.includes(HANDSHAKE_POLICY[row.status] ?? ""), `handshake ${row.status}`);
      if (documented.length === 1) assert.equal(HANDSHAKE_POLICY[row.status], row.action, `handshake ${row.status}`);
    }
  });

  test("every frame the clients received is valid against asyncapi.json", () => {
    assert.ok(frameStats.checked > 100, `only ${frameStats.checked} frames checked`);
    // The check has teeth: frames the document does not allow are refused.
    assert.equal(validateFrame({ type: "welcome", user_id: "x" }).ok, false);
    // Fields the document does not name are tolerated: a newer server may add some.
    assert.equal(validateFrame({ type: "pong", id: 1, extra: { nested: true } }).ok, true);
    assert.equal(validateFrame({ type: "unsubscribed", room: "a", reason: "kicked" }).ok, false);
    assert.equal(validateFrame({ type: "teleport" }).ok, false);
    assert.deepEqual(frameStats.invalid, []);
    console.log(`# ${frameStats.checked} frames validated against asyncapi.json`);
  });
});
