// A/B: the real-world latencies row (2 processes x concurrency 10, PostgreSQL) of two builds,
// alternating, so that both see the same machine load.
// usage: node bench/tools/ab-realworld.mjs <checkout before> <checkout after> [rounds] [postgres|sqlite]
// (each checkout built with npm run build; PA_TEST_POSTGRES_URL set, or a PostgreSQL is started).
const dirs = { before: process.argv[2], after: process.argv[3] };
const rounds = Number(process.argv[4] ?? 3);
const kind = process.argv[5] ?? 'postgres';
const { startServers } = await import(`${dirs.after}/dist/bench/lib/servers.js`);
const { drawLatencies, idealPerSecond, LATENCY_PLAN } = await import(
  `${dirs.after}/dist/bench/lib/latencies.js`
);
const servers = await startServers({ peers: false, mongodb: false, log: () => {} });
const planMean = LATENCY_PLAN.medianMs * Math.exp(LATENCY_PLAN.sigma ** 2 / 2);
const set = drawLatencies(Math.round((20 * 10 * 1000) / planMean));
const ideal = idealPerSecond(20, set);
const out = { before: [], after: [] };
for (let r = 0; r < rounds; r++) {
  for (const name of r % 2 === 0 ? ['before', 'after'] : ['after', 'before']) {
    const { realWorldAgents } = await import(`${dirs[name]}/dist/bench/scenarios/latency.js`);
    const run = await realWorldAgents(kind, 2, 10, servers, { set, capMs: 120_000 });
    const of = run.perSecond / ideal;
    out[name].push(of);
    const { loadavg } = await import('node:os');
    console.log(
      `${name} round ${r + 1}: ${run.perSecond.toFixed(0)} docs/s, ${of.toFixed(3)} of ideal, load ${loadavg()[0].toFixed(2)}`,
    );
  }
}
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
console.log(`before mean ${mean(out.before).toFixed(3)} [${out.before.map((x) => x.toFixed(3)).join(', ')}]`);
console.log(`after  mean ${mean(out.after).toFixed(3)} [${out.after.map((x) => x.toFixed(3)).join(', ')}]`);
await servers.stop();
process.exit(0);
