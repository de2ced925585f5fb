// The SQLite file replaced under running agents, as a deploy script that recreates the data
// directory does: while two agents work through a backlog, the directory is removed and made
// again, a fresh store is created at the same path (as the next agent to start would) and a third
// agent starts on it. Then documents and a pause are posted through one of the first two. No
// split brain is allowed: every agent must reopen the file at the path, the documents must land in
// it and be handled, and the pause must reach all three. What became of the documents left in the
// old (deleted) file is read through a plain connection the harness opened on it beforehand, which
// keeps it readable: the harness's own store follows the path like the agents' (it reopens too).

import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

import Database from 'better-sqlite3';

import { loadConfig } from '../../src/config.js';
import { openStore } from '../../src/stores/index.js';
import { type ChaosAgent, ChaosFleet, dumpOutputs } from '../agents.js';
import { drained, readLedger, RecordCounter, storeDocuments } from '../ledger.js';
import { figure, FLEET_ENV, type Scenario, seconds, sleep } from '../scenario.js';
import { createDatabase } from '../stores.js';
import { reached } from '../watchers.js';

/** Ids in the new file start here, so that they can never be mistaken for the old file's. */
const NEW_IDS_FROM = 1_000_000;

export const replaced: Scenario = {
  id: 'replaced',
  title: 'SQLite file replaced',
  stores: ['sqlite'],
  async run({ params, scope, log, watch }, result) {
    const p = params.replaced;
    const db = await createDatabase('sqlite', '');
    scope.defer('dropping the database', () => db.cleanup());
    const path = db.env.STORE_URL!.slice('sqlite:'.length);
    const fleet = watch(
      new ChaosFleet({
        ...db.env,
        ...FLEET_ENV,
        HANDLER_DELAY_MS: String(p.handlerDelayMs),
        BATCH_SIZE: '5',
      }),
    );
    scope.defer('stopping the agents', () => fleet.stopAll());
    const [first, second] = (await fleet.startMany('replaced-', 2)) as [ChaosAgent, ChaosAgent];
    await first.call('POST', '/api/cluster/pause?reason=chaos+replaced+loading');
    const oldIds = await storeDocuments(db.store, p.documents);
    await first.call('POST', '/api/cluster/resume?reason=chaos+replaced+go');
    const counter = new RecordCounter(fleet.recordFile);
    for (let i = 0; i < 600 && counter.count() < p.documents / 10; i++) await sleep(100);

    // The deploy script: the directory goes, comes back empty, and a fresh store is made in it.
    const inFlight = (await Promise.all([first, second].map((a) => a.state(2_000).catch(() => null)))).filter(
      (s) => s?.batch_in_flight,
    ).length;
    const handledBefore = counter.count();
    // A plain connection to the old file, opened (and read) before it goes: it holds the file, its
    // WAL and shared memory open, so what was left in it stays readable after the deletion.
    const oldFile = new Database(path);
    scope.defer('closing the old file', () => void oldFile.close());
    oldFile.prepare('SELECT count(*) FROM documents').get();
    rmSync(dirname(path), { recursive: true, force: true });
    mkdirSync(dirname(path), { recursive: true });
    const replacedAt = Date.now();
    const fresh = await openStore(loadConfig(db.env).store);
    scope.defer('closing the new file', () => fresh.close());
    await fresh.init();
    const raw = new Database(path);
    raw
      .prepare(`INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('documents', ?)`)
      .run(NEW_IDS_FROM);
    raw.close();
    log(`data directory recreated with ${inFlight} agent(s) holding work (${handledBefore} handled before)`);
    const third = await fleet.start('replaced-new');
    await fleet.adopted(third);

    // Every first-generation agent must show up in the new file's registry.
    const reopenedMs = new Map<string, number>();
    for (let i = 0; i < 100_000 && Date.now() - replacedAt < p.noticeMs && reopenedMs.size < 2; i++) {
      const rows = await fresh.listAgents().catch(() => []);
      for (const a of [first, second])
        if (!reopenedMs.has(a.id) && rows.some((r) => r.agent_id === a.id))
          reopenedMs.set(a.id, Date.now() - replacedAt);
      await sleep(200);
    }

    const posted = await fetch(`${first.url}/api/documents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(Array.from({ length: p.afterDocuments }, (_, n) => ({ after: n }))),
      signal: AbortSignal.timeout(30_000),
    });
    const postedBody = (await posted.json().catch(() => ({}))) as { ids?: string[] };
    const afterIds = postedBody.ids ?? [];
    const inNewFile = afterIds.filter((id) => Number(id) > NEW_IDS_FROM).length;
    const newBefore = await fresh.readControlVersion();
    const pause = await first.call<{ version?: number }>('POST', '/api/cluster/pause?reason=chaos+replaced');
    const pauseVersion = pause.body.version ?? -1;
    const newVersion = await fresh.readControlVersion();
    const agents = [first, second, third];
    const reach = await reached(agents, pauseVersion, 'paused', Date.now() - pause.ms, 30_000);
    // The pause counts only if it is the new file's: an agent still on the deleted file writes it
    // there, where the new agent never sees it.
    const pauseInNew = newVersion > newBefore && newVersion === pauseVersion;
    const reachedAll = reach.filter((r) => r.appliedMs !== null).length;
    log(`pause v${pauseVersion} (the new file holds v${newVersion}): applied by ${reachedAll}/3`);

    await first.call('POST', '/api/cluster/resume?reason=chaos+replaced+finish');
    const newDone = await drained(fresh, 60_000);
    await sleep(1_000);
    dumpOutputs(fleet);
    const ledger = readLedger(afterIds, fleet.records());
    // Nobody holds the deleted file any more (a pending or processing row there stays so): its
    // statuses as the harness's plain connection reads them.
    const old = oldCounts(oldFile);
    const logged = [first, second].filter((a) => a.output().includes('Store reopened:')).length;
    const oldLedger = readLedger(oldIds, fleet.records());
    const reopenMax = Math.max(...[first, second].map((a) => reopenedMs.get(a.id) ?? Infinity));
    const fmt = (ms: number) => (Number.isFinite(ms) ? seconds(ms) : 'never');

    result.figures.push(
      figure('work in flight', inFlight, `${inFlight}/2 agents`),
      figure(
        'reopened the new file',
        reopenedMs.size,
        `${reopenedMs.size}/2 (${fmt(reopenMax)}; ${logged} logged it)`,
      ),
      figure(
        'documents after (in new file / lost)',
        ledger.lost.length,
        `${afterIds.length} (${inNewFile} / ${ledger.lost.length})`,
      ),
      figure(
        'pause',
        pauseInNew && reachedAll === 3,
        `v${pauseVersion} in the ${pauseInNew ? 'new' : 'deleted'} file; applied by ${reachedAll}/3`,
      ),
      figure(
        'old file',
        oldLedger.lost.length,
        old
          ? `${oldIds.length - oldLedger.lost.length}/${oldIds.length} of its backlog handled; at the end ${old.pending} pending, ${old.processing} processing there`
          : 'unreadable',
      ),
      figure('processed twice', ledger.twice.size + oldLedger.twice.size),
    );
    if (reopenedMs.size < 2)
      result.broken.push(
        `${2 - reopenedMs.size} agent(s) never reopened the file at the path within ${seconds(p.noticeMs, 0)} (they kept the deleted one)`,
      );
    if (logged < reopenedMs.size)
      result.broken.push(
        `${reopenedMs.size - logged} agent(s) reopened the file without logging "Store reopened:"`,
      );
    if (afterIds.length !== p.afterDocuments)
      result.broken.push(`POST /api/documents answered ${posted.status} with ${afterIds.length} ids`);
    if (inNewFile < afterIds.length)
      result.broken.push(
        `split brain: ${afterIds.length - inNewFile} of ${afterIds.length} documents posted after the replacement went into the deleted file`,
      );
    if (!pauseInNew)
      result.broken.push(
        `split brain: the pause (v${pauseVersion}) went into the deleted file (the new file holds v${newVersion})`,
      );
    if (reachedAll < 3)
      result.broken.push(
        `the pause reached ${reachedAll}/3 agents (${reach
          .filter((r) => r.appliedMs === null)
          .map((r) => r.agent)
          .join(', ')} never applied it)`,
      );
    if (!newDone) result.broken.push('documents in the new file still pending or processing after 60 s');
    if (ledger.lost.length > 0)
      result.broken.push(`${ledger.lost.length} document(s) posted after the replacement never handled`);
    result.notes.push(
      `old file: ${oldLedger.lost.length} of ${oldIds.length} documents never handled (stranded with the deleted file)`,
    );
  },
};

/** The deleted file's documents by status (null when unreadable). */
function oldCounts(file: Database.Database): { pending: number; processing: number } | null {
  try {
    const rows = file
      .prepare<[], { status: string; n: number }>(
        'SELECT status, count(*) AS n FROM documents GROUP BY status',
      )
      .all();
    const n = (status: string) => rows.find((r) => r.status === status)?.n ?? 0;
    return { pending: n('pending'), processing: n('processing') };
  } catch {
    return null;
  }
}
