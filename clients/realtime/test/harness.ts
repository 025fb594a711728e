// The real release server for the SDK's tests: started, restarted, SIGTERMed,
// SIGKILLed and frozen by the tests themselves, on one SQLite file that survives
// restarts (its signing key too, so tokens stay valid across them).

import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import type { ClientOptions } from "ws";

const BIN = process.env.DOORMAN_BIN ?? "";

export class Server {
  readonly port: number;
  readonly dir: string;
  readonly log: string;
  readonly env: Record<string, string>;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  constructor(port: number, env: Record<string, string> = {}) {
    if (!BIN) throw new Error("DOORMAN_BIN is not set");
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), "doorman-realtime-"));
    this.log = join(this.dir, "server.log");
    this.env = env;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  get http(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async start(): Promise<void> {
    const child = spawn(BIN, [], {
      cwd: this.dir,
      env: {
        PATH: process.env.PATH ?? "",
        DOORMAN_BIND: `127.0.0.1:${this.port}`,
        DATABASE_URL: `sqlite://${join(this.dir, "doorman.db")}?mode=rwc`,
        DOORMAN_LOGIN_PER_MINUTE: "1000",
        // Every response is logged with its path and status: the handshakes are
        // counted from the log (there are no metrics).
        RUST_LOG: "info,doorman::http=debug",
        // Prometheus text on the next port: doorman_ws_handshakes_total.
        DOORMAN_METRICS_BIND: `127.0.0.1:${this.port + 10}`,
        ...this.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const append = (chunk: Buffer) => appendFileSync(this.log, chunk);
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) break;
      try {
        const r = await fetch(`${this.http}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`doorman did not start on ${this.port}:\n${this.tail()}`);
  }

  /** SIGTERM (the server closes sockets with 1001) or SIGKILL; waits for the exit. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill(signal);
      await this.#exited;
    }
    this.#child = undefined;
  }

  /** SIGSTOP / SIGCONT: the sockets stay open and go silent. */
  freeze(frozen: boolean): void {
    this.#child?.kill(frozen ? "SIGSTOP" : "SIGCONT");
  }

  async dispose(): Promise<void> {
    this.freeze(false);
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  tail(lines = 20): string {
    try {
      return readFileSync(this.log, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** The log so far, without the terminal colours the text format adds. */
  logText(): string {
    try {
      return readFileSync(this.log, "utf8").replace(/\x1b\[[0-9;]*m/g, "");
    } catch {
      return "";
    }
  }

  /** WebSocket handshakes the server answered so far (any status). */
  handshakes(): { total: number; byStatus: Record<string, number> } {
    const byStatus: Record<string, number> = {};
    let total = 0;
    for (const line of this.logText().split("\n")) {
      const m = /path=\/ws[ }].*response status=(\d+)/.exec(line);
      if (m?.[1]) {
        total += 1;
        byStatus[m[1]] = (byStatus[m[1]] ?? 0) + 1;
      }
    }
    return { total, byStatus };
  }

  /** Requests for `path` (exactly, no query) the server answered so far, by status. */
  requests(path: string): Record<string, number> {
    const byStatus: Record<string, number> = {};
    const escaped = path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    const re = new RegExp(`path=${escaped}[ }].*response status=(\\d+)`);
    for (const line of this.logText().split("\n")) {
      const m = re.exec(line);
      if (m?.[1]) byStatus[m[1]] = (byStatus[m[1]] ?? 0) + 1;
    }
    return byStatus;
  }

  /** doorman_ws_handshakes_total since this process started, all outcomes. */
  async handshakeMetric(): Promise<number> {
    const r = await fetch(`http://127.0.0.1:${this.port + 10}/metrics`, { signal: AbortSignal.timeout(5000) });
    let total = 0;
    for (const line of (await r.text()).split("\n")) {
      if (line.startsWith("doorman_ws_handshakes_total")) total += Number(line.split(" ").at(-1));
    }
    return total;
  }

  /** Sockets the server authenticated so far. */
  authenticated(): number {
    return this.logText().split("socket authenticated").length - 1;
  }
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  session_id: string;
  user: { id: string };
}

let userSeq = 0;

/** Registers a fresh user and returns a way to log them in (token mode). */
export async function newUser(server: Server): Promise<{ email: string; login: () => Promise<Tokens> }> {
  const email = `rt-${process.pid}-${Date.now()}-${userSeq++}@example.test`;
  const password = "correct horse battery";
  await json(server, "POST", "/api/auth/register", { email, password }, 201);
  return {
    email,
    login: () => json(server, "POST", "/api/auth/login", { email, password, mode: "token" }, 200) as Promise<Tokens>,
  };
}

export async function refresh(server: Server, t: Tokens): Promise<Tokens> {
  return (await json(server, "POST", "/api/auth/refresh", { refresh_token: t.refresh_token }, 200)) as Tokens;
}

export async function logout(server: Server, access: string): Promise<void> {
  await json(server, "POST", "/api/auth/logout", undefined, 204, access);
}

export async function publishHttp(server: Server, access: string, room: string, body: string): Promise<void> {
  await json(server, "POST", `/api/rooms/${room}/messages`, { body }, 202, access);
}

async function json(
  server: Server,
  method: string,
  path: string,
  body: unknown,
  status: number,
  bearer?: string,
): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const init: RequestInit = { method, headers, signal: AbortSignal.timeout(10_000) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(`${server.http}${path}`, init);
  const text = await r.text();
  if (r.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

// Every frame any test's client receives is checked against asyncapi.json.
const doc = JSON.parse(readFileSync(new URL("../../../../asyncapi.json", import.meta.url), "utf8"));
// Plain JS shared with scripts/validate-asyncapi.mjs; found from dist/test/ at run time.
const { frameValidator } = (await import(new URL("../../scripts/frame-schemas.mjs", import.meta.url).href)) as {
  frameValidator: (doc: unknown) => (frame: unknown) => { ok: boolean; errors: unknown };
};
const validate = frameValidator(doc);
export const frameStats = { checked: 0, invalid: [] as string[] };
export const validateFrame = validate;
export let socketsOpened = 0;

/** `ws`'s WebSocket, counting constructions and validating every text frame received. */
export class CheckedWebSocket extends WebSocket {
  constructor(url: string, options?: ClientOptions) {
    super(url, options);
    socketsOpened += 1;
    this.on("message", (data, isBinary) => {
      if (isBinary) return;
      frameStats.checked += 1;
      const frame: unknown = JSON.parse(data.toString());
      const r = validate(frame);
      if (!r.ok) frameStats.invalid.push(`${JSON.stringify(frame)}: ${JSON.stringify(r.errors)}`);
    });
  }
}

/** Polls `cond` every 20 ms until it holds or `ms` pass. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

export { sleep };
