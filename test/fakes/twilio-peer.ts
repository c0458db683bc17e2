import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";

/**
 * What Twilio does toward our Worker during a live call, played from the test worker: signed status
 * callbacks and answering machine detection verdicts, and the Media Streams client of a bidirectional
 * `<Connect><Stream>` — `connected`, `start`, a `media` frame every 20 ms, `stop`; outbound audio
 * played in real time, marks echoed when the audio before them has played, `clear` honoured, and the
 * stream stopped when the call's TwiML is replaced (a call update with Twiml). The calls themselves
 * are the ones our Worker created on the fake Twilio REST API (test/fakes/twilio.mjs).
 *
 * The signature is computed here from Twilio's documented algorithm, independently of src/.
 */

const FAKE_TWILIO = "https://api.twilio.com/_fake/calls";

export interface FakeTwilioCall {
  sid: string;
  account_sid: string;
  status: string;
  /** The form our Worker sent to create the call (StatusCallbackEvent, sent repeatedly, is a list). */
  params: Record<string, string | string[]>;
  /** Warnings Twilio logs for the request (e.g. 21262: AsyncAmd without an AsyncAmdStatusCallback). */
  warnings: Array<{ code: number; message: string }>;
  /** The TwiML the call runs now: the one it was created with until an update replaces it. */
  twiml: string | null;
  /** Its TimeLimit (seconds, as sent), as created or last updated. */
  time_limit: string | null;
  /** Every update our Worker sent for this call (a hang-up is Status=completed). */
  updates: Array<{ params: Record<string, string | string[]>; received_at: number }>;
}

export async function fakeTwilioCalls(): Promise<FakeTwilioCall[]> {
  return (await fetch(FAKE_TWILIO)).json();
}

/** The fake's call as it is now. */
export async function fakeTwilioCall(callSid: string): Promise<FakeTwilioCall> {
  const response = await fetch(`${FAKE_TWILIO}/${callSid}`);
  if (!response.ok) throw new Error(`no fake Twilio call ${callSid}: ${response.status}`);
  return response.json();
}

/**
 * The call our Worker placed for a notification (its StatusCallback names the notification), once it
 * has: the first, or the `attempt`-th when the notification tries again.
 */
export async function twilioCallFor(notificationId: string, { attempt = 1, timeoutMs = 5_000 } = {}): Promise<FakeTwilioCall> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const call = (await fakeTwilioCalls()).filter((c) => param(c, "StatusCallback").endsWith(`/twilio/status/${notificationId}`))[attempt - 1];
    if (call) return call;
    if (Date.now() > deadline) throw new Error(`no Twilio call (attempt ${attempt}) was created for notification ${notificationId}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function param(call: FakeTwilioCall, name: string): string {
  const value = call.params[name];
  return (Array.isArray(value) ? value[0] : value) ?? "";
}

const encoder = new TextEncoder();

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function authToken(): string {
  if (!env.TWILIO_AUTH_TOKEN) throw new Error("the Twilio peer needs TWILIO_AUTH_TOKEN (a *.live.test.ts file)");
  return env.TWILIO_AUTH_TOKEN;
}

/** X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each parameter's name and value, sorted by name. */
export async function twilioSignature(url: string, params: Record<string, string> = {}, token = authToken()): Promise<string> {
  const data = url + Object.keys(params).sort().map((name) => name + params[name]).join("");
  const key = await crypto.subtle.importKey("raw", encoder.encode(token), { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  return base64(new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(data))));
}

export interface SignatureOption {
  /** Send this X-Twilio-Signature instead of the right one; null sends none. */
  signature?: string | null;
  /**
   * A status callback is answered once the call's object has queued it, and applied (D1, events)
   * after: by default this waits for the object's queued work too, as a user looking a moment later
   * would see it. False: return with Twilio's answer.
   */
  settle?: boolean;
}

/** Settles once the call object of `notificationId` has run all its queued work (e.g. the status callbacks it queued). */
export async function callObjectSettled(notificationId: string): Promise<void> {
  const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(notificationId));
  await runInDurableObject(stub, (instance) => (instance as unknown as { lifecycle: { whenIdle(): Promise<void> } }).lifecycle.whenIdle());
}

/** POSTs a callback (status, machine detection) to our Worker, form-encoded and signed as Twilio does. */
export async function sendTwilioCallback(callbackUrl: string, params: Record<string, string>, options: SignatureOption = {}): Promise<Response> {
  const signature = options.signature === undefined ? await twilioSignature(callbackUrl, params) : options.signature;
  const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" };
  if (signature !== null) headers["X-Twilio-Signature"] = signature;
  const response = await exports.default.fetch(new Request(callbackUrl, { method: "POST", headers, body: new URLSearchParams(params) }));
  const status = /\/twilio\/status\/([^/?]+)$/.exec(new URL(callbackUrl).pathname);
  if (status && response.status === 204 && options.settle !== false) await callObjectSettled(decodeURIComponent(status[1]!));
  return response;
}

const sequenceNumbers = new Map<string, number>();

/**
 * The status callback Twilio sends when `call` reaches `callStatus`, with its standard parameters and
 * the next SequenceNumber of the call (from 0); `extra` adds or overrides parameters (AnsweredBy,
 * CallDuration, SipResponseCode, SequenceNumber…). The fake's call resource moves along with it.
 */
export async function reportCallStatus(call: FakeTwilioCall, callStatus: string, extra: Record<string, string> = {}, options: SignatureOption = {}): Promise<Response> {
  const sequenceNumber = sequenceNumbers.get(call.sid) ?? 0;
  sequenceNumbers.set(call.sid, sequenceNumber + 1);
  const params: Record<string, string> = {
    AccountSid: call.account_sid,
    ApiVersion: "2010-04-01",
    CallSid: call.sid,
    CallStatus: callStatus,
    Called: param(call, "To"),
    Caller: param(call, "From"),
    Direction: "outbound-api",
    From: param(call, "From"),
    To: param(call, "To"),
    CallbackSource: "call-progress-events",
    SequenceNumber: String(sequenceNumber),
    Timestamp: new Date().toUTCString().replace("GMT", "+0000"),
    ...extra,
  };
  await fetch(`${FAKE_TWILIO}/${call.sid}`, { method: "POST", body: new URLSearchParams(params) });
  return sendTwilioCallback(param(call, "StatusCallback"), params, options);
}

export interface MachineDetectionOptions extends SignatureOption {
  /** Report this CallSid instead of the call's own. */
  callSid?: string;
  /** MachineDetectionDuration, in ms. */
  durationMs?: number;
}

/**
 * The verdict of asynchronous answering machine detection, as Twilio posts it to the call's
 * AsyncAmdStatusCallback: CallSid, AccountSid, AnsweredBy (human, machine_start, machine_end_beep,
 * machine_end_silence, machine_end_other, fax, unknown) and MachineDetectionDuration. The fake's call
 * resource gets the AnsweredBy too.
 */
export async function reportMachineDetection(call: FakeTwilioCall, answeredBy: string, options: MachineDetectionOptions = {}): Promise<Response> {
  const callbackUrl = param(call, "AsyncAmdStatusCallback");
  if (param(call, "AsyncAmd") !== "true" || !callbackUrl) throw new Error(`call ${call.sid} was not placed with asynchronous machine detection and a callback URL`);
  // The peer plays the POST form only (Twilio's default method).
  if ((param(call, "AsyncAmdStatusCallbackMethod") || "POST") !== "POST") throw new Error(`call ${call.sid} asked for its machine detection verdict by GET`);
  const params: Record<string, string> = {
    AccountSid: call.account_sid,
    CallSid: options.callSid ?? call.sid,
    AnsweredBy: answeredBy,
    MachineDetectionDuration: String(options.durationMs ?? 2400),
  };
  if (options.callSid === undefined) await fetch(`${FAKE_TWILIO}/${call.sid}`, { method: "POST", body: new URLSearchParams({ AnsweredBy: answeredBy }) });
  return sendTwilioCallback(callbackUrl, params, options);
}

/** μ-law silence; a caller who says nothing. */
export const MULAW_SILENCE = 0xff;
/** 20 ms of μ-law at 8 kHz: the size of each frame Twilio sends. */
const FRAME_BYTES = 160;
const FRAME_MS = 20;
/** How often the peer looks whether the call's TwiML was replaced, which ends a stream on Twilio. */
const TWIML_CHECK_MS = 100;

/** A message our Worker sent on the Media Stream, parsed, with when it arrived. */
export interface ReceivedMessage {
  event: string;
  streamSid?: string;
  media?: { payload: string };
  mark?: { name: string };
  at: number;
  /** Caller `media` frames this peer had sent when it arrived: the call's clock, in 20 ms frames. */
  callerFrames: number;
}

export interface EchoedMark {
  name: string;
  /** Outbound audio the caller had heard, in ms, when the mark came back. */
  heardMs: number;
  /** Returned early by a `clear` rather than reached by playback. */
  cleared: boolean;
}

type PlaybackItem = { kind: "audio"; ms: number } | { kind: "mark"; name: string };

export interface MediaStreamOptions extends SignatureOption {
  /** What the caller says: μ-law 8 kHz bytes, sent in 20 ms frames from `start` on; silence after it. */
  callerAudio?: Uint8Array;
}

/** Twilio's side of one bidirectional Media Stream. */
export class MediaStreamPeer {
  readonly streamSid = `MZ${hex(16)}`;
  /** Every message our Worker sent, in order. */
  readonly received: ReceivedMessage[] = [];
  /** Every message this peer sent, in order. */
  readonly sent: Array<Record<string, unknown>> = [];
  readonly marks: EchoedMark[] = [];
  /** The audio heard (ms) when each `clear` arrived. */
  readonly clears: number[] = [];
  /** When the first outbound `media` arrived (Date.now()), or null. */
  firstOutboundMediaAt: number | null = null;
  /** Resolves when the socket is closed, by either side. */
  readonly closed: Promise<void>;

  private sequenceNumber = 0;
  private frames = 0;
  private isClosed = false;
  private mediaTimer: number | null = null;
  private twimlTimer: number | null = null;
  private readonly playback: PlaybackItem[] = [];
  private playing: { ms: number; startedAt: number; timer: number } | null = null;
  private playedMs = 0;

  private constructor(
    private readonly socket: WebSocket,
    private readonly call: FakeTwilioCall,
    private readonly callerAudio: Uint8Array,
  ) {
    this.closed = new Promise((resolve) => socket.addEventListener("close", () => resolve()));
    socket.addEventListener("close", () => this.shutDown());
    socket.addEventListener("message", (event) => this.onMessage(String(event.data)));
  }

  /**
   * Opens the stream the call's TwiML names — Twilio's wss:// URL, fetched as https:// — signed for
   * that wss:// URL, then sends `connected` and `start` (with the TwiML's `<Parameter>`s) and starts
   * the 20 ms media frames.
   */
  static async connect(call: FakeTwilioCall, options: MediaStreamOptions = {}): Promise<MediaStreamPeer> {
    const { url, parameters } = parseStreamTwiml(param(call, "Twiml"));
    const signature = options.signature === undefined ? await twilioSignature(url) : options.signature;
    const headers: Record<string, string> = { Upgrade: "websocket" };
    if (signature !== null) headers["X-Twilio-Signature"] = signature;
    const response = await exports.default.fetch(new Request(url.replace(/^ws/, "http"), { headers }));
    const socket = response.webSocket;
    if (response.status !== 101 || !socket) throw new Error(`the Media Stream upgrade was refused: ${response.status} ${await response.text()}`);
    socket.accept();
    const peer = new MediaStreamPeer(socket, call, options.callerAudio ?? new Uint8Array());
    peer.send({ event: "connected", protocol: "Call", version: "1.0.0" });
    peer.sendSequenced("start", {
      start: {
        accountSid: call.account_sid,
        streamSid: peer.streamSid,
        callSid: call.sid,
        tracks: ["inbound"],
        customParameters: parameters,
        mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
      },
    });
    peer.scheduleFrame(Date.now());
    peer.watchTwiml(param(call, "Twiml"));
    return peer;
  }

  /** Outbound audio the caller has heard so far, in ms (the chunk playing now counts as far as it got). */
  get heardMs(): number {
    return this.playedMs + (this.playing ? Math.min(this.playing.ms, Date.now() - this.playing.startedAt) : 0);
  }

  /** The messages of one event type our Worker sent. */
  receivedOf(event: string): ReceivedMessage[] {
    return this.received.filter((message) => message.event === event);
  }

  /** Twilio's `stop` (the call ended), then the socket closes. */
  stop(): void {
    this.sendSequenced("stop", { stop: { accountSid: this.call.account_sid, callSid: this.call.sid } });
    this.close();
  }

  close(): void {
    if (this.isClosed) return;
    this.shutDown();
    this.socket.close(1000, "stream ended");
  }

  private shutDown(): void {
    this.isClosed = true;
    clearTimeout(this.mediaTimer);
    clearTimeout(this.twimlTimer);
    if (this.playing) clearTimeout(this.playing.timer);
  }

  private send(message: Record<string, unknown>): void {
    if (this.isClosed) return;
    this.sent.push(message);
    this.socket.send(JSON.stringify(message));
  }

  /** Every message after `connected` carries the stream's SID and the next sequence number, from 1. */
  private sendSequenced(event: string, body: Record<string, unknown>): void {
    this.sequenceNumber += 1;
    this.send({ event, sequenceNumber: String(this.sequenceNumber), ...body, streamSid: this.streamSid });
  }

  /** Frames go out on a fixed 20 ms grid from `start`, so a late timer never shifts the ones after it. */
  private scheduleFrame(streamStartedAt: number): void {
    const due = streamStartedAt + this.frames * FRAME_MS;
    this.mediaTimer = setTimeout(() => {
      if (this.isClosed) return;
      const frame = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
      frame.set(this.callerAudio.subarray(this.frames * FRAME_BYTES, (this.frames + 1) * FRAME_BYTES));
      this.frames += 1;
      this.sendSequenced("media", {
        media: { track: "inbound", chunk: String(this.frames), timestamp: String((this.frames - 1) * FRAME_MS), payload: base64(frame) },
      });
      this.scheduleFrame(streamStartedAt);
    }, Math.max(0, due - Date.now()));
  }

  /** Twilio ends a `<Connect><Stream>` when the call's TwiML is replaced: `stop`, then the socket closes. */
  private watchTwiml(streamTwiml: string): void {
    this.twimlTimer = setTimeout(async () => {
      if (this.isClosed) return;
      const { twiml } = await fakeTwilioCall(this.call.sid);
      if (this.isClosed) return;
      if (twiml !== streamTwiml) this.stop();
      else this.watchTwiml(streamTwiml);
    }, TWIML_CHECK_MS);
  }

  private onMessage(data: string): void {
    const message = { ...(JSON.parse(data) as Omit<ReceivedMessage, "at" | "callerFrames">), at: Date.now(), callerFrames: this.frames };
    this.received.push(message);
    if (message.event === "media" && message.media) {
      this.firstOutboundMediaAt ??= message.at;
      // μ-law at 8 kHz: 8 bytes per millisecond.
      this.playback.push({ kind: "audio", ms: atob(message.media.payload).length / 8 });
      this.play();
    } else if (message.event === "mark" && message.mark) {
      this.playback.push({ kind: "mark", name: message.mark.name });
      this.play();
    } else if (message.event === "clear") {
      this.clear();
    }
  }

  /** Plays the queue in order: each audio chunk for as long as it lasts; a mark comes back once the audio before it has played. */
  private play(): void {
    while (!this.playing && this.playback.length > 0) {
      const next = this.playback.shift()!;
      if (next.kind === "mark") {
        this.echoMark(next.name, false);
        continue;
      }
      const timer = setTimeout(() => {
        this.playedMs += next.ms;
        this.playing = null;
        this.play();
      }, next.ms);
      this.playing = { ms: next.ms, startedAt: Date.now(), timer };
    }
  }

  /** Twilio's `clear`: the unplayed audio is dropped and every pending mark comes back at once. */
  private clear(): void {
    this.playedMs = this.heardMs;
    this.clears.push(this.playedMs);
    if (this.playing) clearTimeout(this.playing.timer);
    this.playing = null;
    for (const item of this.playback.splice(0)) if (item.kind === "mark") this.echoMark(item.name, true);
  }

  private echoMark(name: string, cleared: boolean): void {
    this.marks.push({ name, heardMs: this.playedMs, cleared });
    this.sendSequenced("mark", { mark: { name } });
  }
}

/** The stream URL and `<Parameter>`s of `<Connect><Stream>` TwiML. */
function parseStreamTwiml(twiml: string): { url: string; parameters: Record<string, string> } {
  const url = /<Stream\b[^>]*\burl="([^"]*)"/.exec(twiml)?.[1];
  if (!url) throw new Error(`no <Stream url> in the call's TwiML: ${twiml}`);
  const parameters: Record<string, string> = {};
  for (const match of twiml.matchAll(/<Parameter\b[^>]*\bname="([^"]*)"[^>]*\bvalue="([^"]*)"/g)) {
    parameters[xmlUnescape(match[1] ?? "")] = xmlUnescape(match[2] ?? "");
  }
  return { url: xmlUnescape(url), parameters };
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const xmlUnescape = (text: string) => text.replace(/&(amp|lt|gt|quot|apos);/g, (_, name: string) => XML_ENTITIES[name] ?? "");

function hex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}
