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
    RealtimeClient: () => RealtimeClient
  });
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
  var OPEN = 1;
  var DEAD_SOCKET = { code: 4e3, reason: "heartbeat timeout" };
  var CONNECT_TIMEOUT = { code: 4e3, reason: "connect timeout" };
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
    on(event, fn) {
      let set = this.#listeners.get(event);
      if (!set) {
        set = /* @__PURE__ */ new Set();
        this.#listeners.set(event, set);
      }
      set.add(fn);
      return () => set.delete(fn);
    }
    /** Starts connecting (again, after `ended`, `failed` or `close()`). */
    connect() {
      if (this.#state === "connecting" || this.#state === "open" || this.#state === "waiting") return;
      this.#attempt = 0;
      this.#tokenRejected = false;
      void this.#open();
    }
    /** Closes the socket and stops reconnecting. Rooms are kept for a later connect(). */
    close() {
      clearTimeout(this.#retryTimer);
      this.#teardown(1e3, "client closed");
      this.#setState("idle");
    }
    /** Joins a room now (if open) and after every reconnect. */
    subscribe(room) {
      this.#rooms.add(room);
      this.#send({ type: "subscribe", room });
    }
    /** Leaves a room and stops re-joining it. */
    unsubscribe(room) {
      this.#rooms.delete(room);
      this.#send({ type: "unsubscribe", room });
    }
    /** Publishes to a room; false when the socket is not open (nothing is queued). */
    publish(room, body) {
      return this.#send({ type: "publish", room, body });
    }
    /** Asks for `identity`; resolves with the next one. */
    whoami(timeoutMs = 1e4) {
      return new Promise((resolve, reject) => {
        if (!this.#send({ type: "whoami" })) return reject(new Error("not connected"));
        const timer = setTimeout(() => {
          off();
          reject(new Error("no identity in time"));
        }, timeoutMs);
        const off = this.on("identity", (frame) => {
          clearTimeout(timer);
          off();
          resolve(frame);
        });
      });
    }
    /** Sends `ping` with a fresh id; resolves with the round-trip time (ms) of its `pong`. */
    ping(timeoutMs = 1e4) {
      const id = this.#nextPingId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#pings.delete(id);
          reject(new Error(`no pong ${id} in time`));
        }, timeoutMs);
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
          this.#pings.get(id)?.reject(new Error("not connected"));
          this.#pings.delete(id);
        }
      });
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
    #send(frame) {
      if (this.#state !== "open" || this.#socket?.readyState !== OPEN) return false;
      this.#socket.send(JSON.stringify(frame));
      return true;
    }
    async #open() {
      this.#setState("connecting");
      this.#handshakeStatus = void 0;
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
        case "welcome":
          clearTimeout(this.#connectTimer);
          this.#welcome = frame;
          this.#attempt = 0;
          this.#tokenRejected = false;
          this.#setState("open");
          this.#watchLiveness(frame.heartbeat_s);
          for (const room of this.#rooms) this.#send({ type: "subscribe", room });
          this.#emit("welcome", frame);
          return;
        case "message":
          if (this.#seen.has(frame.id)) return;
          this.#seen.add(frame.id);
          if (this.#seen.size > 4096) {
            const oldest = this.#seen.values().next().value;
            if (oldest !== void 0) this.#seen.delete(oldest);
          }
          this.#emit("message", frame);
          return;
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
          if (frame.reason === "removed") this.#rooms.delete(frame.room);
          this.#emit("unsubscribed", frame);
          return;
        case "presence":
          this.#emit("presence", frame);
          return;
        case "notice":
          this.#emit("notice", frame);
          return;
        case "subscribed":
          this.#emit("subscribed", frame);
          return;
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
      clearInterval(this.#liveness);
      this.#liveness = void 0;
      const socket = this.#socket;
      this.#socket = void 0;
      if (socket) {
        socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
        try {
          if (code === DEAD_SOCKET.code && socket.terminate) socket.terminate();
          else socket.close(code, reason);
        } catch {
        }
      }
      for (const p of this.#pings.values()) p.reject(new Error(`socket closed (${reason})`));
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
          return;
        case "fix_client":
          this.#setState("failed", { close: info });
          return;
        case "refresh_token":
          this.#tokenRejected = true;
          return this.#retry(info);
        default:
          return this.#retry(info);
      }
    }
    #retry(info) {
      clearTimeout(this.#retryTimer);
      if (this.#state === "idle" || this.#state === "ended" || this.#state === "failed") return;
      const delayMs = this.#delay(info.action);
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
