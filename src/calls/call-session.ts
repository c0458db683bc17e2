import { DurableObject } from "cloudflare:workers";
import { and, eq, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { createDb, type Database } from "../db/client";
import { notifications } from "../db/schema";
import { getConfig, type Bindings } from "../env";
import { nowIso } from "../lib/ids";
import { enqueueDeliveries, prepareEvent } from "../webhooks/emit";
import { LIVE_CALL_STATUSES, type AnsweredBy, type CallCore, type CallDriver, type CallParams, type CallTarget, type EndedReason, type LiveCallState, type LiveCallStatus, type TranscriptTurn, type TurnRole } from "./call";
import { neverConnected, persistCallEnd } from "./call-end";
import { LiveCallDriver, newLiveCallState } from "./live/live-driver";
import type { TwilioMachineDetection, TwilioStatusUpdate } from "./live/twilio";
import { SimulatorDriver } from "./simulator";

/**
 * One call, one Durable Object (named by the notification id). The lifecycle core here owns the
 * call's state — persisted in ctx.storage so an eviction loses nothing —, its status transitions
 * (queued → ringing → in-progress → ended, never backwards, ended exactly once), the writes to D1
 * and the webhook events. A driver makes the call happen and reports to the core: the simulator,
 * or a live Twilio call bridged to the voice model (chosen at `driverFor`).
 */

interface CallRecord {
  params: CallParams;
  callStatus: LiveCallStatus;
  ringingAt: string | null;
  answeredAtMs: number | null;
  answeredBy: AnsweredBy | null;
  turnCount: number;
  /** A live call's Twilio progress; null for a simulated call. */
  live: LiveCallState | null;
  /** Hang up at this time: max_duration_seconds after the answer (a ring allowance before it). */
  deadlineMs: number;
  next: { step: number; atMs: number } | null;
}

const RECORD_KEY = "call";
const TURN_PREFIX = "turn:";
/** Before the answer, the deadline also covers ringing, so a call a driver lost track of still ends. */
const RING_ALLOWANCE_MS = 120_000;

const turnKey = (index: number) => `${TURN_PREFIX}${String(index).padStart(6, "0")}`;

export class CallSession extends DurableObject<Bindings> {
  private readonly lifecycle = new CallLifecycle(this.ctx, this.env);

  /**
   * Stores the call and starts it (a live call is dialled before this returns); idempotent for the
   * same call. "ended": it ended at once — Twilio refused it — and its notification says why.
   */
  async start(params: CallParams): Promise<{ callId: string; status: LiveCallStatus | "ended" }> {
    return this.lifecycle.start(params);
  }

  /** A live call's Twilio status callback (signature already checked by the route). */
  async twilioStatus(update: TwilioStatusUpdate): Promise<void> {
    await this.lifecycle.twilioStatus(update);
  }

  /** A live call's answering machine detection verdict (signature already checked by the route). */
  async twilioMachineDetection(detection: TwilioMachineDetection): Promise<void> {
    await this.lifecycle.twilioMachineDetection(detection);
  }

  /** Accepts the live call's Twilio Media Stream WebSocket (signature already checked by the route). */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("Expected a WebSocket upgrade", { status: 426 });
    return this.lifecycle.acceptMediaStream();
  }

  /**
   * Cancels the call: a queued or ringing call is never answered, a live one is hung up. False when
   * the notification had already ended. `target` ends the notification even if start() never ran.
   */
  async cancel(target: CallTarget): Promise<boolean> {
    return this.lifecycle.cancel(target);
  }

  override async alarm(): Promise<void> {
    await this.lifecycle.alarm();
  }
}

/** The driver-agnostic core; kept off the object's RPC surface. */
class CallLifecycle implements CallCore {
  private record: CallRecord | null = null;
  /** `record` mirrors storage: false until it is read, and again after an operation failed half-way. */
  private recordLoaded = false;
  /** Turns added during the current operation, written with the record in one put. */
  private pendingTurns: Record<string, TranscriptTurn> = {};
  private readonly db: Database;
  /**
   * A live call's driver holds its sockets in memory, so it outlives operations (unlike the
   * simulator's, made per operation from the record); an evicted object makes a fresh one.
   */
  private liveDriver: LiveCallDriver | null = null;
  /** The last operation queued (settled or not): the next one starts after it. */
  private operations: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Bindings,
  ) {
    this.db = createDb(env.DB);
  }

  async start(params: CallParams): Promise<{ callId: string; status: LiveCallStatus | "ended" }> {
    return this.operation(async () => {
      const existing = this.record;
      if (existing) return { callId: existing.params.callId, status: existing.callStatus };
      const now = Date.now();
      this.record = {
        params,
        callStatus: "queued",
        ringingAt: null,
        answeredAtMs: null,
        answeredBy: null,
        turnCount: 0,
        live: params.live ? newLiveCallState() : null,
        deadlineMs: now + RING_ALLOWANCE_MS + params.maxDurationSeconds * 1000,
        next: null,
      };
      try {
        await this.driverFor(this.record).begin();
      } catch (error) {
        // Nothing was stored: the caller fails the notification.
        this.releaseDriver();
        this.record = null;
        throw error;
      }
      return { callId: params.callId, status: this.record?.callStatus ?? ("ended" as const) };
    });
  }

  async twilioStatus(update: TwilioStatusUpdate): Promise<void> {
    await this.operation(async () => {
      const record = this.record;
      // A callback after the end (or for a call this object never had) changes nothing.
      if (record?.live) await this.liveDriverFor(record).twilioStatus(update);
    });
  }

  async twilioMachineDetection(detection: TwilioMachineDetection): Promise<void> {
    await this.operation(async () => {
      const record = this.record;
      if (record?.live) await this.liveDriverFor(record).twilioMachineDetection(detection);
    });
  }

  async acceptMediaStream(): Promise<Response> {
    // The stream is the greeting's path: the driver that placed the call takes it at once instead of
    // queueing behind a status callback's D1 writes. Only an object restarted since then (no driver
    // in memory) reads its record first.
    if (this.liveDriver) return this.liveDriver.acceptMediaStream();
    return this.operation(async () => {
      const record = this.record;
      if (!record?.live) return new Response("No live call is in progress here", { status: 404 });
      return this.liveDriverFor(record).acceptMediaStream();
    });
  }

  async cancel(target: CallTarget): Promise<boolean> {
    return this.operation(async () => {
      if (!this.record) return persistCallEnd(this.db, this.env.WEBHOOK_QUEUE, neverConnected(target, "canceled", null));
      await this.driverFor(this.record).hangUp();
      return this.finish("canceled");
    });
  }

  /**
   * The alarm is set for the earliest of the deadline and the driver's next step, so it runs that
   * one without reading the clock (which also lets tests step a call one alarm at a time).
   */
  async alarm(): Promise<void> {
    await this.operation(async () => {
      const record = this.record;
      if (!record) return;
      const driver = this.driverFor(record);
      const next = record.next;
      if (next === null || record.deadlineMs <= next.atMs) {
        await driver.hangUp();
        await this.finish(record.answeredAtMs !== null ? "exceeded-max-duration" : "customer-did-not-answer");
        return;
      }
      await driver.runStep(next.step);
      // A step that scheduled nothing leaves the driver waiting (e.g. for the callee).
      if (this.record?.next === next) this.record.next = null;
    });
  }

  async markRinging(): Promise<boolean> {
    const record = this.live();
    if (record.callStatus !== "queued") return true;
    const ringingAt = nowIso();
    const update = this.db
      .update(notifications)
      .set({ callStatus: guardedCallStatus("ringing", ["queued"]), startedAt: ringingAt, updatedAt: ringingAt })
      .where(eq(notifications.id, record.params.notificationId));
    if (!(await this.transition([update], "ringing"))) return false;
    record.callStatus = "ringing";
    record.ringingAt = ringingAt;
    await this.commit();
    return true;
  }

  async markAnswered(answeredBy: AnsweredBy): Promise<boolean> {
    const record = this.live();
    if (record.callStatus === "in-progress") return true;
    const nowMs = Date.now();
    const answeredAt = new Date(nowMs).toISOString();
    const { params } = record;
    const event = await prepareEvent(this.db, {
      projectId: params.projectId,
      notificationId: params.notificationId,
      customerId: params.customerId,
      eventName: "call.started",
      data: { status: "in_progress", simulated: params.simulated },
    });
    const update = this.db
      .update(notifications)
      .set({
        callStatus: guardedCallStatus("in-progress", ["queued", "ringing"]),
        startedAt: record.ringingAt ?? answeredAt,
        answeredAt,
        answeredBy,
        updatedAt: answeredAt,
      })
      .where(eq(notifications.id, params.notificationId));
    if (!(await this.transition([update, ...event.statements], "in-progress"))) return false;
    record.callStatus = "in-progress";
    record.ringingAt ??= answeredAt;
    record.answeredAtMs = nowMs;
    record.answeredBy = answeredBy;
    record.deadlineMs = nowMs + params.maxDurationSeconds * 1000;
    await this.commit();
    await enqueueDeliveries(this.env.WEBHOOK_QUEUE, event.deliveryIds);
    return true;
  }

  async markAnsweredBy(answeredBy: AnsweredBy): Promise<boolean> {
    const record = this.live();
    if (record.answeredBy === answeredBy) return true;
    const updatedAt = nowIso();
    const updated = await this.db
      .update(notifications)
      .set({ answeredBy, updatedAt })
      .where(and(eq(notifications.id, record.params.notificationId), eq(notifications.status, "in_progress")))
      .returning({ id: notifications.id });
    if (updated.length === 0) {
      // Ended meanwhile, as in `transition`: the call stops here.
      await this.clear();
      return false;
    }
    record.answeredBy = answeredBy;
    await this.commit();
    return true;
  }

  addTurn(role: TurnRole, text: string): void {
    const record = this.record;
    if (!record || record.answeredAtMs === null) return;
    this.pendingTurns[turnKey(record.turnCount)] = { role, text, at_ms: Date.now() - record.answeredAtMs };
    record.turnCount += 1;
  }

  schedule(step: number, atMs: number): void {
    if (this.record) this.record.next = { step, atMs };
  }

  async finish(endedReason: EndedReason, errorMessage: string | null = null): Promise<boolean> {
    const record = this.live();
    const { params } = record;
    const driver = this.driverFor(record);
    // Off the line first (model socket, media stream); the extraction may take a moment.
    this.releaseDriver();
    const transcript = await this.transcript();
    const endedAtMs = Date.now();
    let callResult: Record<string, unknown> | null = null;
    // Nothing to extract from a call the customer never spoke in.
    if (record.answeredBy === "human" && params.outputSchema && transcript.some((turn) => turn.role === "customer")) {
      const extracted = await driver.extractResult(transcript, params.outputSchema);
      callResult = extracted.value;
      errorMessage ??= extracted.error;
    }
    const applied = await persistCallEnd(this.db, this.env.WEBHOOK_QUEUE, {
      target: params,
      endedReason,
      errorMessage,
      startedAt: record.ringingAt,
      endedAt: new Date(endedAtMs).toISOString(),
      connected: record.answeredAtMs !== null,
      durationSeconds: record.answeredAtMs === null ? 0 : (endedAtMs - record.answeredAtMs) / 1000,
      transcript,
      callResult,
    });
    await this.clear();
    return applied;
  }

  async run<T>(body: () => Promise<T>): Promise<T | undefined> {
    try {
      return await this.operation(async () => (this.record ? body() : undefined));
    } catch (error) {
      console.error("[echo] a call event could not be applied", error);
      return undefined;
    }
  }

  answeredBy(): AnsweredBy | null {
    return this.live().answeredBy;
  }

  liveState(): LiveCallState {
    const state = this.live().live;
    if (!state) throw new Error("Not a live call");
    return state;
  }

  /** The one place that chooses how a call is made: live when it was created with Twilio configured, else the simulator. */
  private driverFor(record: CallRecord): CallDriver {
    if (record.live) return this.liveDriverFor(record);
    return new SimulatorDriver(this, record.params, getConfig(this.env).simulatorTimeScale);
  }

  private liveDriverFor(record: CallRecord): LiveCallDriver {
    if (this.liveDriver) return this.liveDriver;
    const config = getConfig(this.env);
    if (!config.live) throw new Error(`Call ${record.params.callId} is live but live calls are no longer configured`);
    this.liveDriver = new LiveCallDriver(this, record.params, { live: config.live, openai: config.openai });
    return this.liveDriver;
  }

  /** Closes what a live call holds (its sockets); the next operation on a live call makes a new driver. */
  private releaseDriver(): void {
    this.liveDriver?.release();
    this.liveDriver = null;
  }

  /**
   * Runs one event of the call at a time, from the stored state, and stores what it changed.
   * Operations queue behind each other rather than use blockConcurrencyWhile, which would also
   * hold a live call's audio (its WebSocket messages) for as long as an operation waits on D1.
   */
  private async operation<T>(body: () => Promise<T>): Promise<T> {
    const result = this.operations.then(async () => {
      if (!this.recordLoaded) {
        this.record = (await this.ctx.storage.get<CallRecord>(RECORD_KEY)) ?? null;
        this.recordLoaded = true;
      }
      this.pendingTurns = {};
      try {
        const value = await body();
        if (this.record) await this.commit();
        return value;
      } catch (error) {
        // What the failed operation changed in memory was never stored: the next one starts from storage.
        this.recordLoaded = false;
        throw error;
      }
    });
    this.operations = result.catch(() => undefined);
    return result;
  }

  private live(): CallRecord {
    if (!this.record) throw new Error("The call has ended");
    return this.record;
  }

  /**
   * Writes the record and the new turns atomically, then sets the alarm. Unconfirmed: the stored
   * record is there for an object that restarts, and a live call's audio must not wait (behind the
   * output gate) for it to reach disk.
   */
  private async commit(): Promise<void> {
    const record = this.live();
    await this.ctx.storage.put<unknown>({ [RECORD_KEY]: record, ...this.pendingTurns }, { allowUnconfirmed: true });
    this.pendingTurns = {};
    await this.ctx.storage.setAlarm(Math.min(record.next?.atMs ?? Number.POSITIVE_INFINITY, record.deadlineMs), { allowUnconfirmed: true });
  }

  async transcript(): Promise<TranscriptTurn[]> {
    const stored = await this.ctx.storage.list<TranscriptTurn>({ prefix: TURN_PREFIX });
    const all = new Map([...stored, ...Object.entries(this.pendingTurns)]);
    return [...all.keys()].sort().map((key) => all.get(key)!);
  }

  /** D1 is the record of an ended call; the object keeps nothing. */
  private async clear(): Promise<void> {
    this.releaseDriver();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.record = null;
    this.pendingTurns = {};
  }

  /**
   * Applies a move forward in D1. False when the notification has ended meanwhile (canceled, or
   * failed to start): the call stops here and the object forgets it.
   */
  private async transition(statements: [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], target: LiveCallStatus): Promise<boolean> {
    const notificationId = this.live().params.notificationId;
    try {
      await this.db.batch(statements);
      return true;
    } catch (error) {
      const [row] = await this.db.select({ status: notifications.status, callStatus: notifications.callStatus }).from(notifications).where(eq(notifications.id, notificationId));
      if (row && row.status !== "in_progress") {
        await this.clear();
        return false;
      }
      // Our own earlier write went through but the object lost its state before storing it.
      if (row && LIVE_CALL_STATUSES.indexOf(row.callStatus as LiveCallStatus) >= LIVE_CALL_STATUSES.indexOf(target)) return true;
      throw error;
    }
  }
}

/**
 * `call_status` moves to `to` only from one of `from` while the notification is in progress;
 * otherwise the value is NULL, which the NOT NULL column refuses, failing the whole batch so the
 * events written with it are never stored. That is what makes each event exactly-once.
 */
function guardedCallStatus(to: LiveCallStatus, from: LiveCallStatus[]) {
  return sql`CASE WHEN status = 'in_progress' AND call_status IN (${sql.join(
    from.map((s) => sql`${s}`),
    sql`, `,
  )}) THEN ${to} ELSE NULL END`;
}

