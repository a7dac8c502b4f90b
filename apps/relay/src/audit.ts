import type { NewAuditEvent, StateStore } from '@appproxy/config';
import type { Logger } from '@appproxy/telemetry';
import type { AuditMetrics } from './metrics.js';

/** Store writes are batched: every this long, or at once when this many wait. */
const AUDIT_FLUSH_MS = 1000;
const AUDIT_BATCH = 100;
/** At most this many events in one store write (a flush after a stall writes several). */
const AUDIT_WRITE_MAX = 500;
/** Events waiting for the store beyond this are dropped (still logged, and counted). */
const AUDIT_QUEUE_MAX = 10_000;
/** How often events older than the retention are removed. */
const AUDIT_PRUNE_MS = 3_600_000;
/** A drop is warned about at most this often (with the count since the last warning). */
const DROP_WARN_MS = 10_000;

type DropReason = 'queue_full' | 'store_failed' | 'stopped';

/** Events that may come at request rate are coalesced per key over this window. */
const AUDIT_COALESCE_MS = 60_000;
/** Keys remembered for coalescing at most (beyond: recorded one by one). */
const COALESCE_MAX_KEYS = 10_000;

/** What the relay's components record into (the Relay forwards to its AuditLog). */
export interface AuditSink {
  record(e: NewAuditEvent): void;
  /**
   * For events that may come at request rate (THROTTLED, a refused user's page and its
   * assets, forged callbacks): at most one alike event a minute is recorded (alike: the same
   * {@link coalesceKey}); the others of that minute are counted and recorded once as the same
   * event with `detail.repeated: <count>` when the minute is over.
   */
  recordCoalesced(e: NewAuditEvent): void;
}

/**
 * Which events are alike for {@link AuditSink.recordCoalesced}: type, code and reason, the
 * user (else the client address), and the app. The correlation id and the other details
 * are those of the first event of the minute.
 */
export function coalesceKey(e: NewAuditEvent): string {
  const reason = e.detail?.reason;
  const who = e.user !== undefined ? `user:${e.user}` : `client:${e.clientAddress ?? '-'}`;
  return [e.type, e.code ?? '', typeof reason === 'string' ? reason : '', who, e.app ?? ''].join(
    '\u0001',
  );
}

/** A sink that forwards to the AuditLog of the moment (none: dropped). */
export const forwardingSink = (target: () => AuditSink | undefined): AuditSink => ({
  record: (e) => target()?.record(e),
  recordCoalesced: (e) => target()?.recordCoalesced(e),
});

/**
 * The audit sink of a relay process: each event is a log line at once (`type: "audit"`,
 * level info, the event's fields) and, batched, a row of the state store. Recording never
 * throws and never waits: when the queue is full or the store fails, the event is dropped
 * from the store only (its log line was written), counted in
 * `appproxy_audit_events_dropped_total` and named in a warning.
 */
export class AuditLog implements AuditSink {
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #retentionMs: number;
  readonly #metrics: AuditMetrics | undefined;
  readonly #maxQueue: number;
  #queue: NewAuditEvent[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #soon = false;
  #stopped = false;
  readonly #timer: NodeJS.Timeout;
  readonly #pruneTimer: NodeJS.Timeout;
  readonly #drops = new Map<DropReason, { count: number; warnedAt: number; cause?: string }>();
  readonly #coalesced = new Map<
    string,
    { start: number; repeated: number; event: NewAuditEvent }
  >();

  constructor(o: {
    store: StateStore;
    log: Logger;
    retentionMs: number;
    metrics?: AuditMetrics;
    /** @default AUDIT_FLUSH_MS */
    flushIntervalMs?: number;
    /** @default AUDIT_QUEUE_MAX */
    maxQueue?: number;
    /** @default AUDIT_PRUNE_MS */
    pruneIntervalMs?: number;
  }) {
    this.#store = o.store;
    this.#log = o.log;
    this.#retentionMs = o.retentionMs;
    this.#metrics = o.metrics;
    this.#maxQueue = o.maxQueue ?? AUDIT_QUEUE_MAX;
    this.#timer = setInterval(() => {
      this.#sweep(Date.now());
      void this.flush();
    }, o.flushIntervalMs ?? AUDIT_FLUSH_MS);
    this.#timer.unref();
    this.#pruneTimer = setInterval(() => void this.prune(), o.pruneIntervalMs ?? AUDIT_PRUNE_MS);
    this.#pruneTimer.unref();
    // Once at start too: a relay restarted more often than hourly still prunes.
    setImmediate(() => void this.prune()).unref();
  }

  record(e: NewAuditEvent): void {
    try {
      const event: NewAuditEvent = { ...e, at: e.at ?? new Date() };
      this.#log.info('audit', auditLogFields(event));
      this.#metrics?.events.labels(event.type).inc();
      if (this.#stopped) return this.#drop('stopped', 1);
      if (this.#queue.length >= this.#maxQueue) return this.#drop('queue_full', 1);
      this.#queue.push(event);
      if (this.#queue.length >= AUDIT_BATCH && !this.#soon) {
        this.#soon = true;
        queueMicrotask(() => {
          this.#soon = false;
          void this.flush();
        });
      }
    } catch {
      // Never into the request: a broken logger or metric must not fail what is audited.
    }
  }

  recordCoalesced(e: NewAuditEvent): void {
    try {
      const now = Date.now();
      const key = coalesceKey(e);
      const entry = this.#coalesced.get(key);
      if (entry && now - entry.start < AUDIT_COALESCE_MS) {
        entry.repeated++;
        return;
      }
      if (entry) this.#summarise(key, entry);
      if (this.#coalesced.size < COALESCE_MAX_KEYS)
        this.#coalesced.set(key, { start: now, repeated: 0, event: e });
      this.record(e);
    } catch {
      // As record: never into the request.
    }
  }

  /** Coalescing windows that are over: their repeats recorded as one event. */
  #sweep(now: number, all = false): void {
    for (const [key, entry] of this.#coalesced)
      if (all || now - entry.start >= AUDIT_COALESCE_MS) this.#summarise(key, entry);
  }

  #summarise(key: string, entry: { repeated: number; event: NewAuditEvent }): void {
    this.#coalesced.delete(key);
    if (entry.repeated === 0) return;
    const { event } = entry;
    this.record({
      ...event,
      at: new Date(),
      detail: { ...event.detail, repeated: entry.repeated },
    });
  }

  /** Writes what waits (in batches), after any flush already running. Never rejects. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write());
    return this.#flushing;
  }

  async #write(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, AUDIT_WRITE_MAX);
      try {
        await this.#store.appendAudit(batch);
      } catch (err) {
        this.#drop('store_failed', batch.length, err);
      }
    }
  }

  /** Removes events older than the retention; failures are logged. */
  async prune(): Promise<void> {
    if (this.#stopped) return;
    try {
      const removed = await this.#store.pruneAudit(new Date(Date.now() - this.#retentionMs));
      if (removed > 0) this.#log.debug('audit events pruned', { removed });
    } catch (err) {
      this.#log.warn('audit events not pruned', { error: errorText(err) });
    }
  }

  /** Stops the timers and writes what waits; later events are logged only. */
  async stop(): Promise<void> {
    this.#sweep(Date.now(), true);
    this.#stopped = true;
    clearInterval(this.#timer);
    clearInterval(this.#pruneTimer);
    await this.flush();
  }

  #drop(reason: DropReason, count: number, err?: unknown): void {
    this.#metrics?.dropped.labels(reason).inc(count);
    const now = Date.now();
    const d = this.#drops.get(reason) ?? { count: 0, warnedAt: 0 };
    d.count += count;
    if (err !== undefined) d.cause = errorText(err);
    this.#drops.set(reason, d);
    if (now - d.warnedAt < DROP_WARN_MS) return;
    this.#log.warn('audit events not stored (their log lines were written)', {
      reason,
      dropped: d.count,
      ...(d.cause !== undefined && { cause: d.cause }),
      ...(reason === 'queue_full' && { queueMax: this.#maxQueue }),
    });
    this.#drops.set(reason, { count: 0, warnedAt: now });
  }
}

/** The log line of an event: `type: "audit"`, `audit: <type>`, then its fields. */
function auditLogFields(e: NewAuditEvent): Record<string, unknown> {
  const { type, at, ...fields } = e;
  return { type: 'audit', audit: type, ...(at && { at: at.toISOString() }), ...fields };
}

/** A store error as a line: its code and message (store messages never carry secrets). */
function errorText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return `${typeof e.code === 'string' ? `${e.code}: ` : ''}${String(e.message ?? err)}`;
}
