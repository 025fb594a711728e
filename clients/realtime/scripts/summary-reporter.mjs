// A node:test reporter that ends the run with one line CI's summary reads:
// "realtime sdk: N passed, N failed" (suites are not counted, only tests).
export default async function* summary(source) {
  let passed = 0;
  let failed = 0;
  for await (const event of source) {
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    if (event.data.details?.type === "suite") continue;
    if (event.type === "test:pass") passed += 1;
    else failed += 1;
  }
  yield `realtime sdk: ${passed} passed, ${failed} failed\n`;
}
