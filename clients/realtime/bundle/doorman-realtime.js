// doorman realtime SDK (clients/realtime), built by scripts/bundle.mjs; do not edit.
"use strict";
var DoormanRealtime = (() => {
  var __defProp = Object.defineProperty;
  var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
  var __getOwnPropNames = Object.getOwnPropertyNames;
  var __hasOwnProp = Object.prototype.hasOwnProperty;
  var __export = (target, all) => {
    for (var name in all)
      __defProp(target, name, { get: all[name], enumerable: true });
  };
  var __copyProps = (to, from, except, desc) => {
    if (from && typeof from === "object" || typeof from === "function") {
      for (let key of __getOwnPropNames(from))
        if (!__hasOwnProp.call(to, key) && key !== except)
          __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
    }
    return to;
  };
  var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);

  // src/index.ts
  var index_exports = {};
  __export(index_exports, {
    CLOSE_POLICY: () => CLOSE_POLICY,
    HANDSHAKE_POLICY: () => HANDSHAKE_POLICY,
    HistoryError: () => HistoryError,
    RealtimeClient: () => RealtimeClient,
    RealtimeError: () => RealtimeError
  });
  var HistoryError = class extends Error {
    name = "HistoryError";
    status;
    code;
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  };
  var CLOSE_POLICY = {
    1e3: "reconnect",
    // the server never ends a healthy socket with it (heartbeat_timeout)
    1001: "reconnect",
    1002: "fix_client",
    1006: "reconnect",
    1007: "fix_client",
    1008: "fix_client",
    1009: "fix_client",
    1011: "reconnect_later",
    1013: "reconnect_later",
    4400: "fix_client",
    4401: "refresh_token",
    4403: "sign_in_again",
    4408: "reconnect",
    4429: "back_off"
  };
  var HANDSHAKE_POLICY = {
    400: "fix_client",
    401: "refresh_token",
    403: "fix_client",
    429: "back_off",
    503: "reconnect_later"
  };
  var RealtimeError = class extends Error {
    name = "RealtimeError";
    code;
    /** The close behind it, if a close was. */
    close;
    constructor(code, message, close) {
      super(message);
      this.code = code;
      this.close = close;
    }
  };
  var OPEN = 1;
  var DEAD_SOCKET = { code: 4e3, reason: "heartbeat timeout" };
  var CONNECT_TIMEOUT = { code: 4e3, reason: "connect timeout" };
  var REFRESHED = { code: 4e3, reason: "cookie refreshed" };
  function besideSocket(wsUrl, path) {
    return new URL(path, wsUrl.replace(/^ws(s?):/i, "http$1:")).href;
  }
  function signedOutMessage(meUrl) {
    const { host, hostname, protocol, port } = new URL(meUrl);
    const other = hostname === "localhost" ? "127.0.0.1" : hostname === "127.0.0.1" ? "localhost" : void 0;
    const example = other ? ` Signing in on ${other}${port ? `:${port}` : ""} does not sign you in on ${host}.` : "";
    return `Not signed in on ${host}: ${meUrl} answered 401 and there was no session to refresh, so this browser holds no session cookie for ${host}. Cookies belong to the host name they were set on.${example} Sign in on ${protocol}//${host}, then connect again.`;
  }
  var DEFAULT_BACKOFF = {
    initialMs: 1e3,
    maxMs: 3e4,
    rateLimitedMs: 5e3,
    laterMs: 2e3
  };
  var RealtimeClient = class {
    #opts;
    #backoff;
    #random;
    #Socket;
    #listeners = /* @__PURE__ */ new Map();
    #rooms = /* @__PURE__ */ new Set();
    #pings = /* @__PURE__ */ new Map();
    // Recently delivered message ids, oldest first: a message is delivered once.
    #seen = /* @__PURE__ */ new Set();
    // Each room's position: the last offset and epoch delivered (or announced by
    // `subscribed`), sent as `since` when the room is joined again.
    #positions = /* @__PURE__ */ new Map();
    // The `since` of each subscribe sent on the current socket and not yet answered.
    #asked = /* @__PURE__ */ new Map();
    // Rooms whose replay is under way on this socket: messages up to this position
    // (the room's latest when the subscription began) are the recovered ones.
    #replaying = /* @__PURE__ */ new Map();
    #state = "idle";
    #socket;
    #attempt = 0;
    #tokenRejected = false;
    #handshakeStatus;
    #retryTimer;
    #liveness;
    #lastHeard = 0;
    #nextPingId = 1;
    #welcome;
    #connectTimer;
    // Promises waiting for the next welcome (connect(), welcomed(), ping() before it).
    #waiters = [];
    // publish() frames waiting for the welcome, oldest first.
    #queue = [];
    // Cookie clients, per attempt: was it welcomed, and the one sign-in check it made.
    #welcomedThisAttempt = false;
    #probe;
    #probeTimer;
    // Bumped by connect() and close(): a probe answering late belongs to an older run.
    #generation = 0;
    constructor(opts) {
      this.#opts = opts;
      this.#backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
      this.#random = opts.random ?? Math.random;
      const Socket = opts.WebSocket ?? globalThis.WebSocket;
      if (!Socket) throw new Error("no WebSocket on this platform: pass one (the `ws` package) as options.WebSocket");
      this.#Socket = Socket;
    }
    /** The current state. */
    get state() {
      return this.#state;
    }
    /** The last `welcome` of the open socket. */
    get welcome() {
      return this.#state === "open" ? this.#welcome : void 0;
    }
    /** The rooms the client keeps itself subscribed to. */
    get rooms() {
      return this.#rooms;
    }
    /**
     * Each room's position (the last message delivered, or the room's latest when it
     * was joined): where a re-subscription resumes. A copy; an app that wants to
     * resume after a page reload may store it and pass it to subscribe().
     */
    get positions() {
      return new Map([...this.#positions].map(([room, p]) => [room, { ...p }]));
    }
    on(event, fn) {
      let set = this.#listeners.get(event);
      if (!set) {
        set = /* @__PURE__ */ new Set();
        this.#listeners.set(event, set);
      }
      set.add(fn);
      return () => set.delete(fn);
    }
    /**
     * Starts connecting (again, after `ended`, `failed`, `signedOut` or `close()`).
     * Resolves with the first `welcome`; rejects with a {@link RealtimeError} when the
     * client stops first (`session_ended`, `failed`, `signed_out`, `closed`). The
     * client keeps retrying meanwhile, so the promise may wait long: race it with a
     * timer if you need a deadline. Ignoring it is fine (the `state` event tells
     * the same): its rejection is never reported as unhandled.
     */
    connect() {
      if (this.#state === "open" && this.#welcome) return Promise.resolve(this.#welcome);
      if (this.#state !== "connecting" && this.#state !== "waiting") {
        this.#generation += 1;
        this.#attempt = 0;
        this.#tokenRejected = false;
        void this.#open();
      }
      const welcomed = this.welcomed();
      welcomed.catch(() => {
      });
      return welcomed;
    }
    /**
     * Resolves with the current `welcome` when open, else with the next one. Rejects
     * with `not_connected` when the client is not connecting, and like connect() when
     * it stops before a welcome.
     */
    welcomed() {
      if (this.#state === "open" && this.#welcome) return Promise.resolve(this.#welcome);
      if (this.#state !== "connecting" && this.#state !== "waiting") {
        return Promise.reject(this.#notConnected());
      }
      return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
    }
    /**
     * Closes the socket and stops reconnecting. Rooms are kept for a later connect();
     * queued publishes and waiting promises reject with `closed`.
     */
    close() {
      this.#generation += 1;
      clearTimeout(this.#retryTimer);
      this.#teardown(1e3, "client closed");
      this.#setState("idle");
      this.#stopped(new RealtimeError("closed", "close() was called"));
    }
    /**
     * Joins a room now (if open) and after every welcome. After a reconnect the client
     * asks the server to replay what the room missed (from its position). `since`:
     * resume from a position kept elsewhere (e.g. {@link positions} stored before a
     * page reload); the replay or a `recoveryFailed` follows as after a reconnect.
     */
    subscribe(room, options = {}) {
      this.#rooms.add(room);
      if (options.since) this.#positions.set(room, { offset: options.since.offset, epoch: options.since.epoch });
      this.#sendSubscribe(room, options.since !== void 0);
    }
    /** Leaves a room and stops re-joining it (its position is forgotten). */
    unsubscribe(room) {
      this.#rooms.delete(room);
      this.#positions.delete(room);
      this.#replaying.delete(room);
      this.#asked.delete(room);
      this.#send({ type: "unsubscribe", room });
    }
    /**
     * One page of a room's history (`GET /api/rooms/{room}/messages`), oldest first,
     * with this client's credentials: the cookie (`credentials: "include"`) or a
     * Bearer token from `getToken()` (asked again, `rejected`, after a 401). For refetching after `recoveryFailed`: loop with
     * `after = page.next` until `next` is null. The same rule as subscribing decides
     * who may read it. Rejects with a {@link HistoryError} on a refusal.
     */
    async history(room, query = {}) {
      const fetch = globalThis.fetch;
      if (!fetch) throw new Error("no fetch on this platform");
      const path = `api/rooms/${encodeURIComponent(room).replace(/%3A/gi, ":")}/messages`;
      const url = new URL(besideSocket(this.#opts.url, path));
      for (const key of ["after", "before", "limit"]) {
        const v = query[key];
        if (v !== void 0) url.searchParams.set(key, String(v));
      }
      const { auth } = this.#opts;
      const headers = { accept: "application/json" };
      if (auth.kind !== "cookie") headers.authorization = `Bearer ${await auth.getToken({ reason: "connect" })}`;
      const credentials = auth.kind === "cookie" ? "include" : "omit";
      let r = await fetch.call(globalThis, url.href, { method: "GET", credentials, cache: "no-store", headers });
      if (r.status === 401 && auth.kind !== "cookie") {
        headers.authorization = `Bearer ${await auth.getToken({ reason: "rejected" })}`;
        r = await fetch.call(globalThis, url.href, { method: "GET", credentials, cache: "no-store", headers });
      }
      const text = await r.text();
      let body;
      try {
        body = text ? JSON.parse(text) : void 0;
      } catch {
        body = void 0;
      }
      if (r.status !== 200) {
        const b = body;
        const code = typeof b?.error === "string" ? b.error : void 0;
        const message = typeof b?.message === "string" ? b.message : text.slice(0, 200);
        throw new HistoryError(r.status, code, `history of ${room}: ${r.status} ${code ?? ""} ${message}`.trim());
      }
      const page = body;
      return { ...page, next: page.next ?? null };
    }
    /**
     * Publishes to a room. Open: sent at once. Connecting or waiting to reconnect:
     * queued (at most `maxQueued`, default 100) and sent, in order, right after the
     * next welcome. Resolves once the frame is written to a socket (doorman answers a
     * refused publish with an `error` frame); rejects with a {@link RealtimeError}:
     * `not_connected` (connect() not called, or the client stopped), `queue_full`, or
     * — for a queued frame — the reason the client stopped before its welcome.
     */
    publish(room, body) {
      const frame = { type: "publish", room, body };
      if (this.#send(frame)) return Promise.resolve();
      if (!this.#trying()) return Promise.reject(this.#notConnected());
      const max = this.#opts.maxQueued ?? 100;
      if (this.#queue.length >= max) {
        return Promise.reject(
          new RealtimeError("queue_full", `${max} publishes already wait for the welcome (options.maxQueued)`)
        );
      }
      return new Promise((resolve, reject) => this.#queue.push({ frame, resolve, reject }));
    }
    /** Asks for `identity`; resolves with the next one (waits for the welcome first). */
    async whoami(timeoutMs = 1e4) {
      const deadline = Date.now() + timeoutMs;
      await this.#welcomedBy(deadline, "identity");
      return new Promise((resolve, reject) => {
        if (!this.#send({ type: "whoami" })) return reject(this.#notConnected());
        const timer = setTimeout(
          () => {
            off();
            reject(new RealtimeError("timeout", "no identity in time"));
          },
          Math.max(0, deadline - Date.now())
        );
        const off = this.on("identity", (frame) => {
          clearTimeout(timer);
          off();
          resolve(frame);
        });
      });
    }
    /**
     * Sends `ping` with a fresh id (after the welcome, waiting for it if need be);
     * resolves with the round-trip time (ms) of its `pong`.
     */
    async ping(timeoutMs = 1e4) {
      const deadline = Date.now() + timeoutMs;
      await this.#welcomedBy(deadline, "pong");
      const id = this.#nextPingId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => {
            this.#pings.delete(id);
            reject(new RealtimeError("timeout", `no pong ${id} in time`));
          },
          Math.max(0, deadline - Date.now())
        );
        this.#pings.set(id, {
          sent: Date.now(),
          resolve: (rtt) => {
            clearTimeout(timer);
            resolve(rtt);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          }
        });
        if (!this.#send({ type: "ping", id })) {
          this.#pings.get(id)?.reject(this.#notConnected());
          this.#pings.delete(id);
        }
      });
    }
    /** welcomed(), failing with `timeout` at the deadline. */
    async #welcomedBy(deadline, what) {
      if (this.#state === "open") return;
      let timer;
      const late = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new RealtimeError("timeout", `not welcomed in time to ask for a ${what}`)),
          Math.max(0, deadline - Date.now())
        );
      });
      try {
        await Promise.race([this.welcomed(), late]);
      } finally {
        clearTimeout(timer);
      }
    }
    /** Connecting, open, or waiting to reconnect: a frame sent now will go out. */
    #trying() {
      return this.#state === "connecting" || this.#state === "waiting" || this.#state === "open";
    }
    #notConnected() {
      return new RealtimeError(
        "not_connected",
        this.#state === "idle" ? "not connected: call connect() first" : `not connected: the client stopped (state ${this.#state}); call connect() again`
      );
    }
    /** The client stopped: every promise waiting for a welcome or a send fails with `error`. */
    #stopped(error) {
      const waiters = this.#waiters.splice(0);
      const queue = this.#queue.splice(0);
      for (const w of waiters) w.reject(error);
      for (const q of queue) q.reject(error);
    }
    #emit(event, value) {
      for (const fn of this.#listeners.get(event) ?? []) {
        try {
          fn(value);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    }
    #setState(state, extra = {}) {
      const previous = this.#state;
      if (previous === state && state !== "waiting") return;
      this.#state = state;
      this.#emit("state", { state, previous, ...extra });
    }
    /** A `subscribe`, with `since` when asked to resume and the room has a position. */
    #sendSubscribe(room, resume) {
      const position = resume ? this.#positions.get(room) : void 0;
      const frame = position ? { type: "subscribe", room, since: { offset: position.offset, epoch: position.epoch } } : { type: "subscribe", room };
      if (this.#send(frame)) this.#asked.set(room, position && { ...position });
    }
    /**
     * What a `subscribed` frame says of the room's position and the replay; the
     * failed recovery to report (after the `subscribed` event), if one failed.
     */
    #onSubscribed(frame) {
      const since = this.#asked.get(frame.room);
      this.#asked.delete(frame.room);
      if (typeof frame.offset !== "number" || typeof frame.epoch !== "string") return void 0;
      const now = { offset: frame.offset, epoch: frame.epoch };
      const kept = this.#positions.get(frame.room);
      if (since && frame.recovered === true) {
        if (now.offset > 0) this.#replaying.set(frame.room, now);
        return void 0;
      }
      if (since && frame.recovered === false) {
        this.#positions.set(frame.room, now);
        return { room: frame.room, reason: frame.reason ?? "history_off", since, position: { ...now } };
      }
      if (!kept || kept.epoch !== now.epoch || kept.offset < now.offset) this.#positions.set(frame.room, now);
      return void 0;
    }
    /** False when the message is a duplicate by its room position; else true, position moved. */
    #advance(frame) {
      if (typeof frame.offset !== "number" || typeof frame.epoch !== "string") return { fresh: true, recovered: false };
      const kept = this.#positions.get(frame.room);
      if (kept && kept.epoch === frame.epoch && frame.offset <= kept.offset) return { fresh: false, recovered: false };
      this.#positions.set(frame.room, { offset: frame.offset, epoch: frame.epoch });
      const replay = this.#replaying.get(frame.room);
      let recovered = false;
      if (replay) {
        recovered = replay.epoch === frame.epoch && frame.offset <= replay.offset;
        if (!recovered || frame.offset >= replay.offset) this.#replaying.delete(frame.room);
      }
      return { fresh: true, recovered };
    }
    #send(frame) {
      if (this.#state !== "open" || this.#socket?.readyState !== OPEN) return false;
      this.#socket.send(JSON.stringify(frame));
      return true;
    }
    async #open() {
      this.#setState("connecting");
      this.#handshakeStatus = void 0;
      this.#welcomedThisAttempt = false;
      this.#probe = void 0;
      const { auth } = this.#opts;
      let token;
      if (auth.kind !== "cookie") {
        const reason = this.#tokenRejected ? "rejected" : "connect";
        try {
          token = await auth.getToken({ reason });
        } catch {
          return this.#retry({ code: 1006, reason: "getToken failed", action: "reconnect" });
        }
        if (this.#state !== "connecting") return;
      }
      const Ctor = this.#Socket;
      const socket = auth.kind === "bearer" ? new Ctor(this.#opts.url, { headers: { Authorization: `Bearer ${token}` } }) : new Ctor(this.#opts.url);
      this.#socket = socket;
      clearTimeout(this.#connectTimer);
      this.#connectTimer = setTimeout(() => {
        if (socket !== this.#socket || this.#state !== "connecting") return;
        this.#teardown(CONNECT_TIMEOUT.code, CONNECT_TIMEOUT.reason);
        this.#emit("close", { ...CONNECT_TIMEOUT, action: "reconnect" });
        this.#retry({ ...CONNECT_TIMEOUT, action: "reconnect" });
      }, this.#opts.connectTimeoutMs ?? 15e3);
      socket.onopen = () => {
        this.#lastHeard = Date.now();
        if (auth.kind === "frame" && token !== void 0) {
          socket.send(JSON.stringify({ type: "auth", token }));
        }
        if (auth.kind === "cookie") {
          clearTimeout(this.#probeTimer);
          this.#probeTimer = setTimeout(() => {
            if (socket !== this.#socket || this.#welcomedThisAttempt) return;
            const generation = this.#generation;
            void this.#checkSignIn().then((found) => {
              if (socket !== this.#socket || generation !== this.#generation || this.#state !== "connecting") return;
              if (found === "signedOut") this.#signOut();
              else if (found === "refreshed") this.#redial({ ...REFRESHED, action: "reconnect" });
            });
          }, this.#opts.probeAfterMs ?? 1500);
        }
      };
      socket.onmessage = (ev) => {
        if (socket !== this.#socket) return;
        this.#lastHeard = Date.now();
        if (typeof ev.data !== "string") return;
        let frame;
        try {
          frame = JSON.parse(ev.data);
        } catch {
          return;
        }
        this.#onFrame(frame);
      };
      socket.onerror = (ev) => {
        const status = /Unexpected server response: (\d{3})/.exec(String(ev?.message ?? ""));
        if (status?.[1]) this.#handshakeStatus = Number(status[1]);
      };
      socket.onclose = (ev) => {
        if (socket !== this.#socket) return;
        this.#onClose(ev.code, ev.reason);
      };
      socket.on?.("ping", () => {
        this.#lastHeard = Date.now();
      });
    }
    #onFrame(frame) {
      this.#emit("frame", frame);
      switch (frame.type) {
        case "welcome": {
          clearTimeout(this.#connectTimer);
          clearTimeout(this.#probeTimer);
          this.#welcome = frame;
          this.#welcomedThisAttempt = true;
          this.#attempt = 0;
          this.#tokenRejected = false;
          this.#setState("open");
          this.#watchLiveness(frame.heartbeat_s);
          for (const room of this.#rooms) this.#sendSubscribe(room, true);
          for (const q of this.#queue.splice(0)) {
            if (this.#send(q.frame)) q.resolve();
            else this.#queue.push(q);
          }
          this.#emit("welcome", frame);
          for (const w of this.#waiters.splice(0)) w.resolve(frame);
          return;
        }
        case "message": {
          if (this.#seen.has(frame.id)) return;
          const { fresh, recovered } = this.#advance(frame);
          if (!fresh) return;
          this.#seen.add(frame.id);
          if (this.#seen.size > 4096) {
            const oldest = this.#seen.values().next().value;
            if (oldest !== void 0) this.#seen.delete(oldest);
          }
          this.#emit("message", { ...frame, recovered });
          return;
        }
        case "pong": {
          const pending = typeof frame.id === "number" ? this.#pings.get(frame.id) : void 0;
          if (pending && typeof frame.id === "number") {
            this.#pings.delete(frame.id);
            pending.resolve(Date.now() - pending.sent);
          }
          this.#emit("pong", frame);
          return;
        }
        case "unsubscribed":
          this.#replaying.delete(frame.room);
          if (frame.reason !== void 0) {
            this.#rooms.delete(frame.room);
            this.#positions.delete(frame.room);
          }
          this.#emit("unsubscribed", frame);
          return;
        case "presence":
          this.#emit("presence", frame);
          return;
        case "notice":
          this.#emit("notice", frame);
          return;
        case "subscribed": {
          const failed = this.#onSubscribed(frame);
          this.#emit("subscribed", frame);
          if (failed) this.#emit("recoveryFailed", failed);
          return;
        }
        case "identity":
          this.#emit("identity", frame);
          return;
        case "error":
          this.#emit("error", frame);
          return;
        default: {
          const unknown = frame;
          void unknown;
        }
      }
    }
    #watchLiveness(heartbeatS) {
      clearInterval(this.#liveness);
      const interval = Math.max(heartbeatS, 1) * 1e3;
      const deadAfter = interval * (this.#opts.deadAfterHeartbeats ?? 3);
      this.#lastHeard = Date.now();
      this.#liveness = setInterval(() => {
        const silent = Date.now() - this.#lastHeard;
        if (silent >= deadAfter) {
          this.#teardown(DEAD_SOCKET.code, DEAD_SOCKET.reason);
          this.#emit("close", { ...DEAD_SOCKET, action: "reconnect" });
          this.#retry({ ...DEAD_SOCKET, action: "reconnect" });
        } else if (silent >= interval && this.#socket?.readyState === OPEN) {
          this.#socket.send(JSON.stringify({ type: "ping" }));
        }
      }, interval / 4);
    }
    /** Detaches and closes the current socket; fails its pending pings. */
    #teardown(code, reason) {
      clearTimeout(this.#connectTimer);
      clearTimeout(this.#probeTimer);
      clearInterval(this.#liveness);
      this.#liveness = void 0;
      const socket = this.#socket;
      this.#socket = void 0;
      this.#asked.clear();
      this.#replaying.clear();
      if (socket) {
        socket.onopen = socket.onmessage = socket.onclose = null;
        socket.onerror = () => {
        };
        try {
          if (code === DEAD_SOCKET.code && socket.terminate) socket.terminate();
          else socket.close(code, reason);
        } catch {
        }
      }
      for (const p of this.#pings.values()) {
        p.reject(new RealtimeError("socket_closed", `socket closed (${code} ${reason})`));
      }
      this.#pings.clear();
    }
    #onClose(code, reason) {
      const status = code === 1006 ? this.#handshakeStatus : void 0;
      const action = (status !== void 0 ? HANDSHAKE_POLICY[status] : void 0) ?? CLOSE_POLICY[code] ?? "reconnect";
      const info = status !== void 0 ? { code, reason, status, action } : { code, reason, action };
      this.#teardown(code, reason);
      this.#emit("close", info);
      switch (action) {
        case "sign_in_again":
          this.#setState("ended", { close: info });
          this.#emit("sessionEnded", info);
          this.#stopped(new RealtimeError("session_ended", `the session ended (${code} ${reason})`, info));
          return;
        case "fix_client":
          this.#setState("failed", { close: info });
          this.#stopped(new RealtimeError("failed", `the server refused this client (${code} ${reason})`, info));
          return;
      }
      if (this.#opts.auth.kind === "cookie" && !this.#welcomedThisAttempt) {
        const generation = this.#generation;
        void this.#checkSignIn().then((found) => {
          if (generation !== this.#generation || this.#state !== "connecting" || this.#socket) return;
          if (found === "signedOut") this.#signOut(info);
          else this.#retry(info, found === "refreshed");
        });
        return;
      }
      if (action === "refresh_token") this.#tokenRejected = true;
      this.#retry(info);
    }
    /** Drops the current socket and tries again at once. */
    #redial(info) {
      this.#teardown(info.code, info.reason);
      this.#emit("close", info);
      this.#retry(info, true);
    }
    /**
     * At most once per attempt: `GET /api/me` with the browser's cookies; on 401, one
     * `POST` to the refresh URL with the refresh cookie. `unknown` when it cannot tell:
     * no fetch, a network error, another status, or a page on an origin that CORS does
     * not allow to read the answer.
     */
    #checkSignIn() {
      if (this.#probe) return this.#probe;
      const fetch = globalThis.fetch;
      const Signal = globalThis.AbortSignal;
      const ask = async (url, post) => {
        if (!fetch) return void 0;
        try {
          const signal = Signal?.timeout?.(5e3);
          const r = await fetch.call(globalThis, url, {
            method: post ? "POST" : "GET",
            credentials: "include",
            cache: "no-store",
            ...post ? { headers: { "content-type": "application/json" }, body: "{}" } : {},
            ...signal ? { signal } : {}
          });
          return r.status;
        } catch {
          return void 0;
        }
      };
      this.#probe = (async () => {
        const me = await ask(this.#meUrl(), false);
        if (me === 200) return "signedIn";
        if (me !== 401) return "unknown";
        const refreshUrl = this.#opts.refreshUrl ?? besideSocket(this.#opts.url, "api/auth/refresh");
        if (refreshUrl === false) return "signedOut";
        const refreshed = await ask(refreshUrl, true);
        return refreshed === 200 ? "refreshed" : refreshed === 401 ? "signedOut" : "unknown";
      })();
      return this.#probe;
    }
    #meUrl() {
      return this.#opts.meUrl ?? besideSocket(this.#opts.url, "api/me");
    }
    /** No session for this host name: stop until the app calls connect() again. */
    #signOut(close) {
      clearTimeout(this.#retryTimer);
      this.#teardown(1e3, "signed out");
      const meUrl = this.#meUrl();
      const message = signedOutMessage(meUrl);
      const info = close ? { message, host: new URL(meUrl).host, meUrl, close } : { message, host: new URL(meUrl).host, meUrl };
      this.#setState("signedOut", close ? { close } : {});
      this.#emit("signedOut", info);
      this.#stopped(new RealtimeError("signed_out", message, close));
    }
    /**
     * Waits out the backoff, then opens the next attempt. `immediately` (a renewed
     * cookie) skips the wait only for the first retry, so a cookie that is renewed but
     * still not sent cannot spin.
     */
    #retry(info, immediately = false) {
      clearTimeout(this.#retryTimer);
      if (!this.#trying()) return;
      const delayMs = immediately && this.#attempt === 0 ? 0 : this.#delay(info.action);
      this.#attempt += 1;
      this.#setState("waiting", { close: info, delayMs });
      this.#retryTimer = setTimeout(() => void this.#open(), delayMs);
    }
    /** The wait before the next attempt. */
    #delay(action) {
      const b = this.#backoff;
      const exp = 2 ** Math.min(this.#attempt, 16);
      if (action === "refresh_token" && this.#attempt === 0) return 0;
      if (action === "back_off" || action === "reconnect_later") {
        const cap = Math.min(b.maxMs, (action === "back_off" ? b.rateLimitedMs : b.laterMs) * exp);
        return Math.round(cap / 2 + this.#random() * cap / 2);
      }
      return Math.round(this.#random() * Math.min(b.maxMs, b.initialMs * exp));
    }
  };
  return __toCommonJS(index_exports);
})();
