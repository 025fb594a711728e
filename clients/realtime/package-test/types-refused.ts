// Each line marked `expect TSnnnn` must be refused with that error by `tsc --strict`,
// and nothing else may be: types that are really there, not `any`. Never run.
import { RealtimeClient } from "@doorman/realtime";

declare const rt: RealtimeClient;
rt.publish("lobby", 42); // expect TS2345
rt.on("mesage", () => {}); // expect TS2345
new RealtimeClient({ url: "ws://127.0.0.1:8080/ws", auth: { kind: "password" } }); // expect TS2322
const welcome: string = await rt.connect(); // expect TS2322
if (rt.state === "signedIn") console.log(welcome); // expect TS2367
rt.on("recoveryFailed", ({ reason }) => reason === "gone"); // expect TS2367
rt.subscribe("lobby", { since: { offset: "3", epoch: "e" } }); // expect TS2322
