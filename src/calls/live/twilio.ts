import { z } from "zod";
import type { TwilioConfig } from "../../env";
import { errorText } from "../../errors";

/**
 * Twilio Programmable Voice over plain fetch: the REST Call resource (create, hang up, redirect,
 * read), the TwiML that connects a call to our Media Stream or dials a person, and the status
 * callbacks Twilio sends back.
 * Field names are Twilio's own (REST 2010-04-01, form-encoded requests, JSON responses).
 */

const CALL_STATUSES = ["queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"] as const;
export type TwilioCallStatus = (typeof CALL_STATUSES)[number];

const FINAL_STATUSES: ReadonlySet<TwilioCallStatus> = new Set(["completed", "busy", "no-answer", "failed", "canceled"]);

/** Twilio's JSON error body: {code, message, more_info, status}. */
const ErrorBodySchema = z.object({
  code: z.number().int().nullish(),
  message: z.string(),
  more_info: z.string().nullish(),
});

const CallResourceSchema = z.object({
  sid: z.string().regex(/^CA[0-9a-fA-F]{32}$/),
  status: z.enum(CALL_STATUSES),
  /** Seconds, as a string, once the call has ended. */
  duration: z.string().regex(/^\d+$/).transform(Number).nullish(),
  /** The machine detection verdict (human, machine_start, …, fax, unknown), when there is one. */
  answered_by: z.string().nullish(),
});

/** A request Twilio refused (its error code and message), or one that never got an answer (status 0). */
export class TwilioApiError extends Error {
  override name = "TwilioApiError";
  constructor(
    message: string,
    /** The HTTP status Twilio answered with; 0 when no answer arrived. */
    readonly status: number,
    readonly code: number | null = null,
    readonly moreInfo: string | null = null,
  ) {
    super(message);
  }
}

export interface CreateCallInput {
  to: string;
  twiml: string;
  statusCallbackUrl: string;
  /** Where Twilio posts the answering machine detection verdict. */
  machineDetectionCallbackUrl: string;
  /** How long to let it ring. */
  timeoutSeconds: number;
  /** The longest the call may last once answered. */
  timeLimitSeconds: number;
}

/**
 * The status callbacks asked for. Not "initiated": it says nothing a call does not already know
 * (queued and initiated rank alike), and every callback is a request the Worker pays for.
 */
const STATUS_CALLBACK_EVENTS = ["ringing", "answered", "completed"] as const;
const REQUEST_TIMEOUT_MS = 10_000;

export class TwilioClient {
  constructor(private readonly config: TwilioConfig) {}

  /** Places an outbound call that runs `twiml` when answered, from the configured number. */
  async createCall(input: CreateCallInput): Promise<{ sid: string; status: TwilioCallStatus }> {
    const form = new URLSearchParams({
      To: input.to,
      From: this.config.fromNumber,
      Twiml: input.twiml,
      StatusCallback: input.statusCallbackUrl,
      StatusCallbackMethod: "POST",
      Timeout: String(input.timeoutSeconds),
      TimeLimit: String(input.timeLimitSeconds),
      // Asynchronous answering machine detection: synchronous detection would hold the TwiML (our
      // stream, so the greeting) for seconds after the answer; this way the verdict follows on its
      // own. DetectMessageEnd: a machine's verdict waits for the end of its greeting (the beep), so a
      // message left then is recorded whole.
      MachineDetection: "DetectMessageEnd",
      AsyncAmd: "true",
      AsyncAmdStatusCallback: input.machineDetectionCallbackUrl,
      AsyncAmdStatusCallbackMethod: "POST",
    });
    for (const event of STATUS_CALLBACK_EVENTS) form.append("StatusCallbackEvent", event);
    const call = await this.request("POST", "Calls.json", form);
    return { sid: call.sid, status: call.status };
  }

  /** Ends the call whatever its state: Status=completed hangs up a live call and cancels a queued or ringing one. */
  async hangUp(callSid: string): Promise<void> {
    await this.request("POST", `Calls/${encodeURIComponent(callSid)}.json`, new URLSearchParams({ Status: "completed" }));
  }

  /**
   * Replaces the TwiML a live call runs (its Media Stream ends), with a new time limit for the rest
   * of the call.
   */
  async updateCallTwiml(callSid: string, twiml: string, timeLimitSeconds: number): Promise<void> {
    await this.request("POST", `Calls/${encodeURIComponent(callSid)}.json`, new URLSearchParams({ Twiml: twiml, TimeLimit: String(timeLimitSeconds) }));
  }

  async fetchCall(callSid: string): Promise<{ sid: string; status: TwilioCallStatus; duration: number | null; answeredBy: string | null }> {
    const call = await this.request("GET", `Calls/${encodeURIComponent(callSid)}.json`);
    return { sid: call.sid, status: call.status, duration: call.duration ?? null, answeredBy: call.answered_by ?? null };
  }

  private async request(method: "GET" | "POST", path: string, form?: URLSearchParams): Promise<z.infer<typeof CallResourceSchema>> {
    const { apiBaseUrl, accountSid, authUser, authSecret } = this.config;
    const url = `${apiBaseUrl}/2010-04-01/Accounts/${encodeURIComponent(accountSid)}/${path}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: { Authorization: `Basic ${btoa(`${authUser}:${authSecret}`)}`, Accept: "application/json" },
        body: form,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      text = await response.text();
    } catch (error) {
      throw new TwilioApiError(`Could not reach Twilio (${method} ${url}): ${errorText(error)}`, 0);
    }
    const body = parseJson(text);
    if (!response.ok) {
      const error = ErrorBodySchema.safeParse(body);
      if (!error.success) throw new TwilioApiError(`Twilio answered ${response.status} to ${method} ${path}: ${text.slice(0, 200)}`, response.status);
      const { code, message, more_info: moreInfo } = error.data;
      throw new TwilioApiError(code ? `Twilio error ${code}: ${message}` : `Twilio: ${message}`, response.status, code ?? null, moreInfo ?? null);
    }
    const call = CallResourceSchema.safeParse(body);
    if (!call.success) throw new TwilioApiError(`Twilio answered ${method} ${path} with an unexpected body: ${text.slice(0, 200)}`, response.status);
    return call.data;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Where Twilio posts the call's status callbacks (the URL it signs them with). */
export function twilioStatusCallbackUrl(publicBaseUrl: string, notificationId: string): string {
  return `${publicBaseUrl}/twilio/status/${encodeURIComponent(notificationId)}`;
}

/** Where Twilio posts the asynchronous answering machine detection verdict (the URL it signs it with). */
export function twilioMachineDetectionCallbackUrl(publicBaseUrl: string, notificationId: string): string {
  return `${publicBaseUrl}/twilio/amd/${encodeURIComponent(notificationId)}`;
}

/** The Media Stream's WebSocket URL: the public origin's scheme turned into ws(s). */
export function twilioStreamUrl(publicBaseUrl: string, notificationId: string): string {
  return `${publicBaseUrl.replace(/^http/, "ws")}/twilio/media/${encodeURIComponent(notificationId)}`;
}

const XML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };
const xmlEscape = (text: string) => text.replace(/[&<>"']/g, (char) => XML_ESCAPES[char] ?? char);

/**
 * `<Connect><Stream>`: a bidirectional Media Stream for the rest of the call. Twilio drops query
 * strings from the stream URL, so per-call values travel as `<Parameter>`s (they arrive in `start`).
 */
export function streamTwiml(streamUrl: string, parameters: Record<string, string>): string {
  const parameterTags = Object.entries(parameters)
    .map(([name, value]) => `<Parameter name="${xmlEscape(name)}" value="${xmlEscape(value)}"/>`)
    .join("");
  return `<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="${xmlEscape(streamUrl)}">${parameterTags}</Stream></Connect></Response>`;
}

/** `<Dial>`: connects the call to `number`, presenting `callerId` to whoever answers. */
export function dialTwiml(number: string, { callerId }: { callerId: string }): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="${xmlEscape(callerId)}">${xmlEscape(number)}</Dial></Response>`;
}

export interface TwilioStatusUpdate {
  callSid: string;
  callStatus: TwilioCallStatus;
  /** Orders the callbacks of one call (they can arrive out of order); absent on older API versions. */
  sequenceNumber: number | null;
  /** With machine detection: human, machine_start, machine_end_beep, machine_end_silence, machine_end_other, fax or unknown. */
  answeredBy: string | null;
  /** Talk time, on the final callback. */
  durationSeconds: number | null;
  /** The SIP response that ended the call attempt (e.g. 404, 480, 486), when Twilio reports one. */
  sipResponseCode: number | null;
}

const callSidField = z.string().regex(/^CA[0-9a-fA-F]{32}$/, "must be a Call SID");
const optionalText = z
  .string()
  .optional()
  .transform((value) => (value ? value : null));
const optionalCount = z
  .string()
  .regex(/^\d+$/, "must be a whole number")
  .transform(Number)
  .optional()
  .transform((value) => value ?? null);

/** The status callback's form fields we use; Twilio sends more (AccountSid, From, To, Timestamp, CallbackSource, …). */
const StatusCallbackSchema = z.object({
  CallSid: callSidField,
  CallStatus: z.enum(CALL_STATUSES),
  SequenceNumber: optionalCount,
  AnsweredBy: optionalText,
  CallDuration: optionalCount,
  SipResponseCode: optionalCount,
});

/** Validates a status callback's form fields; throws a ZodError on anything else. */
export function parseTwilioStatusCallback(form: Record<string, string>): TwilioStatusUpdate {
  const fields = StatusCallbackSchema.parse(form);
  return {
    callSid: fields.CallSid,
    callStatus: fields.CallStatus,
    sequenceNumber: fields.SequenceNumber,
    answeredBy: fields.AnsweredBy,
    durationSeconds: fields.CallDuration,
    sipResponseCode: fields.SipResponseCode,
  };
}

/**
 * AnsweredBy of answering machine detection: `Enable` reports machine_start, human, fax or unknown;
 * `DetectMessageEnd` waits for the greeting's end and reports machine_end_beep, _silence or _other.
 */
const ANSWERED_BY = ["human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"] as const;
export type TwilioAnsweredBy = (typeof ANSWERED_BY)[number];

export interface TwilioMachineDetection {
  callSid: string;
  answeredBy: TwilioAnsweredBy;
  /** How long detection took after the answer. */
  detectionDurationMs: number | null;
}

/** The asynchronous detection callback's form: CallSid, AccountSid, AnsweredBy, MachineDetectionDuration (ms). */
const MachineDetectionCallbackSchema = z.object({
  CallSid: callSidField,
  AnsweredBy: z.enum(ANSWERED_BY),
  MachineDetectionDuration: optionalCount,
});

/** Validates an answering machine detection callback's form fields; throws a ZodError on anything else. */
export function parseTwilioMachineDetectionCallback(form: Record<string, string>): TwilioMachineDetection {
  const fields = MachineDetectionCallbackSchema.parse(form);
  return { callSid: fields.CallSid, answeredBy: fields.AnsweredBy, detectionDurationMs: fields.MachineDetectionDuration };
}

/** Orders statuses so a late callback never moves a call backwards: queued/initiated < ringing < in-progress < ended. */
export function twilioStatusRank(status: TwilioCallStatus): number {
  if (isFinalTwilioStatus(status)) return 3;
  if (status === "in-progress") return 2;
  if (status === "ringing") return 1;
  return 0;
}

export function isFinalTwilioStatus(status: TwilioCallStatus): boolean {
  return FINAL_STATUSES.has(status);
}
