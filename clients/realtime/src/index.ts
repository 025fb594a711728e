// A client for doorman's WebSocket (`GET /ws`, described by asyncapi.json).
//
// - Authenticates with the browser's cookie, a Bearer header (Node, with the `ws`
//   package passed as `WebSocket`) or a first `auth` frame holding a token from
//   `getToken()`.
// - Obeys the close codes of asyncapi.json (`x-close-codes`): 4403 ends the session
//   for good (`sessionEnded`, no retry); 4401 asks `getToken()` for a fresh token and
//   reconnects; 1001/1006/4408 reconnect; 1011/1013 reconnect later; 4429 backs off
//   longer; 1002/1007/1008/1009/4400 stop and report.
// - Reconnects with full-jitter exponential backoff, so that many clients dropped at
//   once (a restart) do not come back in one burst.
// - Re-subscribes its rooms after every reconnect, and drops a `message` it has
//   already delivered (ids are unique; and by room offset where the server keeps history).
// - Keeps each room's position (the last `offset` and `epoch` seen) and re-subscribes
//   with `since` after a reconnect, so the server replays what was missed: replayed
//   messages are delivered once, in order, marked `recovered: true`; when the server
//   cannot replay (`recovered: false`) a `recoveryFailed` event tells the app to
//   refetch (`history()` reads `GET /api/rooms/{room}/messages`).
// - Declares a socket dead when it has heard nothing for about three of the server's
//   heartbeat intervals (`welcome.heartbeat_s`), pinging it when it falls silent.
// - `connect()` and `welcomed()` resolve with the `welcome`; `publish()` before it is
//   queued (bounded) and sent after it, and every promise that cannot be kept
//   rejects with a `RealtimeError` whose `code` says why: nothing is dropped silently.
// - A cookie client that is not welcomed asks `GET /api/me` once per attempt; on a
//   401 it tries the refresh cookie once, and when that fails too this browser holds
//   no session for this host name: the client stops (`signedOut`) and says why,
//   instead of retrying for ever (see the README).
//
// No runtime dependencies: it uses the platform's WebSocket, or the constructor it is
// given.

import type {
  ClientFrame,
  ErrorFrame,
  IdentityFrame,
  MessageFrame,
  NoticeFrame,
  PongFrame,
  PresenceFrame,
  ServerFrame,
  SubscribedFrame,
  UnsubscribedFrame,
  WelcomeFrame,
} from "./generated/frames.js";

export type * from "./generated/frames.js";

/** A room's position: the last message seen (`offset` 0 and `epoch` "": none yet). */
export interface Position {
  offset: number;
  epoch: string;
}

/** A `message` as the `message` event delivers it. */
export type RoomMessage = MessageFrame & {
  /**
   * True when the server replayed it after a reconnect (it was published while this
   * client was away); false when it arrived live.
   */
  recovered: boolean;
};

/** Why the server could not replay what a room missed (`subscribed.reason`). */
export type RecoveryFailedReason = "too_old" | "epoch_changed" | "history_off";

/**
 * A re-subscription could not replay what the room missed: nothing was replayed,
 * messages may be missing, and the app should refetch (e.g. with
 * {@link RealtimeClient.history}, or from its own source of truth).
 */
export interface RecoveryFailed {
  room: string;
  /**
   * `too_old`: the room's history no longer reaches back to `since`;
   * `epoch_changed`: the room's history was lost or reset (a new `epoch`);
   * `history_off`: the server keeps no history.
   */
  reason: RecoveryFailedReason;
  /** The position the client asked to resume from. */
  since: Position;
  /** The room's position now (its latest message when the subscription began). */
  position: Position;
}

/** One message of `GET /api/rooms/{room}/messages`. */
export interface HistoryMessage {
  id: string;
  room: string;
  from: string;
  body: string;
  sent_at: string;
  offset: number;
  epoch: string;
}

/** One page of a room's history, oldest first. */
export interface HistoryPage {
  room: string;
  epoch: string;
  messages: HistoryMessage[];
  /** Pass as `after` for the next page; null: no more. */
  next: number | null;
}

export interface HistoryQuery {
  /** Only messages after this offset (default 0: from the oldest the room keeps). */
  after?: number;
  /** Only messages before this offset. */
  before?: number;
  /** At most this many (the server allows up to 100). */
  limit?: number;
}

/** `history()` was refused: the HTTP status and doorman's `error` code. */
export class HistoryError extends Error {
  override readonly name = "HistoryError";
  readonly status: number;
  readonly code: string | undefined;

  constructor(status: number, code: string | undefined, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** What the client does after a close (the `action` column of `x-close-codes`). */
export type CloseAction =
  | "none"
  | "reconnect"
  | "reconnect_later"
  | "refresh_token"
  | "sign_in_again"
  | "back_off"
  | "fix_client";

/**
 * The close-code policy. A code not listed reconnects. The handshake statuses a
 * Node client can see (browsers report a refused handshake as 1006) are mapped in
 * {@link HANDSHAKE_POLICY}.
 */
export const CLOSE_POLICY: Readonly<Record<number, CloseAction>> = {
  1000: "reconnect", // the server never ends a healthy socket with it (heartbeat_timeout)
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
  4429: "back_off",
};

/** HTTP statuses of a refused handshake (`x-handshake-refusals`). */
export const HANDSHAKE_POLICY: Readonly<Record<number, CloseAction>> = {
  400: "fix_client",
  401: "refresh_token",
  403: "fix_client",
  429: "back_off",
  503: "reconnect_later",
};

/** How the socket authenticates. */
export type Auth =
  /** The browser's HttpOnly access cookie (same origin, or an allowed one). */
  | { kind: "cookie" }
  /** `Authorization: Bearer` on the handshake: Node, with the `ws` package. */
  | { kind: "bearer"; getToken: GetToken }
  /** A first `auth` frame: any platform, e.g. a page on another origin. */
  | { kind: "frame"; getToken: GetToken };

/**
 * Returns an access token. `reason` is `connect` before every attempt (a cached
 * token that is still valid will do) and `rejected` after the server refused the
 * last token (4401, or a 401 handshake): then only a fresh one helps.
 */
export type GetToken = (ctx: { reason: "connect" | "rejected" }) => string | Promise<string>;

/** A WebSocket constructor: the platform's, or `ws`'s (needed for Bearer headers). */
// `any`: the constructors of browsers and of `ws` share no declared type.
export type SocketConstructor = new (url: string, ...rest: any[]) => object;

export interface Backoff {
  /** The first retry waits up to this long (full jitter: uniformly 0..cap). */
  initialMs: number;
  /** No wait is longer. */
  maxMs: number;
  /** After 4429 or a 429 handshake: the wait is at least half of a cap that starts here. */
  rateLimitedMs: number;
  /** After 1011/1013 or a 503 handshake: likewise. */
  laterMs: number;
}

export interface Options {
  /** `ws://…/ws` or `wss://…/ws`. */
  url: string;
  auth: Auth;
  /** Defaults to `globalThis.WebSocket`. */
  WebSocket?: SocketConstructor;
  backoff?: Partial<Backoff>;
  /** Silent heartbeats before the socket counts as dead (default 3). */
  deadAfterHeartbeats?: number;
  /** Source of jitter in [0, 1); tests may fix it. */
  random?: () => number;
  /** An attempt not welcomed in this time is dropped and retried (default 15 s). */
  connectTimeoutMs?: number;
  /**
   * Cookie clients: an open socket not welcomed after this long asks `GET /api/me`
   * whether it is signed in at all (default 1500 ms). doorman writes `welcome` with
   * the handshake's response to every socket its cookie authenticated, so a cookie
   * socket still waiting has no credential (and would be closed 4408 later).
   */
  probeAfterMs?: number;
  /**
   * Cookie clients: the URL asked when an attempt is not welcomed. Default: `api/me`
   * next to the socket's path (`wss://host/ws` → `https://host/api/me`).
   */
  meUrl?: string;
  /**
   * Cookie clients: after `meUrl` answered 401, this is POSTed once (with the
   * browser's refresh cookie) before the client gives up: an access cookie that
   * merely expired is renewed, and the client reconnects at once. Default:
   * `api/auth/refresh` next to the socket's path; `false`: never refresh.
   */
  refreshUrl?: string | false;
  /** Frames `publish()` holds while not yet welcomed (default 100); beyond: `queue_full`. */
  maxQueued?: number;
}

/**
 * Why a promise of the client was not kept (`RealtimeError.code`):
 *
 * - `not_connected`: the client is not connecting (connect() not called yet, or it
 *   stopped: close(), `ended`, `failed`, `signedOut`);
 * - `queue_full`: publish() while not welcomed, with `maxQueued` frames already waiting;
 * - `closed`: close() was called before the frame was sent or the welcome came;
 * - `session_ended`: 4403, the session is over (state `ended`);
 * - `signed_out`: a cookie client holds no session here (state `signedOut`);
 * - `failed`: the server refused something this client did (state `failed`);
 * - `socket_closed`: the socket dropped while a ping/whoami waited for its answer
 *   (the client reconnects by itself);
 * - `timeout`: ping/whoami had no answer in time.
 */
export type RealtimeErrorCode =
  | "not_connected"
  | "queue_full"
  | "closed"
  | "session_ended"
  | "signed_out"
  | "failed"
  | "socket_closed"
  | "timeout";

export class RealtimeError extends Error {
  override readonly name = "RealtimeError";
  readonly code: RealtimeErrorCode;
  /** The close behind it, if a close was. */
  readonly close: CloseInfo | undefined;

  constructor(code: RealtimeErrorCode, message: string, close?: CloseInfo) {
    super(message);
    this.code = code;
    this.close = close;
  }
}

/** A cookie client found itself signed out (`GET /api/me` answered 401). */
export interface SignedOutInfo {
  /** The explanation in plain words, fit to show a user. */
  message: string;
  /** The host name (and port) the browser holds no session cookie for. */
  host: string;
  /** The URL that answered 401. */
  meUrl: string;
  /** The close of the attempt, when the socket had closed (1006, 4408, …). */
  close?: CloseInfo;
}

export type State =
  /** Not started, or stopped by {@link RealtimeClient.close}. */
  | "idle"
  | "connecting"
  /** Welcomed: frames flow. */
  | "open"
  /** Waiting out a backoff before the next attempt. */
  | "waiting"
  /** The session is over (4403): sign in again and call connect(). */
  | "ended"
  /**
   * A cookie client holds no session for this host name (`GET /api/me` answered 401):
   * sign in (on this host name) and call connect(). Not retried.
   */
  | "signedOut"
  /** A client bug the server refused (4400, 1002, 1007, 1008, 1009, a 400/403 handshake): not retried. */
  | "failed";

export interface StateChange {
  state: State;
  previous: State;
  /** The close that caused it, if any. */
  close?: CloseInfo;
  /** For `waiting`: how long until the next attempt. */
  delayMs?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** The HTTP status of a refused handshake, when the platform tells (Node). */
  status?: number;
  action: CloseAction;
}

export interface Events {
  /** Every frame the server sends, before its own event (for logs and debugging). */
  frame: ServerFrame;
  welcome: WelcomeFrame;
  /** A message, once (duplicates are dropped), `recovered` when replayed. */
  message: RoomMessage;
  presence: PresenceFrame;
  notice: NoticeFrame;
  subscribed: SubscribedFrame;
  unsubscribed: UnsubscribedFrame;
  identity: IdentityFrame;
  pong: PongFrame;
  /** An `error` frame: the server refused a frame; the socket lives. */
  error: ErrorFrame;
  /** 4403: the session ended (logout, revocation, expiry). No reconnect follows. */
  sessionEnded: CloseInfo;
  /** A cookie client holds no session for this host name. No reconnect follows. */
  signedOut: SignedOutInfo;
  /** A re-subscription could not replay what a room missed: refetch it. */
  recoveryFailed: RecoveryFailed;
  /** Every socket close, with the action taken. */
  close: CloseInfo;
  state: StateChange;
}

type Listener<T> = (value: T) => void;

// The WebSocket readyState of an open socket, on every platform.
const OPEN = 1;
// The closes the client uses itself when it gives up on a silent socket, or on a
// handshake that never completes (a frozen server, a black-holed network).
const DEAD_SOCKET = { code: 4000, reason: "heartbeat timeout" };
const CONNECT_TIMEOUT = { code: 4000, reason: "connect timeout" };
// A cookie socket dropped because the access cookie was renewed after its handshake.
const REFRESHED = { code: 4000, reason: "cookie refreshed" };

/** The part of `fetch` the sign-in check uses (the platform's; none: no check). */
type FetchLike = (
  url: string,
  init: {
    method: "GET" | "POST";
    credentials: "include";
    cache: "no-store";
    headers?: Record<string, string>;
    body?: string;
    signal?: unknown;
  },
) => Promise<{ status: number }>;

/** What a cookie client learns from `GET /api/me` (and a refresh) after a failed attempt. */
type SignIn = "signedIn" | "refreshed" | "signedOut" | "unknown";

/** The part of `fetch` that history() uses. */
type HistoryFetch = (
  url: string,
  init: { method: "GET"; credentials: "include" | "omit"; cache: "no-store"; headers: Record<string, string> },
) => Promise<{ status: number; text(): Promise<string> }>;

/** `path` beside the socket's path, over http(s): `wss://h/x/ws` → `https://h/x/<path>`. */
function besideSocket(wsUrl: string, path: string): string {
  return new URL(path, wsUrl.replace(/^ws(s?):/i, "http$1:")).href;
}

function signedOutMessage(meUrl: string): string {
  const { host, hostname, protocol, port } = new URL(meUrl);
  const other = hostname === "localhost" ? "127.0.0.1" : hostname === "127.0.0.1" ? "localhost" : undefined;
  const example = other
    ? ` Signing in on ${other}${port ? `:${port}` : ""} does not sign you in on ${host}.`
    : "";
  return (
    `Not signed in on ${host}: ${meUrl} answered 401 and there was no session to refresh, ` +
    `so this browser holds no session cookie for ${host}. ` +
    `Cookies belong to the host name they were set on.${example} ` +
    `Sign in on ${protocol}//${host}, then connect again.`
  );
}

/** What a socket must offer: the WHATWG WebSocket's subset both platforms have. */
interface Socket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: unknown }) => void) | null;
  /** `ws` (Node) only: EventEmitter events such as `ping`. */
  on?: (event: string, fn: () => void) => void;
  /** `ws` (Node) only: drop the connection without a closing handshake. */
  terminate?: () => void;
}

const DEFAULT_BACKOFF: Backoff = {
  initialMs: 1000,
  maxMs: 30_000,
  rateLimitedMs: 5000,
  laterMs: 2000,
};

export class RealtimeClient {
  readonly #opts: Options;
  readonly #backoff: Backoff;
  readonly #random: () => number;
  readonly #Socket: SocketConstructor;
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();
  readonly #rooms = new Set<string>();
  readonly #pings = new Map<number, { resolve: (rtt: number) => void; reject: (e: Error) => void; sent: number }>();
  // Recently delivered message ids, oldest first: a message is delivered once.
  readonly #seen = new Set<string>();
  // Each room's position: the last offset and epoch delivered (or announced by
  // `subscribed`), sent as `since` when the room is joined again.
  readonly #positions = new Map<string, Position>();
  // The `since` of each subscribe sent on the current socket and not yet answered.
  readonly #asked = new Map<string, Position | undefined>();
  // Rooms whose replay is under way on this socket: messages up to this position
  // (the room's latest when the subscription began) are the recovered ones.
  readonly #replaying = new Map<string, Position>();
  #state: State = "idle";
  #socket: Socket | undefined;
  #attempt = 0;
  #tokenRejected = false;
  #handshakeStatus: number | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #liveness: ReturnType<typeof setInterval> | undefined;
  #lastHeard = 0;
  #nextPingId = 1;
  #welcome: WelcomeFrame | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  // Promises waiting for the next welcome (connect(), welcomed(), ping() before it).
  #waiters: Array<{ resolve: (w: WelcomeFrame) => void; reject: (e: RealtimeError) => void }> = [];
  // publish() frames waiting for the welcome, oldest first.
  #queue: Array<{ frame: ClientFrame; resolve: () => void; reject: (e: RealtimeError) => void }> = [];
  // Cookie clients, per attempt: was it welcomed, and the one sign-in check it made.
  #welcomedThisAttempt = false;
  #probe: Promise<SignIn> | undefined;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  // Bumped by connect() and close(): a probe answering late belongs to an older run.
  #generation = 0;

  constructor(opts: Options) {
    this.#opts = opts;
    this.#backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.#random = opts.random ?? Math.random;
    const Socket = opts.WebSocket ?? (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
    if (!Socket) throw new Error("no WebSocket on this platform: pass one (the `ws` package) as options.WebSocket");
    this.#Socket = Socket;
  }

  /** The current state. */
  get state(): State {
    return this.#state;
  }

  /** The last `welcome` of the open socket. */
  get welcome(): WelcomeFrame | undefined {
    return this.#state === "open" ? this.#welcome : undefined;
  }

  /** The rooms the client keeps itself subscribed to. */
  get rooms(): ReadonlySet<string> {
    return this.#rooms;
  }

  /**
   * Each room's position (the last message delivered, or the room's latest when it
   * was joined): where a re-subscription resumes. A copy; an app that wants to
   * resume after a page reload may store it and pass it to subscribe().
   */
  get positions(): ReadonlyMap<string, Position> {
    return new Map([...this.#positions].map(([room, p]) => [room, { ...p }]));
  }

  on<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(fn as Listener<never>);
    return () => set.delete(fn as Listener<never>);
  }

  /**
   * Starts connecting (again, after `ended`, `failed`, `signedOut` or `close()`).
   * Resolves with the first `welcome`; rejects with a {@link RealtimeError} when the
   * client stops first (`session_ended`, `failed`, `signed_out`, `closed`). The
   * client keeps retrying meanwhile, so the promise may wait long: race it with a
   * timer if you need a deadline. Ignoring it is fine (the `state` event tells
   * the same): its rejection is never reported as unhandled.
   */
  connect(): Promise<WelcomeFrame> {
    if (this.#state === "open" && this.#welcome) return Promise.resolve(this.#welcome);
    if (this.#state !== "connecting" && this.#state !== "waiting") {
      this.#generation += 1;
      this.#attempt = 0;
      this.#tokenRejected = false;
      void this.#open();
    }
    const welcomed = this.welcomed();
    welcomed.catch(() => {});
    return welcomed;
  }

  /**
   * Resolves with the current `welcome` when open, else with the next one. Rejects
   * with `not_connected` when the client is not connecting, and like connect() when
   * it stops before a welcome.
   */
  welcomed(): Promise<WelcomeFrame> {
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
  close(): void {
    this.#generation += 1;
    clearTimeout(this.#retryTimer);
    this.#teardown(1000, "client closed");
    this.#setState("idle");
    this.#stopped(new RealtimeError("closed", "close() was called"));
  }

  /**
   * Joins a room now (if open) and after every welcome. After a reconnect the client
   * asks the server to replay what the room missed (from its position). `since`:
   * resume from a position kept elsewhere (e.g. {@link positions} stored before a
   * page reload); the replay or a `recoveryFailed` follows as after a reconnect.
   */
  subscribe(room: string, options: { since?: Position } = {}): void {
    this.#rooms.add(room);
    if (options.since) this.#positions.set(room, { offset: options.since.offset, epoch: options.since.epoch });
    // Joined already on this socket: no `since` (the room's messages flow already).
    this.#sendSubscribe(room, options.since !== undefined);
  }

  /** Leaves a room and stops re-joining it (its position is forgotten). */
  unsubscribe(room: string): void {
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
  async history(room: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    const fetch = (globalThis as { fetch?: HistoryFetch }).fetch;
    if (!fetch) throw new Error("no fetch on this platform");
    const path = `api/rooms/${encodeURIComponent(room).replace(/%3A/gi, ":")}/messages`;
    const url = new URL(besideSocket(this.#opts.url, path));
    for (const key of ["after", "before", "limit"] as const) {
      const v = query[key];
      if (v !== undefined) url.searchParams.set(key, String(v));
    }
    const { auth } = this.#opts;
    const headers: Record<string, string> = { accept: "application/json" };
    if (auth.kind !== "cookie") headers.authorization = `Bearer ${await auth.getToken({ reason: "connect" })}`;
    // Cookies only for a cookie client: a token client's page may be on an origin
    // that is not allowed credentials.
    const credentials = auth.kind === "cookie" ? "include" : "omit";
    let r = await fetch.call(globalThis, url.href, { method: "GET", credentials, cache: "no-store", headers });
    if (r.status === 401 && auth.kind !== "cookie") {
      headers.authorization = `Bearer ${await auth.getToken({ reason: "rejected" })}`;
      r = await fetch.call(globalThis, url.href, { method: "GET", credentials, cache: "no-store", headers });
    }
    const text = await r.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (r.status !== 200) {
      const b = body as { error?: unknown; message?: unknown } | undefined;
      const code = typeof b?.error === "string" ? b.error : undefined;
      const message = typeof b?.message === "string" ? b.message : text.slice(0, 200);
      throw new HistoryError(r.status, code, `history of ${room}: ${r.status} ${code ?? ""} ${message}`.trim());
    }
    // The last page has no `next` (or null): null either way.
    const page = body as HistoryPage;
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
  publish(room: string, body: string): Promise<void> {
    const frame: ClientFrame = { type: "publish", room, body };
    if (this.#send(frame)) return Promise.resolve();
    if (!this.#trying()) return Promise.reject(this.#notConnected());
    const max = this.#opts.maxQueued ?? 100;
    if (this.#queue.length >= max) {
      return Promise.reject(
        new RealtimeError("queue_full", `${max} publishes already wait for the welcome (options.maxQueued)`),
      );
    }
    return new Promise((resolve, reject) => this.#queue.push({ frame, resolve, reject }));
  }

  /** Asks for `identity`; resolves with the next one (waits for the welcome first). */
  async whoami(timeoutMs = 10_000): Promise<IdentityFrame> {
    const deadline = Date.now() + timeoutMs;
    await this.#welcomedBy(deadline, "identity");
    return new Promise((resolve, reject) => {
      if (!this.#send({ type: "whoami" })) return reject(this.#notConnected());
      const timer = setTimeout(
        () => {
          off();
          reject(new RealtimeError("timeout", "no identity in time"));
        },
        Math.max(0, deadline - Date.now()),
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
  async ping(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    await this.#welcomedBy(deadline, "pong");
    const id = this.#nextPingId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.#pings.delete(id);
          reject(new RealtimeError("timeout", `no pong ${id} in time`));
        },
        Math.max(0, deadline - Date.now()),
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
        },
      });
      if (!this.#send({ type: "ping", id })) {
        this.#pings.get(id)?.reject(this.#notConnected());
        this.#pings.delete(id);
      }
    });
  }

  /** welcomed(), failing with `timeout` at the deadline. */
  async #welcomedBy(deadline: number, what: string): Promise<void> {
    if (this.#state === "open") return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RealtimeError("timeout", `not welcomed in time to ask for a ${what}`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      await Promise.race([this.welcomed(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Connecting, open, or waiting to reconnect: a frame sent now will go out. */
  #trying(): boolean {
    return this.#state === "connecting" || this.#state === "waiting" || this.#state === "open";
  }

  #notConnected(): RealtimeError {
    return new RealtimeError(
      "not_connected",
      this.#state === "idle"
        ? "not connected: call connect() first"
        : `not connected: the client stopped (state ${this.#state}); call connect() again`,
    );
  }

  /** The client stopped: every promise waiting for a welcome or a send fails with `error`. */
  #stopped(error: RealtimeError): void {
    const waiters = this.#waiters.splice(0);
    const queue = this.#queue.splice(0);
    for (const w of waiters) w.reject(error);
    for (const q of queue) q.reject(error);
  }

  #emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const fn of this.#listeners.get(event) ?? []) {
      try {
        (fn as Listener<Events[K]>)(value);
      } catch (e) {
        // A listener's bug must not break the connection logic.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  #setState(state: State, extra: Omit<StateChange, "state" | "previous"> = {}): void {
    const previous = this.#state;
    if (previous === state && state !== "waiting") return;
    this.#state = state;
    this.#emit("state", { state, previous, ...extra });
  }

  /** A `subscribe`, with `since` when asked to resume and the room has a position. */
  #sendSubscribe(room: string, resume: boolean): void {
    const position = resume ? this.#positions.get(room) : undefined;
    const frame: ClientFrame = position
      ? { type: "subscribe", room, since: { offset: position.offset, epoch: position.epoch } }
      : { type: "subscribe", room };
    if (this.#send(frame)) this.#asked.set(room, position && { ...position });
  }

  /**
   * What a `subscribed` frame says of the room's position and the replay; the
   * failed recovery to report (after the `subscribed` event), if one failed.
   */
  #onSubscribed(frame: SubscribedFrame): RecoveryFailed | undefined {
    const since = this.#asked.get(frame.room);
    this.#asked.delete(frame.room);
    // A server without history announces no position.
    if (typeof frame.offset !== "number" || typeof frame.epoch !== "string") return undefined;
    const now: Position = { offset: frame.offset, epoch: frame.epoch };
    const kept = this.#positions.get(frame.room);
    if (since && frame.recovered === true) {
      // The missed messages follow, up to `now`; they move the position themselves.
      if (now.offset > 0) this.#replaying.set(frame.room, now);
      return undefined;
    }
    if (since && frame.recovered === false) {
      // Nothing is replayed: resume from the room's present, and tell the app.
      this.#positions.set(frame.room, now);
      return { room: frame.room, reason: frame.reason ?? "history_off", since, position: { ...now } };
    }
    // A first join (or one without `since`): the room's present is the position.
    if (!kept || kept.epoch !== now.epoch || kept.offset < now.offset) this.#positions.set(frame.room, now);
    return undefined;
  }

  /** False when the message is a duplicate by its room position; else true, position moved. */
  #advance(frame: MessageFrame): { fresh: boolean; recovered: boolean } {
    if (typeof frame.offset !== "number" || typeof frame.epoch !== "string") return { fresh: true, recovered: false };
    const kept = this.#positions.get(frame.room);
    if (kept && kept.epoch === frame.epoch && frame.offset <= kept.offset) return { fresh: false, recovered: false };
    // A new epoch: the room's history was reset; its offsets start again.
    this.#positions.set(frame.room, { offset: frame.offset, epoch: frame.epoch });
    const replay = this.#replaying.get(frame.room);
    let recovered = false;
    if (replay) {
      recovered = replay.epoch === frame.epoch && frame.offset <= replay.offset;
      if (!recovered || frame.offset >= replay.offset) this.#replaying.delete(frame.room);
    }
    return { fresh: true, recovered };
  }

  #send(frame: ClientFrame): boolean {
    if (this.#state !== "open" || this.#socket?.readyState !== OPEN) return false;
    this.#socket.send(JSON.stringify(frame));
    return true;
  }

  async #open(): Promise<void> {
    this.#setState("connecting");
    this.#handshakeStatus = undefined;
    this.#welcomedThisAttempt = false;
    this.#probe = undefined;
    const { auth } = this.#opts;
    let token: string | undefined;
    if (auth.kind !== "cookie") {
      const reason = this.#tokenRejected ? "rejected" : "connect";
      try {
        token = await auth.getToken({ reason });
      } catch {
        // No token now (the refresh itself failed): try again later.
        return this.#retry({ code: 1006, reason: "getToken failed", action: "reconnect" });
      }
      // close() while the token was being fetched.
      if (this.#state !== "connecting") return;
    }
    const Ctor = this.#Socket;
    const socket = (
      auth.kind === "bearer"
        ? new Ctor(this.#opts.url, { headers: { Authorization: `Bearer ${token}` } })
        : new Ctor(this.#opts.url)
    ) as Socket;
    this.#socket = socket;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => {
      if (socket !== this.#socket || this.#state !== "connecting") return;
      this.#teardown(CONNECT_TIMEOUT.code, CONNECT_TIMEOUT.reason);
      this.#emit("close", { ...CONNECT_TIMEOUT, action: "reconnect" });
      this.#retry({ ...CONNECT_TIMEOUT, action: "reconnect" });
    }, this.#opts.connectTimeoutMs ?? 15_000);
    socket.onopen = () => {
      this.#lastHeard = Date.now();
      if (auth.kind === "frame" && token !== undefined) {
        socket.send(JSON.stringify({ type: "auth", token } satisfies ClientFrame));
      }
      if (auth.kind === "cookie") {
        // The welcome comes with the 101 when the cookie authenticated the socket;
        // still none: the socket is pending for want of a credential.
        clearTimeout(this.#probeTimer);
        this.#probeTimer = setTimeout(() => {
          if (socket !== this.#socket || this.#welcomedThisAttempt) return;
          const generation = this.#generation;
          void this.#checkSignIn().then((found) => {
            if (socket !== this.#socket || generation !== this.#generation || this.#state !== "connecting") return;
            if (found === "signedOut") this.#signOut();
            // The handshake went without the renewed cookie: a new one carries it.
            else if (found === "refreshed") this.#redial({ ...REFRESHED, action: "reconnect" });
            // signedIn or unknown: wait on (4408, the connect timeout, or a late welcome).
          });
        }, this.#opts.probeAfterMs ?? 1500);
      }
    };
    socket.onmessage = (ev) => {
      if (socket !== this.#socket) return;
      this.#lastHeard = Date.now();
      if (typeof ev.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(ev.data) as ServerFrame;
      } catch {
        return;
      }
      this.#onFrame(frame);
    };
    // ws (Node) reports a refused handshake as "Unexpected server response: 401";
    // browsers do not tell the status at all.
    socket.onerror = (ev) => {
      const status = /Unexpected server response: (\d{3})/.exec(String(ev?.message ?? ""));
      if (status?.[1]) this.#handshakeStatus = Number(status[1]);
    };
    socket.onclose = (ev) => {
      if (socket !== this.#socket) return;
      this.#onClose(ev.code, ev.reason);
    };
    // Server pings are invisible in browsers; where they are visible, they count.
    socket.on?.("ping", () => {
      this.#lastHeard = Date.now();
    });
  }

  #onFrame(frame: ServerFrame): void {
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
        // Every room resumes from its position: the server replays what it missed.
        for (const room of this.#rooms) this.#sendSubscribe(room, true);
        // Queued publishes after the subscribes, in the order they were made.
        for (const q of this.#queue.splice(0)) {
          if (this.#send(q.frame)) q.resolve();
          else this.#queue.push(q); // the socket went away meanwhile: the next welcome
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
          if (oldest !== undefined) this.#seen.delete(oldest);
        }
        this.#emit("message", { ...frame, recovered });
        return;
      }
      case "pong": {
        const pending = typeof frame.id === "number" ? this.#pings.get(frame.id) : undefined;
        if (pending && typeof frame.id === "number") {
          this.#pings.delete(frame.id);
          pending.resolve(Date.now() - pending.sent);
        }
        this.#emit("pong", frame);
        return;
      }
      case "unsubscribed":
        this.#replaying.delete(frame.room);
        // Taken out by the server (removed from a private room, or its session
        // dropped to aal1 in a room that requires aal2): do not re-join.
        if (frame.reason !== undefined) {
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
        // A frame type this client does not know yet (a newer server): ignore it.
        const unknown: never = frame;
        void unknown;
      }
    }
  }

  #watchLiveness(heartbeatS: number): void {
    clearInterval(this.#liveness);
    const interval = Math.max(heartbeatS, 1) * 1000;
    const deadAfter = interval * (this.#opts.deadAfterHeartbeats ?? 3);
    this.#lastHeard = Date.now();
    // Check a few times per interval so a dead socket is noticed close to deadAfter.
    this.#liveness = setInterval(() => {
      const silent = Date.now() - this.#lastHeard;
      if (silent >= deadAfter) {
        // The network may be gone: do not wait for a close handshake that will not
        // come. Drop the socket and reconnect as after a 1006.
        this.#teardown(DEAD_SOCKET.code, DEAD_SOCKET.reason);
        this.#emit("close", { ...DEAD_SOCKET, action: "reconnect" });
        this.#retry({ ...DEAD_SOCKET, action: "reconnect" });
      } else if (silent >= interval && this.#socket?.readyState === OPEN) {
        // Silent for an interval: ask for an answer (browsers cannot see server pings).
        this.#socket.send(JSON.stringify({ type: "ping" } satisfies ClientFrame));
      }
    }, interval / 4);
  }

  /** Detaches and closes the current socket; fails its pending pings. */
  #teardown(code: number, reason: string): void {
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#probeTimer);
    clearInterval(this.#liveness);
    this.#liveness = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#asked.clear();
    this.#replaying.clear();
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      // Not null: `ws` reports closing a socket that is still connecting as an
      // `error` event, which is thrown when nobody listens.
      socket.onerror = () => {};
      try {
        // A dead socket would wait for a close handshake that never comes.
        if (code === DEAD_SOCKET.code && socket.terminate) socket.terminate();
        else socket.close(code, reason);
      } catch {
        // Already closed.
      }
    }
    for (const p of this.#pings.values()) {
      p.reject(new RealtimeError("socket_closed", `socket closed (${code} ${reason})`));
    }
    this.#pings.clear();
  }

  #onClose(code: number, reason: string): void {
    const status = code === 1006 ? this.#handshakeStatus : undefined;
    const action =
      (status !== undefined ? HANDSHAKE_POLICY[status] : undefined) ?? CLOSE_POLICY[code] ?? "reconnect";
    const info: CloseInfo = status !== undefined ? { code, reason, status, action } : { code, reason, action };
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
      // A refused handshake (1006 in browsers; a 401 in Node), 4408, a drop before
      // the welcome: first ask whether this browser is signed in here at all.
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
  #redial(info: CloseInfo): void {
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
  #checkSignIn(): Promise<SignIn> {
    if (this.#probe) return this.#probe;
    const fetch = (globalThis as { fetch?: FetchLike }).fetch;
    const Signal = (globalThis as { AbortSignal?: { timeout?: (ms: number) => unknown } }).AbortSignal;
    const ask = async (url: string, post: boolean): Promise<number | undefined> => {
      if (!fetch) return undefined;
      try {
        const signal = Signal?.timeout?.(5000);
        // Called on globalThis: browsers refuse a detached fetch ("Illegal invocation").
        const r = await fetch.call(globalThis, url, {
          method: post ? "POST" : "GET",
          credentials: "include",
          cache: "no-store",
          ...(post ? { headers: { "content-type": "application/json" }, body: "{}" } : {}),
          ...(signal ? { signal } : {}),
        });
        return r.status;
      } catch {
        return undefined;
      }
    };
    this.#probe = (async (): Promise<SignIn> => {
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

  #meUrl(): string {
    return this.#opts.meUrl ?? besideSocket(this.#opts.url, "api/me");
  }

  /** No session for this host name: stop until the app calls connect() again. */
  #signOut(close?: CloseInfo): void {
    clearTimeout(this.#retryTimer);
    this.#teardown(1000, "signed out");
    const meUrl = this.#meUrl();
    const message = signedOutMessage(meUrl);
    const info: SignedOutInfo = close
      ? { message, host: new URL(meUrl).host, meUrl, close }
      : { message, host: new URL(meUrl).host, meUrl };
    this.#setState("signedOut", close ? { close } : {});
    this.#emit("signedOut", info);
    this.#stopped(new RealtimeError("signed_out", message, close));
  }

  /**
   * Waits out the backoff, then opens the next attempt. `immediately` (a renewed
   * cookie) skips the wait only for the first retry, so a cookie that is renewed but
   * still not sent cannot spin.
   */
  #retry(info: CloseInfo, immediately = false): void {
    clearTimeout(this.#retryTimer);
    if (!this.#trying()) return;
    const delayMs = immediately && this.#attempt === 0 ? 0 : this.#delay(info.action);
    this.#attempt += 1;
    this.#setState("waiting", { close: info, delayMs });
    this.#retryTimer = setTimeout(() => void this.#open(), delayMs);
  }

  /** The wait before the next attempt. */
  #delay(action: CloseAction): number {
    const b = this.#backoff;
    const exp = 2 ** Math.min(this.#attempt, 16);
    // A rejected token gets one immediate retry with a fresh one.
    if (action === "refresh_token" && this.#attempt === 0) return 0;
    if (action === "back_off" || action === "reconnect_later") {
      // "Equal jitter": at least half the cap, so these really wait longer.
      const cap = Math.min(b.maxMs, (action === "back_off" ? b.rateLimitedMs : b.laterMs) * exp);
      return Math.round(cap / 2 + (this.#random() * cap) / 2);
    }
    // Full jitter: uniformly between 0 and the cap.
    return Math.round(this.#random() * Math.min(b.maxMs, b.initialMs * exp));
  }
}
