// Compiled by `tsc --strict --noEmit` in a fresh project that installed the tarball:
// the package's own .d.ts (no @ts-ignore, no `any` from a missing declaration: with
// none, `--strict` fails with TS7016). Never run.
import WebSocket from "ws";
import {
  CLOSE_POLICY,
  type CloseAction,
  type GetToken,
  HANDSHAKE_POLICY,
  type HistoryPage,
  type MessageFrame,
  type Position,
  type RecoveryFailed,
  type RoomMessage,
  type Options,
  RealtimeClient,
  RealtimeError,
  type RealtimeErrorCode,
  type SignedOutInfo,
  type State,
  type WelcomeFrame,
} from "@doorman/realtime";

const getToken: GetToken = async ({ reason }) => (reason === "rejected" ? "fresh" : "cached");
const options: Options = {
  url: "ws://127.0.0.1:8080/ws",
  auth: { kind: "bearer", getToken },
  WebSocket,
  maxQueued: 10,
  probeAfterMs: 1500,
  refreshUrl: false,
};
const rt = new RealtimeClient(options);
const welcome: Promise<WelcomeFrame> = rt.connect();
const later: Promise<WelcomeFrame> = rt.welcomed();
const sent: Promise<void> = rt.publish("lobby", "hello");
const rtt: Promise<number> = rt.ping();
rt.on("message", (m: MessageFrame) => console.log(m.room, m.from, m.body.toUpperCase(), m.sent_at));
rt.on("message", (m: RoomMessage) => console.log(m.recovered ? "recovered" : "live", m.offset, m.epoch));
rt.on("recoveryFailed", ({ room, reason, since, position }: RecoveryFailed) =>
  console.log(room, reason === "too_old" || reason === "epoch_changed" || reason === "history_off", since.offset, position.epoch));
const page: Promise<HistoryPage> = rt.history("lobby", { after: 0, limit: 100 });
const where: Position | undefined = rt.positions.get("lobby");
rt.subscribe("lobby", { since: { offset: 3, epoch: "e" } });
rt.on("signedOut", (info: SignedOutInfo) => console.log(info.message, info.host, info.close?.code));
rt.on("state", ({ state, close, delayMs }) => console.log(state, close?.action, delayMs));
const state: State = rt.state;
const action: CloseAction | undefined = CLOSE_POLICY[4403] ?? HANDSHAKE_POLICY[401];

// The documented error codes, exactly: a code added or removed breaks this switch.
function explain(e: unknown): string {
  if (!(e instanceof RealtimeError)) return "not ours";
  const code: RealtimeErrorCode = e.code;
  switch (code) {
    case "not_connected":
    case "queue_full":
    case "closed":
    case "session_ended":
    case "signed_out":
    case "failed":
    case "socket_closed":
    case "timeout":
      return `${code}: ${e.message} ${e.close?.code ?? ""}`;
    default: {
      const unknown: never = code;
      return unknown;
    }
  }
}
void [welcome, later, sent, rtt, state, action, explain, page, where];
