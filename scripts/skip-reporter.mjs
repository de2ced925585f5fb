// A second reporter for `npm test` (scripts/run-tests.mjs): writes one JSON line per skipped
// suite or test (`describe(…, { skip: reason })`, `t.skip(reason)`), which the runner sums up
// after node's own closing lines. Node's summary counts skipped tests only, so a whole suite
// skipped for a missing server would otherwise read as `skipped 0`.
export default async function* skipReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' || event.data.skip === undefined || event.data.skip === false) continue;
    const { name, file, skip, details } = event.data;
    yield `${JSON.stringify({ name, file, reason: typeof skip === 'string' ? skip : '', type: details?.type ?? 'test' })}\n`;
  }
}
