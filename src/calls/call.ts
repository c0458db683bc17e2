import type { CallingWindow } from "./calling-hours";
import type { EngineUsage } from "./live/engine";
import type { CallRecording } from "./recording";

/**
 * The call's contract: its vocabulary (one source for each enum, feeding the TypeScript unions, the
 * D1 columns and the OpenAPI schema), what a call is given, and how the lifecycle core and the
 * drivers (simulator, live) speak to each other. Modules that need a call's types import this file,
 * never the Durable Object that uses them.
 */

/** A notification's status (API.md, Notifications). */
export const NOTIFICATION_STATUSES = ["queued", "in_progress", "completed", "failed", "canceled"] as const;
export type NotificationStatus = (typeof NOTIFICATION_STATUSES)[number];

/** A notification that has not ended: waiting to be dialled (queued), or with its call under way. */
export const OPEN_NOTIFICATION_STATUSES = ["queued", "in_progress"] as const satisfies readonly NotificationStatus[];
export const isOpenStatus = (status: NotificationStatus) => OPEN_NOTIFICATION_STATUSES.some((open) => open === status);

/** A project's calls running at once at most, unless it sets its own `max_concurrent_calls` (API.md "Pacing"). */
export const DEFAULT_MAX_CONCURRENT_CALLS = 10;

/** Why a `queued` notification waits (API.md, Scheduling). */
export const QUEUED_REASONS = ["scheduled", "calling_hours", "retry", "capacity"] as const;
export type QueuedReason = (typeof QUEUED_REASONS)[number];

/** The speech-to-speech engines a call can run on (API.md, Calls): an agent's `engine`, a project's `default_engine`. */
export const VOICE_ENGINES = ["openai-realtime", "openai-live"] as const;
export type VoiceEngineName = (typeof VOICE_ENGINES)[number];
export const DEFAULT_VOICE_ENGINE: VoiceEngineName = "openai-realtime";

/** Where a call is while its notification is in progress. */
export const LIVE_CALL_STATUSES = ["queued", "ringing", "in-progress"] as const;
export type LiveCallStatus = (typeof LIVE_CALL_STATUSES)[number];

/** `call_status`: the live ones, then how the call ended on the line. */
export const CALL_STATUSES = [...LIVE_CALL_STATUSES, "completed", "busy", "no-answer", "failed", "canceled"] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

export const ENDED_REASONS = [
  "customer-ended-call",
  "assistant-ended-call",
  "customer-busy",
  "customer-did-not-answer",
  "voicemail",
  "exceeded-max-duration",
  "silence-timed-out",
  "canceled",
  "error",
  /** The agent handed the caller over to a person (`transfer_to`). */
  "transferred",
  /** Not dialled: the number is on the project's blocked list. */
  "blocked",
  /** Not dialled: the phone opted out of calls while the notification waited. */
  "opted-out",
] as const;
export type EndedReason = (typeof ENDED_REASONS)[number];

export const ANSWERED_BY = ["human", "machine_end_beep"] as const;
export type AnsweredBy = (typeof ANSWERED_BY)[number];

export const TURN_ROLES = ["agent", "customer"] as const;
export type TurnRole = (typeof TURN_ROLES)[number];

/** One line of the transcript; `at_ms` counts from the answer. */
export type TranscriptTurn = { role: TurnRole; text: string; at_ms: number };

/** Outcomes of an attempt that `retry.on` may name (API.md, Scheduling, calling hours and retries). */
export const RETRY_ON = ["busy", "no-answer", "voicemail", "failed"] as const;
export type RetryOn = (typeof RETRY_ON)[number];

/** How a notification tries again after an attempt that did not reach the person. */
export interface RetryPolicy {
  /** Attempts in all, the first call included (1–6). */
  max_attempts: number;
  delay_minutes: number;
  on: RetryOn[];
}

/** Which `retry.on` outcome an attempt that ended so counts as; null: never retried (the person was reached, or it was canceled). */
export const RETRY_OUTCOME: Record<EndedReason, RetryOn | null> = {
  "customer-busy": "busy",
  "customer-did-not-answer": "no-answer",
  voicemail: "voicemail",
  error: "failed",
  "customer-ended-call": null,
  "assistant-ended-call": null,
  "exceeded-max-duration": null,
  "silence-timed-out": null,
  canceled: null,
  transferred: null,
  blocked: null,
  "opted-out": null,
};

/** A customer's phone: calls go to its primary `active` one (API.md, Customers). */
export const PHONE_STATUSES = ["active", "opted_out", "invalid"] as const;
export type PhoneStatus = (typeof PHONE_STATUSES)[number];

/** How the business obtained the person's consent to be called (API.md, The person called). */
export const CONSENT_TYPES = ["express_written", "express", "existing_relationship", "other"] as const;
export type ConsentType = (typeof CONSENT_TYPES)[number];

/** A customer's consent record, as stored and as `call.summary` carries it. */
export interface Consent {
  type: ConsentType;
  /** ISO 8601. */
  obtained_at: string;
  /** Where it was obtained (a form, a contract, …). */
  source: string;
}

/** One call of a notification, in `attempts[]`. */
export interface CallAttempt {
  number: number;
  call_id: string;
  status: "completed" | "failed" | "canceled";
  ended_reason: EndedReason;
  answered_by: AnsweredBy | null;
  started_at: string | null;
  answered_at: string | null;
  ended_at: string;
}

/** `call_result`, or why there is none. */
export interface CallResult {
  value: Record<string, unknown> | null;
  /** Why the value is null (or what went wrong); null when it was extracted cleanly. */
  error: string | null;
}

/** Who the call belongs to: enough to end its notification even when no call ever ran. */
export interface CallTarget {
  notificationId: string;
  projectId: string;
  customerId: string;
  simulated: boolean;
  /** The batch it belongs to: its end may complete the batch. */
  batchId: string | null;
}

/** The target of a stored notification. */
export function callTargetOf(row: { id: string; projectId: string; customerId: string; simulated: boolean; batchId: string | null }): CallTarget {
  return { notificationId: row.id, projectId: row.projectId, customerId: row.customerId, simulated: row.simulated, batchId: row.batchId };
}

/** What a live call needs besides the common CallParams, fixed when the notification is created. */
export interface LiveCallParams {
  /** Per-call secret in the stream's `<Parameter>`s: only Twilio's stream for this call is accepted. */
  streamToken: string;
  voice: string | null;
  language: string | null;
}

/** Everything a call needs, rendered when the notification was created. */
export interface CallParams extends CallTarget {
  callId: string;
  /** The customer's phone row: its status is checked again just before a waiting call is dialled. */
  phoneId: string;
  phoneE164: string;
  prompt: string;
  /** What the agent says first. */
  opening: string;
  voicemailMessage: string | null;
  outputSchema: Record<string, unknown> | null;
  maxDurationSeconds: number;
  /** Null: one attempt only. */
  retry: RetryPolicy | null;
  /**
   * The calling hours every attempt is dialled in, on the callee's clocks (fixed when the
   * notification was created); null: any hour (`ignore_calling_hours`, or a simulated call in a
   * project that set none).
   */
  callingWindow: CallingWindow | null;
  /** The project's `max_concurrent_calls` when the notification was created. */
  maxConcurrentCalls: number;
  /** This call's attempt, from 1. */
  attempt: number;
  /** The voice engine the call runs on (the agent's, else the project's default). */
  engine: VoiceEngineName;
  /** The agent's `transfer_to` (E.164): the caller may be handed over to it; null: no transfer. */
  transferTo: string | null;
  /** The agent's `record`: the call is recorded (its opening begins with the disclosure). */
  record: boolean;
  /** What the agent answers a call screener: who calls, for whom, and why, in one sentence. */
  screenerReply: string;
  /** The customer's consent record when the notification was created (for `call.summary`). */
  consent: Consent | null;
  /** Set for a live call (Twilio configured), absent for a simulated one. */
  live?: LiveCallParams;
}

/** A live call's Twilio progress, stored with the call record. */
export interface LiveCallState {
  callSid: string | null;
  /** The highest SequenceNumber of a status callback applied. */
  statusSequence: number | null;
  /** The rank of the latest Twilio status applied: a callback never moves the call backwards. */
  statusRank: number;
  /** The agent ended the call (end_call, opt_out), so its end is assistant-ended-call. */
  agentEnded: boolean;
  /** The call was handed over to `transfer_to` (set before Twilio is asked): it is never hung up by us. */
  transferred: boolean;
}

/** What a driver may do to the call: from inside a step or an operation (see `run`). */
export interface CallCore {
  /** A live call was dialled: its carrier leg, kept with the call and in D1 (where the reconciler finds it). */
  markDialled(carrierCallSid: string): Promise<void>;
  /** False: the notification ended elsewhere (e.g. canceled) and the driver must stop. */
  markRinging(): Promise<boolean>;
  /** False as for markRinging; otherwise emits call.started. */
  markAnswered(answeredBy: AnsweredBy): Promise<boolean>;
  /** Who answered, learned after the answer (machine detection); false as for markRinging. */
  markAnsweredBy(answeredBy: AnsweredBy): Promise<boolean>;
  /** Who answered, once the call is answered; null before. */
  answeredBy(): AnsweredBy | null;
  addTurn(role: TurnRole, text: string): void;
  /**
   * The person asked not to be called again: their phone is `opted_out` at once (before the call
   * ends), the notification will carry `opted_out: true`, and `customer.opted_out` is emitted.
   * Idempotent; false as for markRinging.
   */
  optOut(): Promise<boolean>;
  finish(endedReason: EndedReason, errorMessage?: string | null): Promise<boolean>;
  /** Runs the driver's `runStep(step)` at `atMs` (one pending step at a time). */
  schedule(step: number, atMs: number): void;
  /**
   * Runs `body` as one lifecycle operation (serialized, on the stored state, committed after), for
   * what a driver learns on its own — sockets, timers. Undefined, and `body` not run, once the call
   * has ended; a failure is logged, not thrown.
   */
  run<T>(body: () => Promise<T>): Promise<T | undefined>;
  /** The turns so far, oldest first. */
  transcript(): Promise<TranscriptTurn[]>;
  /** A live call's Twilio progress, stored with the call. */
  liveState(): LiveCallState;
}

export interface CallDriver {
  /** How long after the start the call must have been answered; past that, the core ends it. */
  readonly answerWithinMs: number;
  begin(): void | Promise<void>;
  runStep(step: number): Promise<void>;
  /** Ends the call on the line (cancel, deadline, an end decided elsewhere); idempotent. The core then finishes it. */
  hangUp(): Promise<void>;
  /** Learns what became of the call where it runs (a live call asks the carrier) and reports it as its callbacks would. */
  reconcile(): Promise<void>;
  /** `call_result` from a call a person answered and spoke in; null value with a reason when it cannot be had. */
  extractResult(transcript: TranscriptTurn[], outputSchema: Record<string, unknown>): CallResult | Promise<CallResult>;
  /**
   * The call's recording, taken once the call is over on the line; null when the call is not
   * recorded or nothing was heard. `talkMs` (answer to hang-up) is for a driver that has no audio.
   */
  takeRecording(talkMs: number): CallRecording | null;
  /**
   * What the call's model sessions billed, by the engines' own counters, summed over every session
   * (a reconnect opens another); asked once the call is over on the line and its sessions closed.
   */
  usage(): EngineUsage | Promise<EngineUsage>;
}
