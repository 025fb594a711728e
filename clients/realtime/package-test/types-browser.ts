// Compiled by tsc with the DOM library and no Node types (tsconfig.browser.json): the
// package's .d.ts needs nothing from @types/node. Never run.
import { RealtimeClient, RealtimeError } from "@doorman/realtime";

const rt = new RealtimeClient({ url: `wss://${location.host}/ws`, auth: { kind: "cookie" } });
rt.on("signedOut", ({ message }) => {
  document.body.textContent = message;
});
rt.connect().then(
  (welcome) => console.log(welcome.user_id),
  (e: unknown) => console.log(e instanceof RealtimeError ? e.code : e),
);
