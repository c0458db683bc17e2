import { DurableObject } from "cloudflare:workers";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { createDb, type Database } from "../db/client";
import { prepared, runStatement, setTo } from "../db/prepared";
import { blockedNumbers, customerPhones, notifications } from "../db/schema";
import { getConfig, type Bindings, type LiveCallConfig } from "../env";
import { errorText } from "../errors";
import { newCallId, nowIso } from "../lib/ids";
import { enqueueDeliveries, prepareEvent } from "../webhooks/emit";
import {
  isOpenStatus,
  LIVE_CALL_STATUSES,
  OPEN_NOTIFICATION_STATUSES,
  RETRY_OUTCOME,
  type CallAttempt,
  type AnsweredBy,
  type CallCore,
  type CallDriver,
  type CallParams,
  type CallResult,
  type CallTarget,
  type EndedReason,
  type LiveCallState,
  type LiveCallStatus,
  type TranscriptTurn,
  type TurnRole,
} from "./call";
import { attemptStatus, neverConnected, persistAttemptBeforeRetry, persistCallEnd, storedUsage } from "./call-end";
import { boundedCallResult } from "./call-result";
import { endLostLeg, hangUpLeg, LiveCallDriver, newLiveCallState } from "./live/live-driver";
import { isFinalTwilioStatus, type TwilioMachineDetection, type TwilioStatusUpdate } from "./live/twilio";
import { nextDialTime } from "./calling-hours";
import { DEPLOYMENT_PACER, projectPacerName } from "./pacer";
import { firstReconcileAt, reconcileAfter } from "./reconcile";
import { recordingKey, type CallRecording } from "./recording";
import { recordingExpiresAt } from "./recording-retention";
import { SimulatorDriver } from "./simulator";
import { addUsage, callUsage, type CallUsage } from "./usage";

/**
 * One call, one Durable Object (named by the notification id). The lifecycle core here owns the
 * call's state — persisted in ctx.storage so an eviction loses nothing —, its status transitions
 * (queued → ringing → in-progress → ended, never backwards, ended exactly once), the writes to D1
 * and the webhook events. A driver makes the call happen and reports to the core: the simulator,
 * or a live Twilio call bridged to the voice model (chosen at `driverFor`).
 */

/** How the call ended on the line, stored before anything of the end that can fail or take time. */
interface CallEnding {
  endedReason: EndedReason;
  errorMessage: string | null;
  endedAtMs: number;
  /** The call's result; null while its extraction is still due. */
  result: CallResult | null;
  /** Extractions started: an object restarted mid-extraction starts one more. */
  extractions: number;
  /** Writes of the end that D1 refused; retried on the alarm with backoff, never relabelled. */
  failedWrites: number;
  /** Set when the notification tries again (its retry policy): the next attempt's due time and call id. */
  retry: { atMs: number; callId: string } | null;
  /**
   * The call's recording: `stored` false while it is written to R2 (outside the queue), true once it
   * is there; null when there is none (not recorded, nothing heard, a retried attempt, or its write failed).
   */
  recording: { key: string; stored: boolean } | null;
  /** What the notification's calls used, summed over its attempts, this one included. */
  usage: CallUsage;
}

interface CallRecord {
  params: CallParams;
  callStatus: LiveCallStatus;
  ringingAt: string | null;
  answeredAtMs: number | null;
  answeredBy: AnsweredBy | null;
  turnCount: number;
  /** The person opted out during this call (their phone already is, in D1). */
  optedOut: boolean;
  /** A live call's Twilio progress; null for a simulated call. */
  live: LiveCallState | null;
  /** Set while the call waits to be dialled (scheduled, calling hours, retry, capacity): when to look again. */
  dueAtMs: number | null;
  /** The deployment's start given to this call (it holds its project's slot): it dials then. */
  startAtMs: number | null;
  /**
   * The alarm's backstop: while waiting, when the call is due; before the answer, when it must have
   * been answered; after it, when max_duration_seconds is up; once ending, when the end's next step is due.
   */
  deadlineMs: number;
  next: { step: number; atMs: number } | null;
  /** Set once the call is over on the line; the object keeps it until D1 has the end. */
  ending: CallEnding | null;
  /** What the notification's earlier attempts used, summed (each one's is in D1 too); null on its first. */
  usageBefore: CallUsage | null;
}

/** What the reconciler knows of a notification from D1, for an object that has no record of its call. */
export interface ReconcileRequest {
  target: CallTarget;
  /** The attempt the notification is on (from 1). */
  attempt: number;
  carrierCallSid: string | null;
  answeredAt: string | null;
}

/** "running": the call is alive until `deadlineMs` at least (its object ends it there). */
export type ReconcileOutcome = { state: "ended" } | { state: "running"; deadlineMs: number };

const RECORD_KEY = "call";
/** A call waiting for a slot looks again this often, should the pacer's word be lost. */
const CAPACITY_RECHECK_MS = 30_000;
/** A slot is held for the call's longest possible life, and this much more (ringing, extraction). */
const SLOT_LEASE_MARGIN_SECONDS = 300;
const TURN_PREFIX = "turn:";
/** No result: the call was not one to extract from (no schema, no person, nothing said). */
const NO_RESULT: CallResult = { value: null, error: null };
/** Extractions tried at most for one end (a restart may lose the first). */
const MAX_EXTRACTIONS = 2;
/** After this many refused writes the end is stored without its call_result, which may be what D1 refuses. */
const WRITES_BEFORE_DROPPING_RESULT = 5;
/** A call whose deadline passed this long ago without its alarm ending it is stuck: the reconciler ends it. */
const STUCK_AFTER_MS = 60_000;
/** The most a recording's write to R2 may take (at most two 5 MiB parts are left at the end); then the call ends without it. */
const RECORDING_UPLOAD_TIMEOUT_MS = 30_000;
/** How long an end waits for the write in flight: its time limit, and a little more for its outcome to be applied. */
const RECORDING_UPLOAD_ALLOWANCE_MS = RECORDING_UPLOAD_TIMEOUT_MS + 5_000;

const turnKey = (index: number) => `${TURN_PREFIX}${String(index).padStart(6, "0")}`;
/** 1 s, doubling, at most a minute. */
const endRetryDelayMs = (failedWrites: number) => Math.min(60_000, 1000 * 2 ** (failedWrites - 1));

/** Written as every live call is dialled, so its SQL is built once. */
const carrierCallSidUpdate = prepared(["notificationId", "carrierCallSid"], (db, p) =>
  db.update(notifications).set({ carrierCallSid: setTo(p.carrierCallSid) }).where(eq(notifications.id, p.notificationId)),
);

export class CallSession extends DurableObject<Bindings> {
  private readonly lifecycle = new CallLifecycle(this.ctx, this.env);

  /**
   * Stores the call and starts it — a live call is dialled before this returns — or keeps it
   * "waiting" (its notification `queued`): until `dueAtMs` if that is in the future, or until the
   * pacing lets it start. Idempotent for the same call. "ended": it ended at once — Twilio refused
   * it — and its notification says why.
   */
  async start(params: CallParams, dueAtMs: number | null = null): Promise<{ callId: string; status: LiveCallStatus | "waiting" | "ended" }> {
    return this.lifecycle.start(params, dueAtMs);
  }

  /** A live call's Twilio status callback (signature already checked by the route), for this object's notification. */
  async twilioStatus(notificationId: string, update: TwilioStatusUpdate): Promise<void> {
    await this.lifecycle.twilioStatus(notificationId, update);
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
   * Ends the call now with `endedReason` (canceled, or error when its start failed): a queued or
   * ringing call is never answered, a live one is hung up. "already-ended" when it had ended (or was
   * ending). `target` ends the notification even if start() never ran. Returns once the end is
   * stored, its result extracted included (other requests to the call are answered meanwhile).
   */
  async stop(target: CallTarget, endedReason: "canceled" | "error", errorMessage: string | null = null): Promise<"stopped" | "already-ended"> {
    return this.lifecycle.stop(target, endedReason, errorMessage);
  }

  /** The project's pacer gave this waiting call a slot: it is dialled now (the pacing allowing). */
  async slotFreed(): Promise<void> {
    await this.lifecycle.slotFreed();
  }

  /** The reconciler asks: learn the call's real state (from the carrier) and end it if it is over or lost. */
  async reconcile(request: ReconcileRequest): Promise<ReconcileOutcome> {
    return this.lifecycle.reconcile(request);
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
  /** The alarm as last set; a commit that would set it again skips the write. Null: not known. */
  private alarmAtMs: number | null = null;
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
  /** The extraction in flight, outside the operation queue; settles once its result is applied. */
  private extraction: Promise<void> | null = null;
  /** The recording's write in flight, outside the operation queue; settles once its outcome is applied. */
  private recordingUpload: Promise<void> | null = null;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Bindings,
  ) {
    this.db = createDb(env.DB);
  }

  async start(params: CallParams, dueAtMs: number | null): Promise<{ callId: string; status: LiveCallStatus | "waiting" | "ended" }> {
    return this.operation(async () => {
      const existing = this.record;
      if (existing) return { callId: existing.params.callId, status: existing.ending ? ("ended" as const) : existing.callStatus };
      if (dueAtMs !== null && dueAtMs > Date.now()) {
        // Nothing to dial yet: the alarm places the call when it is due.
        this.record = { ...newRecord(params), dueAtMs, deadlineMs: dueAtMs };
        return { callId: params.callId, status: "waiting" as const };
      }
      const record = newRecord(params);
      this.record = record;
      if (!(await this.admit(record))) return { callId: params.callId, status: "waiting" as const };
      try {
        await this.dial(record);
      } catch (error) {
        // Nothing is stored: the caller fails the notification, and the slot goes to the next call.
        await this.releaseSlot(params);
        this.record = null;
        throw error;
      }
      return { callId: params.callId, status: record.ending ? ("ended" as const) : record.callStatus };
    });
  }

  async slotFreed(): Promise<void> {
    await this.operation(async () => {
      const record = this.record;
      if (record && !record.ending && record.dueAtMs !== null) await this.placeWaitingCall(record);
    });
  }

  /**
   * Takes a status callback: queued in the order the callbacks came, its update — D1 writes and
   * events — applied in its turn on the operation queue, while Twilio has its answer at once (it
   * waits for nothing the object does). Twilio does not retry a status callback, whatever we
   * answer: one the object cannot apply, or loses to a restart, is lost as an error answered would
   * be; the next callback carries the call's newer state, and the reconciler ends a call whose end
   * never came.
   */
  async twilioStatus(notificationId: string, update: TwilioStatusUpdate): Promise<void> {
    const applied = this.operation(() => this.applyStatus(notificationId, update)).catch((error: unknown) =>
      console.error(`[echo] the ${update.callStatus} status callback of notification ${notificationId} could not be applied`, error),
    );
    this.ctx.waitUntil(applied);
  }

  /** Settles once every operation queued so far, and those queued meanwhile, have run (tests look at the outcome then). */
  async whenIdle(): Promise<void> {
    for (let last: Promise<unknown> | null = null; last !== this.operations; ) {
      last = this.operations;
      await last;
    }
  }

  private async applyStatus(notificationId: string, update: TwilioStatusUpdate): Promise<void> {
    const record = this.record;
    if (record?.live && !record.ending) {
      await this.liveDriverFor(record).twilioStatus(update);
      return;
    }
    if (record || isFinalTwilioStatus(update.callStatus)) return;
    // No call here any more (ended, or never stored): a leg that is still up belongs to nobody —
    // unless it was handed over to a person, and goes on without us.
    const stored = await this.storedLeg(notificationId);
    if (!(stored?.transferred && stored.callSid === update.callSid)) await hangUpLeg(this.liveConfig(), update.callSid);
  }

  async twilioMachineDetection(detection: TwilioMachineDetection): Promise<void> {
    await this.operation(async () => {
      const record = this.record;
      if (record?.live && !record.ending) await this.liveDriverFor(record).twilioMachineDetection(detection);
    });
  }

  async acceptMediaStream(): Promise<Response> {
    // The stream is the greeting's path: the driver that placed the call takes it at once instead of
    // queueing behind a status callback's D1 writes. Only an object restarted since then (no driver
    // in memory) reads its record first.
    if (this.liveDriver) return this.liveDriver.acceptMediaStream();
    return this.operation(async () => {
      const record = this.record;
      if (!record?.live || record.ending) return new Response("No live call is in progress here", { status: 404 });
      return this.liveDriverFor(record).acceptMediaStream();
    });
  }

  async stop(target: CallTarget, endedReason: "canceled" | "error", errorMessage: string | null): Promise<"stopped" | "already-ended"> {
    const outcome = await this.operation(async () => {
      const record = this.record;
      if (!record) {
        // The call never reached this object, or the object lost it: a leg D1 knows of is hung up all the same.
        await this.hangUpStoredLeg(target);
        const usage = await storedUsage(this.db, target.notificationId, getConfig(this.env).openai);
        return (await persistCallEnd(this.db, this.env.WEBHOOK_QUEUE, neverConnected(target, endedReason, errorMessage, usage))) ? "stopped" : "already-ended";
      }
      if (record.ending) return "already-ended";
      await this.driverFor(record).hangUp();
      await this.finish(endedReason, errorMessage);
      return "stopped";
    });
    // This stop ended the call: its answer waits for the result and the recording (the queue does not).
    if (outcome === "stopped") await Promise.all([this.extraction, this.recordingUpload]);
    return outcome;
  }

  async reconcile(request: ReconcileRequest): Promise<ReconcileOutcome> {
    return this.operation(async (): Promise<ReconcileOutcome> => {
      const record = this.record;
      if (!record) {
        await this.endLostCall(request);
        return { state: "ended" };
      }
      if (record.ending) await this.continueEnding();
      else if (record.dueAtMs !== null) {
        if (Date.now() >= record.dueAtMs + STUCK_AFTER_MS) await this.placeWaitingCall(record);
      } else {
        const driver = this.driverFor(record);
        await driver.reconcile();
        if (this.record && !this.record.ending && Date.now() >= record.deadlineMs + STUCK_AFTER_MS) await this.deadlinePassed(driver);
      }
      const current = this.record;
      return current ? { state: "running", deadlineMs: current.deadlineMs } : { state: "ended" };
    });
  }

  /**
   * The alarm is set for the earliest of the deadline and the driver's next step, so it runs that
   * one without reading the clock (which also lets tests step a call one alarm at a time).
   */
  async alarm(): Promise<void> {
    // A fired alarm is no longer set.
    this.alarmAtMs = null;
    await this.operation(async () => {
      const record = this.record;
      if (!record) return;
      if (record.ending) {
        await this.continueEnding();
        return;
      }
      if (record.dueAtMs !== null) {
        await this.placeWaitingCall(record);
        return;
      }
      const driver = this.driverFor(record);
      const next = record.next;
      if (next === null || record.deadlineMs <= next.atMs) {
        await this.deadlinePassed(driver);
        return;
      }
      await driver.runStep(next.step);
      // A step that scheduled nothing leaves the driver waiting (e.g. for the callee).
      if (this.record?.next === next) this.record.next = null;
    });
  }

  async markDialled(carrierCallSid: string): Promise<void> {
    const { live, params } = this.live();
    if (!live) throw new Error("Not a live call");
    live.callSid = carrierCallSid;
    await runStatement(carrierCallSidUpdate.bind(this.db, { notificationId: params.notificationId, carrierCallSid }));
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
    const deadlineMs = nowMs + params.maxDurationSeconds * 1000;
    const event = await prepareEvent(this.db, {
      projectId: params.projectId,
      notificationId: params.notificationId,
      customerId: params.customerId,
      eventName: "call.started",
      data: { status: "in_progress", attempt: params.attempt, simulated: params.simulated },
    });
    const update = this.db
      .update(notifications)
      .set({
        callStatus: guardedCallStatus("in-progress", ["queued", "ringing"]),
        startedAt: record.ringingAt ?? answeredAt,
        answeredAt,
        answeredBy,
        reconcileAt: reconcileAfter(deadlineMs),
        updatedAt: answeredAt,
      })
      .where(eq(notifications.id, params.notificationId));
    if (!(await this.transition([update, ...event.statements], "in-progress"))) return false;
    record.callStatus = "in-progress";
    record.ringingAt ??= answeredAt;
    record.answeredAtMs = nowMs;
    record.answeredBy = answeredBy;
    record.deadlineMs = deadlineMs;
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
      await this.endedElsewhere();
      return false;
    }
    record.answeredBy = answeredBy;
    await this.commit();
    return true;
  }

  addTurn(role: TurnRole, text: string): void {
    const record = this.record;
    if (!record || record.answeredAtMs === null || record.ending) return;
    this.pendingTurns[turnKey(record.turnCount)] = { role, text, at_ms: Date.now() - record.answeredAtMs };
    record.turnCount += 1;
  }

  async optOut(): Promise<boolean> {
    const record = this.live();
    if (record.optedOut) return true;
    const { params } = record;
    const updatedAt = nowIso();
    const event = await prepareEvent(this.db, {
      projectId: params.projectId,
      notificationId: params.notificationId,
      customerId: params.customerId,
      eventName: "customer.opted_out",
      data: { customer_id: params.customerId, phone: params.phoneE164, simulated: params.simulated },
    });
    // The phone first, so no other call of the project dials it from now on; the notification's
    // guard (as guardedCallStatus) fails the batch — and stores no event — once it has ended.
    const phone = this.db.update(customerPhones).set({ status: "opted_out", updatedAt }).where(and(eq(customerPhones.id, params.phoneId), eq(customerPhones.projectId, params.projectId)));
    const notification = this.db
      .update(notifications)
      .set({ optedOut: sql`CASE WHEN status = 'in_progress' THEN 1 ELSE NULL END`, updatedAt })
      .where(eq(notifications.id, params.notificationId));
    try {
      await this.db.batch([phone, notification, ...event.statements]);
    } catch (error) {
      const [row] = await this.db.select({ status: notifications.status, optedOut: notifications.optedOut }).from(notifications).where(eq(notifications.id, params.notificationId));
      if (row && !isOpenStatus(row.status)) {
        await this.endedElsewhere();
        return false;
      }
      // Our own earlier write went through but the object lost its state before storing it.
      if (!row?.optedOut) throw error;
    }
    record.optedOut = true;
    await this.commit();
    await enqueueDeliveries(this.env.WEBHOOK_QUEUE, event.deliveryIds);
    return true;
  }

  schedule(step: number, atMs: number): void {
    if (this.record && !this.record.ending) this.record.next = { step, atMs };
  }

  /**
   * The call is over on the line: how it ended is kept before anything that can fail or take time.
   * A result to extract is extracted outside the operation queue (callbacks and cancels are answered
   * meanwhile); the end is then written to D1 — retried on the alarm while D1 refuses it. False
   * when the call had already ended.
   */
  async finish(endedReason: EndedReason, errorMessage: string | null = null): Promise<boolean> {
    const record = this.live();
    if (record.ending) return false;
    const driver = this.driverFor(record);
    // Off the line first (model socket, media stream), so that the sessions' usage is final.
    this.releaseDriver();
    const [transcript, engineUsage] = await Promise.all([this.transcript(), driver.usage()]);
    const config = getConfig(this.env);
    const usage = callUsage(record.params.engine, config.openai, config.modelPrices, engineUsage);
    // Nothing to extract from a call the customer never spoke in.
    const extractionDue = record.answeredBy === "human" && record.params.outputSchema !== null && transcript.some((turn) => turn.role === "customer");
    const endedAtMs = Date.now();
    const retry = nextAttempt(record, endedReason, endedAtMs);
    record.ending = {
      endedReason,
      errorMessage,
      endedAtMs,
      result: extractionDue ? null : NO_RESULT,
      extractions: 0,
      failedWrites: 0,
      retry,
      recording: null,
      usage: record.usageBefore ? addUsage(record.usageBefore, usage) : usage,
    };
    record.next = null;
    const recording = driver.takeRecording(record.answeredAtMs === null ? 0 : endedAtMs - record.answeredAtMs);
    // A notification keeps the recording of its last call: an attempt that is tried again keeps none.
    if (recording && retry) {
      recording.discard().catch((error: unknown) => console.error(`[echo] the recording of call ${record.params.callId} could not be discarded`, error));
    } else if (recording) {
      this.startRecordingUpload(record, record.ending, recording);
    }
    return this.continueEnding(driver, transcript);
  }

  async run<T>(body: () => Promise<T>): Promise<T | undefined> {
    try {
      return await this.operation(async () => (this.record && !this.record.ending ? body() : undefined));
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

  async transcript(): Promise<TranscriptTurn[]> {
    const stored = await this.ctx.storage.list<TranscriptTurn>({ prefix: TURN_PREFIX });
    const all = new Map([...stored, ...Object.entries(this.pendingTurns)]);
    return [...all.keys()].sort().map((key) => all.get(key)!);
  }

  /**
   * Pacing, just before a call is dialled: a slot of its project's (handed out in due order) and a
   * start of the deployment's. True: dial now. False: the call waits, `queued` for capacity, until
   * the pacer frees it a slot (`slotFreed`) or its start comes (the alarm), looking again at its
   * alarm meanwhile.
   */
  private async admit(record: CallRecord): Promise<boolean> {
    const { params } = record;
    const now = Date.now();
    if (record.startAtMs === null) {
      const leaseMs = (params.maxDurationSeconds + SLOT_LEASE_MARGIN_SECONDS) * 1000;
      const held = await this.pacer(projectPacerName(params.projectId)).acquire(params.notificationId, record.dueAtMs ?? now, params.maxConcurrentCalls, leaseMs);
      if (!held) {
        await this.waitForCapacity(record, now + CAPACITY_RECHECK_MS);
        return false;
      }
      record.startAtMs = await this.pacer(DEPLOYMENT_PACER).startAt(getConfig(this.env).callsPerSecond);
    }
    if (record.startAtMs > Date.now()) {
      await this.waitForCapacity(record, record.startAtMs);
      return false;
    }
    record.startAtMs = null;
    return true;
  }

  private async waitForCapacity(record: CallRecord, untilMs: number): Promise<void> {
    record.dueAtMs = untilMs;
    record.deadlineMs = untilMs;
    const at = new Date(untilMs).toISOString();
    await this.db
      .update(notifications)
      .set({ status: "queued", queuedReason: "capacity", scheduledFor: at, reconcileAt: firstReconcileAt(untilMs), updatedAt: nowIso() })
      .where(and(eq(notifications.id, record.params.notificationId), inArray(notifications.status, OPEN_NOTIFICATION_STATUSES)));
  }

  /** The call no longer holds (or waits for) its project's slot. A failure is logged: the slot's lease frees it. */
  private async releaseSlot(params: CallParams): Promise<void> {
    await this.pacer(projectPacerName(params.projectId))
      .release(params.notificationId)
      .catch((error: unknown) => console.error(`[echo] could not free the call slot of notification ${params.notificationId}`, error));
  }

  private pacer(name: string) {
    return this.env.CALL_PACER.get(this.env.CALL_PACER.idFromName(name));
  }

  /** Dials a live call (or starts the simulation); a failure hangs up whatever was dialled, then throws. */
  private async dial(record: CallRecord): Promise<void> {
    const driver = this.driverFor(record);
    record.dueAtMs = null;
    record.deadlineMs = Date.now() + driver.answerWithinMs;
    try {
      await driver.begin();
    } catch (error) {
      // A leg already dialled must not ring on.
      await driver.hangUp();
      this.releaseDriver();
      throw error;
    }
  }

  /**
   * A waiting call is due. Unless its notification ended meanwhile (canceled), the number is checked
   * again (it may have been blocked, or opted out, since), then the calling window and the pacing; the notification
   * moves from queued to in_progress just before the call is dialled.
   */
  private async placeWaitingCall(record: CallRecord): Promise<void> {
    const { params } = record;
    const [[phone], [notification], [blocked]] = await this.db.batch([
      this.db.select({ status: customerPhones.status }).from(customerPhones).where(eq(customerPhones.id, params.phoneId)),
      this.db.select({ status: notifications.status }).from(notifications).where(eq(notifications.id, params.notificationId)),
      this.db
        .select({ id: blockedNumbers.id })
        .from(blockedNumbers)
        .where(and(eq(blockedNumbers.projectId, params.projectId), eq(blockedNumbers.phone, params.phoneE164))),
    ]);
    if (notification?.status !== "queued") {
      await this.endedElsewhere();
      return;
    }
    if (blocked) {
      await this.finish("blocked", "The number was blocked before the call was placed");
      return;
    }
    if (phone?.status === "opted_out") {
      await this.finish("opted-out", "The phone number opted out of calls before the call was placed");
      return;
    }
    if (phone?.status !== "active") {
      await this.finish("error", `The phone number was ${phone ? "marked invalid" : "removed"} before the call was placed`);
      return;
    }
    // The window again, just before dialling: a call that came due while it is closed waits for it.
    const now = Date.now();
    const dialAtMs = nextDialTime(now, params.callingWindow);
    if (dialAtMs === null) {
      await this.finish("error", "The calling hours never open in all of the callee's time zones at once");
      return;
    }
    if (dialAtMs > now) {
      // A slot given to it while it waited is of no use before the window opens.
      await this.releaseSlot(params);
      record.startAtMs = null;
      await this.db
        .update(notifications)
        .set({ queuedReason: "calling_hours", scheduledFor: new Date(dialAtMs).toISOString(), reconcileAt: firstReconcileAt(dialAtMs), updatedAt: new Date(now).toISOString() })
        .where(and(eq(notifications.id, params.notificationId), eq(notifications.status, "queued")));
      record.dueAtMs = dialAtMs;
      record.deadlineMs = dialAtMs;
      return;
    }
    if (!(await this.admit(record))) return;
    const placedAt = Date.now();
    const placed = await this.db
      .update(notifications)
      .set({ status: "in_progress", scheduledFor: null, queuedReason: null, reconcileAt: firstReconcileAt(placedAt), updatedAt: new Date(placedAt).toISOString() })
      .where(and(eq(notifications.id, params.notificationId), eq(notifications.status, "queued")))
      .returning({ id: notifications.id });
    if (placed.length === 0) {
      await this.endedElsewhere();
      return;
    }
    try {
      await this.dial(record);
    } catch (error) {
      console.error(`[echo] could not place the due call ${params.callId}`, error);
      await this.finish("error", "The call could not be started");
    }
  }

  /**
   * The deadline passed: the carrier is asked what became of the call (a lost final callback), and a
   * call still on the line is hung up — at max_duration_seconds, or never answered.
   */
  private async deadlinePassed(driver: CallDriver): Promise<void> {
    await driver.reconcile();
    const record = this.record;
    if (!record || record.ending) return;
    await driver.hangUp();
    await this.finish(record.answeredAtMs !== null ? "exceeded-max-duration" : "customer-did-not-answer");
  }

  /**
   * The next step of an end: extract the result if it is due (outside the queue), else write the end
   * to D1. True unless the notification had already ended elsewhere. `driver` and `transcript` are
   * passed by a call that just finished; a later step makes or reads them.
   */
  private async continueEnding(driver?: CallDriver, transcript?: TranscriptTurn[]): Promise<boolean> {
    const record = this.live();
    const ending = record.ending!;
    transcript ??= await this.transcript();
    if (ending.result === null) {
      if (this.extraction) {
        // Still extracting in this object: look again once its own time limit has passed.
        record.deadlineMs = Date.now() + this.extractionAllowanceMs();
        return true;
      }
      if (ending.extractions < MAX_EXTRACTIONS) {
        this.startExtraction(record, ending, driver ?? this.driverFor(record, { detached: true }), transcript);
        return true;
      }
      ending.result = { value: null, error: "Extracting call_result did not finish" };
    }
    if (ending.recording && !ending.recording.stored) {
      if (this.recordingUpload) {
        record.deadlineMs = Date.now() + RECORDING_UPLOAD_ALLOWANCE_MS;
        return true;
      }
      // The object restarted while writing it: the audio was in its memory. A write that did finish is not left without a row.
      console.error(`[echo] the recording of call ${record.params.callId} was lost with its object; the call ends without it`);
      await this.deleteRecording(ending.recording.key);
      ending.recording = null;
    }
    const { params } = record;
    const endedAt = new Date(ending.endedAtMs).toISOString();
    // A call that was dialled is an attempt; one canceled (or refused) while it waited is not.
    const dialled: CallAttempt | null =
      record.dueAtMs === null
        ? {
            number: params.attempt,
            call_id: params.callId,
            status: attemptStatus(ending.endedReason),
            ended_reason: ending.endedReason,
            answered_by: record.answeredBy,
            started_at: record.ringingAt,
            answered_at: record.answeredAtMs === null ? null : new Date(record.answeredAtMs).toISOString(),
            ended_at: endedAt,
          }
        : null;
    const dropResult = ending.result.value !== null && ending.failedWrites >= WRITES_BEFORE_DROPPING_RESULT;
    let applied: boolean;
    try {
      applied =
        ending.retry && dialled
          ? await persistAttemptBeforeRetry(this.db, this.env.WEBHOOK_QUEUE, {
              target: params,
              ended: dialled,
              retryAt: new Date(ending.retry.atMs).toISOString(),
              nextCallId: ending.retry.callId,
              usage: ending.usage,
            })
          : await persistCallEnd(this.db, this.env.WEBHOOK_QUEUE, {
              target: params,
              endedReason: ending.endedReason,
              errorMessage: dropResult ? "The call's result could not be stored" : (ending.errorMessage ?? ending.result.error),
              startedAt: record.ringingAt,
              endedAt,
              connected: record.answeredAtMs !== null,
              durationSeconds: record.answeredAtMs === null ? 0 : (ending.endedAtMs - record.answeredAtMs) / 1000,
              transcript,
              callResult: dropResult ? null : ending.result.value,
              attempt: params.attempt,
              dialled,
              optedOut: record.optedOut,
              consent: params.consent,
              recording: ending.recording?.stored ? { key: ending.recording.key, expiresAt: recordingExpiresAt(ending.endedAtMs, getConfig(this.env).recordingRetentionDays) } : null,
              usage: ending.usage,
            });
    } catch (error) {
      ending.failedWrites += 1;
      record.deadlineMs = Date.now() + endRetryDelayMs(ending.failedWrites);
      console.error(`[echo] the end of call ${params.callId} could not be stored (attempt ${ending.failedWrites}); retrying`, error);
      return true;
    }
    await this.clear();
    if (applied && ending.retry) {
      // The next attempt waits in this object, as a scheduled call does.
      const next = newRecord({ ...params, callId: ending.retry.callId, attempt: params.attempt + 1 });
      this.record = { ...next, dueAtMs: ending.retry.atMs, deadlineMs: ending.retry.atMs, usageBefore: ending.usage };
    }
    return applied;
  }

  /** Runs the extraction outside the operation queue; its result is applied, and the end written, in an operation. */
  private startExtraction(record: CallRecord, ending: CallEnding, driver: CallDriver, transcript: TranscriptTurn[]): void {
    ending.extractions += 1;
    record.deadlineMs = Date.now() + this.extractionAllowanceMs();
    const outputSchema = record.params.outputSchema!;
    const extraction = (async () => {
      let result: CallResult;
      try {
        // Whichever driver extracts, the schema is checked and the result's size capped here.
        result = await boundedCallResult(outputSchema, () => driver.extractResult(transcript, outputSchema));
      } catch (error) {
        // A schema that cannot be used (e.g. a $ref loop) must not keep the call from ending.
        result = { value: null, error: `Extracting call_result failed: ${errorText(error)}` };
      }
      await this.operation(async () => {
        const current = this.record?.ending;
        if (!current || current.result !== null) return;
        current.result = result;
        await this.continueEnding();
      }).catch((error: unknown) => console.error(`[echo] the end of call ${record.params.callId} could not be applied`, error));
    })();
    // In flight until its result is applied: a stop waiting on it answers with the end stored.
    const inFlight = extraction.finally(() => {
      if (this.extraction === inFlight) this.extraction = null;
    });
    this.extraction = inFlight;
  }

  /**
   * Writes the recording to R2 outside the operation queue (the call's callbacks and a cancel are
   * answered meanwhile); its outcome is applied in an operation, and the end written once the
   * result is there too. A write that fails or takes too long leaves the call without a recording.
   */
  private startRecordingUpload(record: CallRecord, ending: CallEnding, recording: CallRecording): void {
    const { callId } = record.params;
    const key = recordingKey(record.params);
    ending.recording = { key, stored: false };
    const upload = (async () => {
      const stored = await this.storeRecording(callId, key, recording);
      await this.operation(async () => {
        const current = this.record?.ending;
        if (current?.recording?.key !== key || current.recording.stored) return;
        current.recording = stored ? { key, stored: true } : null;
        await this.continueEnding();
      }).catch((error: unknown) => console.error(`[echo] the recording of call ${callId} could not be applied`, error));
    })();
    const inFlight = upload.finally(() => {
      if (this.recordingUpload === inFlight) this.recordingUpload = null;
    });
    this.recordingUpload = inFlight;
  }

  /** True once the recording is in R2; false, the error logged, when its write failed or ran out of time. */
  private async storeRecording(callId: string, key: string, recording: CallRecording): Promise<boolean> {
    const storing = recording.store();
    const timedOut = Promise.withResolvers<"timed-out">();
    const timer = setTimeout(() => timedOut.resolve("timed-out"), RECORDING_UPLOAD_TIMEOUT_MS);
    try {
      if ((await Promise.race([storing, timedOut.promise])) !== "timed-out") return true;
      console.error(`[echo] the recording of call ${callId} took over ${RECORDING_UPLOAD_TIMEOUT_MS} ms to store; the call ends without it`);
      // Should it finish after all, it is not left behind without a row to expire it.
      storing.then(() => this.deleteRecording(key)).catch(() => undefined);
      return false;
    } catch (error) {
      console.error(`[echo] the recording of call ${callId} could not be stored; the call ends without it`, error);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async deleteRecording(key: string): Promise<void> {
    await this.env.RECORDINGS.delete(key).catch((error: unknown) => console.error(`[echo] could not delete recording ${key}`, error));
  }

  /** The object has no record of the call: what the carrier says of its leg (if it was dialled) ends the notification. */
  private async endLostCall({ target, attempt, carrierCallSid, answeredAt }: ReconcileRequest): Promise<void> {
    const config = getConfig(this.env);
    let end: { endedReason: EndedReason; errorMessage: string | null } = { endedReason: "error", errorMessage: "The call was lost before it could run" };
    if (config.live && !target.simulated && carrierCallSid !== null) end = await endLostLeg(config.live, carrierCallSid);
    const usage = await storedUsage(this.db, target.notificationId, config.openai);
    await persistCallEnd(this.db, this.env.WEBHOOK_QUEUE, { ...neverConnected(target, end.endedReason, end.errorMessage, usage, attempt), connected: answeredAt !== null });
  }

  private async hangUpStoredLeg(target: CallTarget): Promise<void> {
    const live = getConfig(this.env).live;
    if (!live || target.simulated) return;
    const stored = await this.storedLeg(target.notificationId);
    if (stored && !stored.transferred) await hangUpLeg(live, stored.callSid);
  }

  /** The leg D1 knows of for a notification (dialled), and whether its call was handed over to a person. */
  private async storedLeg(notificationId: string): Promise<{ callSid: string; transferred: boolean } | null> {
    const [row] = await this.db
      .select({ carrierCallSid: notifications.carrierCallSid, endedReason: notifications.endedReason })
      .from(notifications)
      .where(eq(notifications.id, notificationId));
    return row?.carrierCallSid ? { callSid: row.carrierCallSid, transferred: row.endedReason === "transferred" } : null;
  }

  /** The notification ended outside this object (canceled, or failed by the API): the call stops, off the line too. */
  private async endedElsewhere(): Promise<void> {
    await this.driverFor(this.live()).hangUp();
    await this.clear();
  }

  /** The one place that chooses how a call is made: live when it was created with Twilio configured, else the simulator. */
  private driverFor(record: CallRecord, { detached = false } = {}): CallDriver {
    if (record.live) return detached ? this.newLiveDriver(record) : this.liveDriverFor(record);
    return new SimulatorDriver(this, record.params, getConfig(this.env).simulatorTimeScale, this.env.RECORDINGS);
  }

  private liveDriverFor(record: CallRecord): LiveCallDriver {
    this.liveDriver ??= this.newLiveDriver(record);
    return this.liveDriver;
  }

  private newLiveDriver(record: CallRecord): LiveCallDriver {
    const config = getConfig(this.env);
    return new LiveCallDriver(this, record.params, { live: this.liveConfig(), openai: config.openai, recordings: this.env.RECORDINGS });
  }

  private liveConfig(): LiveCallConfig {
    const live = getConfig(this.env).live;
    if (!live) throw new Error("A live call needs live calls configured");
    return live;
  }

  /** An extraction's own time limit, and a little more for its result to be applied. */
  private extractionAllowanceMs(): number {
    return getConfig(this.env).openai.extractionTimeoutMs + 5_000;
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
        this.alarmAtMs = null;
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
   * Writes the record and the new turns atomically, then sets the alarm (if it moved). Unconfirmed: the stored
   * record is there for an object that restarts, and a live call's audio must not wait (behind the
   * output gate) for it to reach disk.
   */
  private async commit(): Promise<void> {
    const record = this.live();
    await this.ctx.storage.put<unknown>({ [RECORD_KEY]: record, ...this.pendingTurns }, { allowUnconfirmed: true });
    this.pendingTurns = {};
    const alarmAtMs = Math.min(record.next?.atMs ?? Number.POSITIVE_INFINITY, record.deadlineMs);
    if (alarmAtMs === this.alarmAtMs) return;
    await this.ctx.storage.setAlarm(alarmAtMs, { allowUnconfirmed: true });
    this.alarmAtMs = alarmAtMs;
  }

  /** D1 is the record of an ended call; the object keeps nothing, and its project's slot is free. */
  private async clear(): Promise<void> {
    if (this.record) await this.releaseSlot(this.record.params);
    this.releaseDriver();
    // deleteAll, not the call's own keys: it is what frees the object's storage (its SQLite database)
    // for good, and there is one object per notification. Since compatibility date 2026-02-24 it
    // deletes the alarm too.
    await this.ctx.storage.deleteAll();
    this.alarmAtMs = null;
    this.record = null;
    this.pendingTurns = {};
  }

  /**
   * Applies a move forward in D1. False when the notification has ended meanwhile (canceled, or
   * failed to start): the call stops here, off the line too, and the object forgets it.
   */
  private async transition(statements: [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], target: LiveCallStatus): Promise<boolean> {
    const notificationId = this.live().params.notificationId;
    try {
      await this.db.batch(statements);
      return true;
    } catch (error) {
      const [row] = await this.db.select({ status: notifications.status, callStatus: notifications.callStatus }).from(notifications).where(eq(notifications.id, notificationId));
      if (row && !isOpenStatus(row.status)) {
        await this.endedElsewhere();
        return false;
      }
      // Our own earlier write went through but the object lost its state before storing it.
      if (row && LIVE_CALL_STATUSES.findIndex((status) => status === row.callStatus) >= LIVE_CALL_STATUSES.indexOf(target)) return true;
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

/** A call not yet dialled. */
function newRecord(params: CallParams): CallRecord {
  return {
    params,
    callStatus: "queued",
    ringingAt: null,
    answeredAtMs: null,
    answeredBy: null,
    turnCount: 0,
    optedOut: false,
    live: params.live ? newLiveCallState() : null,
    dueAtMs: null,
    startAtMs: null,
    deadlineMs: 0,
    next: null,
    ending: null,
    usageBefore: null,
  };
}

/**
 * The next attempt, when the notification's retry policy asks for one: the call was dialled, did
 * not reach the person, ended in an outcome `retry.on` names, and attempts are left.
 */
function nextAttempt(record: CallRecord, endedReason: EndedReason, endedAtMs: number): CallEnding["retry"] {
  const { retry, attempt, callingWindow } = record.params;
  const outcome = RETRY_OUTCOME[endedReason];
  if (!retry || outcome === null || !retry.on.includes(outcome)) return null;
  if (record.dueAtMs !== null || record.answeredBy === "human" || attempt >= retry.max_attempts) return null;
  // After the delay, inside the calling window; a window that never opens again ends the retries.
  const atMs = nextDialTime(endedAtMs + retry.delay_minutes * 60_000, callingWindow);
  return atMs === null ? null : { atMs, callId: newCallId() };
}
