// The runtime's OpenTelemetry spans, with the SDK's in-memory exporter registered as a user would:
// a span per claim, per handler run (active while the handler runs, the child of a document's
// `_trace`, ERROR when the handler throws) and per grouped write of outcomes.

import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';

import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';

import { type DocumentHandler, Pipeline, type RuntimeStats } from '../../src/agent/pipeline.js';
import { parentOf, SPAN_CLAIM, SPAN_HANDLE, SPAN_RECORD } from '../../src/agent/tracing.js';
import { createMemoryStore, type MemoryStore } from '../helpers/memory-store.js';
import { waitFor } from '../helpers/wait.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager().enable();
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(contextManager);

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function stats(): RuntimeStats {
  return {
    batches: 0,
    claims: 0,
    lastBatchAt: null,
    documentsProcessed: 0,
    documentsFailed: 0,
    documentsRetried: 0,
    handlerErrors: 0,
    storeErrors: 0,
    leasesLapsed: 0,
    leasesRecovered: 0,
  };
}

function pipeline(store: MemoryStore, handler: DocumentHandler): Pipeline {
  return new Pipeline({
    store,
    owner: { agentId: 'a', instanceId: 'i-1' },
    handler,
    concurrency: 4,
    batchSize: 100,
    prefetch: 0,
    maxRetries: 2,
    leaseMs: 60_000,
    pollIntervalMs: 60_000,
    logger: pino({ level: 'silent' }),
    stats: stats(),
  });
}

const named = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
const payloadOf = (span: ReadableSpan) => span.attributes['pulling_agent.document.id'];

describe('traces', () => {
  beforeEach(() => {
    exporter.reset();
    propagation.disable();
  });
  after(async () => {
    await provider.shutdown();
    contextManager.disable();
  });

  async function run(docs: unknown[], handler: DocumentHandler) {
    const store = createMemoryStore();
    const stored = await store.insertDocuments(docs);
    const p = pipeline(store, handler);
    p.start();
    try {
      await waitFor(() => named(SPAN_HANDLE).length === docs.length, { what: 'a handle span per document' });
    } finally {
      await p.close();
    }
    return stored;
  }

  it('spans each claim, handler run and grouped write, and continues a document’s trace', async () => {
    const userTracer = trace.getTracer('the-handler');
    const [traced, plain, throwing] = await run(
      [
        { n: 1, _trace: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=x' } },
        { n: 2 },
        { n: 3 },
      ],
      (doc) => {
        const n = (doc.payload as { n: number }).n;
        userTracer.startSpan(`user.work.${n}`).end();
        if (n === 3) throw new Error('downstream answered 503');
      },
    );

    const claims = named(SPAN_CLAIM);
    const claimed = claims.find((s) => s.attributes['pulling_agent.claim.claimed'] === 3);
    assert.ok(claimed, 'a claim span with the three documents');
    assert.equal(claimed.attributes['pulling_agent.claim.requested'], 4);
    assert.equal(claimed.attributes['pulling_agent.store.kind'], 'sqlite');
    assert.equal(claimed.parentSpanContext, undefined);

    const handles = new Map(named(SPAN_HANDLE).map((s) => [payloadOf(s), s]));
    const t = handles.get(traced);
    const p = handles.get(plain);
    const f = handles.get(throwing);
    assert.ok(t && p && f, 'a handle span for each document');
    // The producer's trace is continued: its span is the parent, its trace state carried on.
    assert.equal(t.spanContext().traceId, TRACE_ID);
    assert.equal(t.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(t.parentSpanContext?.isRemote, true);
    assert.equal(t.spanContext().traceState?.get('vendor'), 'x');
    // A document without one starts its own trace.
    assert.notEqual(p.spanContext().traceId, TRACE_ID);
    assert.equal(p.parentSpanContext, undefined);

    assert.equal(t.attributes['pulling_agent.document.attempt'], 0);
    assert.equal(t.attributes['pulling_agent.outcome'], 'processed');
    assert.equal(t.status.code, SpanStatusCode.UNSET);
    assert.equal(f.attributes['pulling_agent.outcome'], 'retried');
    assert.equal(f.status.code, SpanStatusCode.ERROR);
    assert.match(f.status.message ?? '', /downstream answered 503/);
    assert.equal(f.events[0]?.name, 'exception');

    // The handler's own spans are children of its handle span.
    for (const [n, handle] of [
      [1, t],
      [2, p],
      [3, f],
    ] as const) {
      const user = exporter.getFinishedSpans().find((s) => s.name === `user.work.${n}`);
      assert.ok(user, `the handler's span for document ${n}`);
      assert.equal(user.parentSpanContext?.spanId, handle.spanContext().spanId);
      assert.equal(user.spanContext().traceId, handle.spanContext().traceId);
    }

    const records = named(SPAN_RECORD);
    assert.ok(records.length >= 1);
    const total = (key: string) => records.reduce((sum, s) => sum + Number(s.attributes[key]), 0);
    assert.equal(total('pulling_agent.record.completed'), 2);
    assert.equal(total('pulling_agent.record.failed'), 1);
    for (const r of records) assert.equal(r.status.code, SpanStatusCode.UNSET);
  });

  it('a handle span lasts as long as its handler, not its write', async () => {
    await run([{ n: 1 }], () => new Promise((resolve) => setTimeout(resolve, 30)));
    const [handle] = named(SPAN_HANDLE);
    assert.ok(handle);
    const ms = handle.duration[0] * 1000 + handle.duration[1] / 1e6;
    assert.ok(ms >= 25 && ms < 1_000, `handle span of ${ms} ms`);
  });

  it('goes through the registered propagator when there is one', async () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const [id] = await run([{ _trace: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } }], () => undefined);
    const [handle] = named(SPAN_HANDLE);
    assert.equal(payloadOf(handle!), id);
    assert.equal(handle!.spanContext().traceId, TRACE_ID);
    assert.equal(handle!.parentSpanContext?.spanId, PARENT_ID);
  });

  it('ignores a trace field that is not W3C Trace Context', () => {
    for (const payload of [
      null,
      'text',
      { _trace: 'x' },
      { _trace: { traceparent: 'nonsense' } },
      { _trace: { traceparent: `00-${'0'.repeat(32)}-${PARENT_ID}-01` } },
      { _trace: { traceparent: `ff-${TRACE_ID}-${PARENT_ID}-01` } },
      { _trace: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01-extra` } },
    ]) {
      assert.equal(trace.getSpanContext(parentOf(payload)), undefined, JSON.stringify(payload));
    }
    assert.equal(
      trace.getSpanContext(parentOf({ _trace: { traceparent: `01-${TRACE_ID}-${PARENT_ID}-01-x` } }))
        ?.traceId,
      TRACE_ID,
    );
    assert.equal(parentOf({ n: 1 }), ROOT_CONTEXT);
  });
});
