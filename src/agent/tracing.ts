// OpenTelemetry spans of the document runtime, through @opentelemetry/api only: without an SDK
// registered by the user every call below meets the API's no-op tracer, so a document costs one
// no-op span and nothing else (attributes are set only on spans that record).
//
//   pulling_agent.claim   one store claim: requested, claimed, store kind
//   pulling_agent.handle  one handler run, active while the handler runs (its own spans are
//                         children), the child of the trace context a document carries in payload
//                         `_trace` ({ traceparent, tracestate }, W3C Trace Context); it ends when
//                         the handler returns, and carries the outcome once the store has it
//   pulling_agent.record  one grouped write of outcomes: completed and failed counts

import {
  type Attributes,
  type Context,
  context,
  createTraceState,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from '@opentelemetry/api';

import { describeError } from '../errors.js';
import type { DocumentStatus } from '../model/documents.js';
import type { ClaimedDocument, Store } from '../stores/types.js';
import { SOFTWARE_VERSION } from '../version.js';

/** The payload field that carries a producer's trace context. */
export const TRACE_FIELD = '_trace';

export const SPAN_CLAIM = 'pulling_agent.claim';
export const SPAN_HANDLE = 'pulling_agent.handle';
export const SPAN_RECORD = 'pulling_agent.record';

/** What became of a handled document, as the handle span's `pulling_agent.outcome` says it. */
export type TracedOutcome = 'processed' | 'retried' | 'failed' | 'not_held' | 'unrecorded' | 'abandoned';

// A ProxyTracer: it finds the SDK's tracer whenever one is registered, before or after this runs.
const tracer = trace.getTracer('pulling-agent', SOFTWARE_VERSION);

/** Runs one claim in a `pulling_agent.claim` span. */
export async function traceClaim<T extends unknown[]>(
  storeKind: Store['kind'],
  requested: number,
  claim: () => Promise<T>,
): Promise<T> {
  const span = tracer.startSpan(SPAN_CLAIM, { kind: SpanKind.CLIENT }, ROOT_CONTEXT);
  try {
    const documents = await claim();
    if (span.isRecording()) {
      span.setAttributes({
        'pulling_agent.store.kind': storeKind,
        'pulling_agent.claim.requested': requested,
        'pulling_agent.claim.claimed': documents.length,
      });
    }
    return documents;
  } catch (error) {
    failed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Starts a document's `pulling_agent.handle` span, the child of the trace context it carries. */
export function startHandleSpan(document: ClaimedDocument): Span {
  const span = tracer.startSpan(SPAN_HANDLE, { kind: SpanKind.CONSUMER }, parentOf(document.payload));
  if (span.isRecording()) {
    const attributes: Attributes = {
      'pulling_agent.document.id': document.id,
      'pulling_agent.document.attempt': document.attempts,
    };
    const queue = (document as { queue?: unknown }).queue;
    if (typeof queue === 'string') attributes['pulling_agent.document.queue'] = queue;
    span.setAttributes(attributes);
  }
  return span;
}

/** Runs the handler with its span active; a throw sets the span's status to ERROR. */
export async function inHandleSpan<T>(span: Span, run: () => T): Promise<Awaited<T>> {
  // A no-op span with no parent has nothing to pass on: no context is made for it.
  const active = span.isRecording() || isSpanContextValid(span.spanContext());
  try {
    return await (active ? context.with(trace.setSpan(context.active(), span), run) : run());
  } catch (error) {
    failed(span, error);
    throw error;
  }
}

/**
 * Ends a handle span at the time its handler returned (`endedAt`, performance.now() milliseconds),
 * with the outcome the store recorded.
 */
export function endHandleSpan(span: Span, outcome: TracedOutcome, endedAt: number): void {
  if (!span.isRecording()) return;
  span.setAttribute('pulling_agent.outcome', outcome);
  span.end(performance.timeOrigin + endedAt);
}

/** Ends a handle span once its outcome is written (the recording itself is not part of it). */
export function endHandleSpanAfter(span: Span, recorded: Promise<TracedOutcome>, endedAt: number): void {
  if (span.isRecording()) void recorded.then((outcome) => endHandleSpan(span, outcome, endedAt));
}

/** The outcome a handle span carries, from what the recorder wrote (its Recorded; no import, no cycle). */
export function tracedOutcome(
  recorded: { held: true; status: DocumentStatus } | { held: false } | { held: null },
): TracedOutcome {
  if (recorded.held === false) return 'not_held';
  if (recorded.held === null) return 'unrecorded';
  return recorded.status === 'processed' ? 'processed' : recorded.status === 'failed' ? 'failed' : 'retried';
}

/** Runs one grouped write of outcomes in a `pulling_agent.record` span; write says what failed. */
export async function traceRecord(
  completed: number,
  failedCount: number,
  write: () => Promise<string | null>,
): Promise<void> {
  const span = tracer.startSpan(SPAN_RECORD, { kind: SpanKind.CLIENT }, ROOT_CONTEXT);
  if (span.isRecording()) {
    span.setAttributes({
      'pulling_agent.record.completed': completed,
      'pulling_agent.record.failed': failedCount,
    });
  }
  try {
    const error = await write();
    if (error !== null) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  } finally {
    span.end();
  }
}

function failed(span: Span, error: unknown): void {
  if (!span.isRecording()) return;
  if (error instanceof Error) span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: describeError(error) });
}

/**
 * The context a document's payload `_trace` continues: through the registered propagator when
 * there is one (an SDK's W3C propagator, or the user's), else read here as W3C Trace Context.
 */
export function parentOf(payload: unknown): Context {
  if (typeof payload !== 'object' || payload === null) return ROOT_CONTEXT;
  const carrier = (payload as Record<string, unknown>)[TRACE_FIELD];
  if (typeof carrier !== 'object' || carrier === null) return ROOT_CONTEXT;
  const fields = carrier as Record<string, unknown>;
  const extracted = propagation.extract(ROOT_CONTEXT, fields);
  if (trace.getSpanContext(extracted)) return extracted;
  const spanContext = parseTraceparent(fields.traceparent);
  if (!spanContext) return extracted;
  const state = fields.tracestate;
  if (typeof state === 'string' && state !== '') spanContext.traceState = createTraceState(state);
  return trace.setSpanContext(extracted, spanContext);
}

// version-traceid-parentid-flags; version ff is invalid, a future version may append fields.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

function parseTraceparent(value: unknown) {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT.exec(value.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const spanContext = {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    traceState: undefined as ReturnType<typeof createTraceState> | undefined,
  };
  return isSpanContextValid(spanContext) ? spanContext : undefined;
}
