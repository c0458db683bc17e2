import { z } from "zod";
import type { TurnRole } from "../call";
import type { EngineEvent, VoiceEngine } from "./engine";
import { CallerSpeechDetector } from "./speech-detector";

/**
 * The live call's audio path: Twilio's bidirectional Media Stream (a WebSocket Twilio opens to us)
 * on one side, a VoiceEngine on the other. Audio passes through untouched both ways — base64
 * G.711 μ-law 8 kHz is what both speak. The bridge also tracks what the caller has actually heard,
 * with Twilio marks, for barge-in (truncate to the heard audio) and for ending the call only once
 * the agent's last words have played. It knows no engine in particular and nothing of the call's lifecycle: what
 * matters to the call goes out through `MediaBridgeEvents`.
 *
 * An engine whose barge-in is `local` (engine.ts) never says that the caller talks over the agent
 * in time to cut it off, and its audio comes faster than real time. For it the bridge paces the
 * agent audio: at most `PACED_LEAD_MS` of it is ahead of playback at Twilio (by the bridge's own
 * clock: audio sent plays back to back from when it was sent), the rest waits here and is released
 * as playback moves on — on each caller frame (Twilio's 20 ms clock), with a timer should the frames
 * stop. When the caller starts speaking — heard on their frames (speech-detector.ts), or the
 * engine's `caller_started_speaking`, whichever comes first — the held audio is dropped and Twilio
 * cleared, so the caller hears at most the lead after they started.
 */

export interface MediaBridgeEvents {
  /** Checks the `<Parameter>`s of Twilio's `start`; a stream that fails is closed and ignored. */
  authorize(customParameters: Record<string, string>): boolean;
  /** Twilio's stream started and passed `authorize`: the callee is on the line. */
  streamStarted(): void;
  /** A final transcript of one turn. */
  turn(role: TurnRole, text: string): void;
  /** The agent's last words (see `finishAfterSpeech`) have played, or the wait for them ran out. */
  lastWordsPlayed(): void;
  /** Twilio's stream is over: its `stop`, or the socket closed. */
  streamEnded(): void;
}

/**
 * What passes on the line, for a listener beside the relay (the call's recorder). Called on the
 * relay's path, once per message: an implementation must return at once and never throw.
 */
export interface MediaTap {
  /** A frame of the caller's audio (base64 μ-law), in order; Twilio sends them without gaps, silence included. */
  callerAudio(payload: string): void;
  /** Agent audio sent to Twilio, which plays it after the agent audio sent before it. */
  agentAudio(payload: string): void;
  /** Twilio was told to drop the agent audio it has not played yet (barge-in). */
  agentCleared(): void;
}

/** Agent audio of a `local` barge-in engine waiting for its turn to be sent (see PACED_LEAD_MS). */
interface HeldAudio {
  payload: string;
  bytes: number;
  engine: VoiceEngine;
  itemId: string;
  contentIndex: number;
}

/** A mark sent after agent audio: when Twilio echoes it, the audio before it has played. */
interface PendingMark {
  sequence: number;
  engine: VoiceEngine;
  itemId: string;
  contentIndex: number;
  /** The item's audio sent up to this mark, in bytes (μ-law: 8 bytes a millisecond). */
  itemBytes: number;
}

/** The agent audio item being sent: how much of it went out, and how much of that a mark follows. */
interface SendingItem {
  engine: VoiceEngine;
  itemId: string;
  contentIndex: number;
  bytes: number;
  markedBytes: number;
}

const MULAW_BYTES_PER_MS = 8;
/** Twilio's caller frames: 20 ms each. */
const MULAW_FRAME_MS = 20;
/**
 * A mark goes after every 100 ms of agent audio and at the end of each item, not after every
 * delta: each mark is two more messages on the relay (ours and Twilio's echo), and 100 ms is finer
 * than anyone can tell where they stopped listening.
 */
const MARK_EVERY_BYTES = 100 * MULAW_BYTES_PER_MS;
/**
 * Paced agent audio ahead of playback at Twilio, at most: what the caller may still hear of the
 * agent after they start speaking (plus the detector's 40 ms), and enough to ride out 180 ms of
 * jitter in delivery.
 */
const PACED_LEAD_MS = 200;
/**
 * Paced audio goes out in pieces of at most 60 ms (480 bytes, 640 base64 characters: a multiple of
 * 4, so each piece is valid base64 on its own), so a long delta does not overshoot the lead.
 */
const PACED_PIECE_CHARS = 640;
/** How long, beyond the length of the audio itself, to wait for the last words to play before ending anyway. */
const LAST_WORDS_PLAYBACK_CAP_MS = 15_000;

// `start`, once a stream, is validated; `media` (50 a second, see `mediaPayload`) and `mark` (ten a second) are read by hand.
const StartMessageSchema = z.object({
  event: z.literal("start"),
  start: z.object({
    streamSid: z.string().min(1),
    callSid: z.string().min(1),
    customParameters: z.record(z.string(), z.string()).optional(),
  }),
});

const MEDIA_MESSAGE_START = '{"event":"media",';
const PAYLOAD_FIELD = '"payload":"';

/**
 * The caller audio of a Twilio `media` message, read from the fixed shape Twilio sends it in
 * (`{"event":"media",…,"media":{…,"payload":"<base64>"},…}`) without parsing the rest: the relay's
 * most frequent message need not become an object. Null for anything else (another event, another
 * spelling, an escaped payload), which is then parsed as JSON.
 */
export function mediaPayload(data: string): string | null {
  if (!data.startsWith(MEDIA_MESSAGE_START)) return null;
  const field = data.indexOf(PAYLOAD_FIELD, MEDIA_MESSAGE_START.length);
  if (field < 0) return null;
  const start = field + PAYLOAD_FIELD.length;
  const end = data.indexOf('"', start);
  if (end < 0) return null;
  const payload = data.slice(start, end);
  return payload.includes("\\") ? null : payload;
}

/** Bytes of audio in a base64 payload, without decoding it. */
export function base64ByteLength(payload: string): number {
  const padding = payload.endsWith("==") ? 2 : payload.endsWith("=") ? 1 : 0;
  return (payload.length / 4) * 3 - padding;
}

export class MediaBridge {
  private twilio: WebSocket | null = null;
  private streamSid: string | null = null;
  /** `{"event":"media","streamSid":"…","media":{"payload":` — built once per stream. */
  private mediaPrefix = "";
  private markPrefix = "";
  private clearMessage = "";
  private closed = false;

  /** Null while the engine connects (or reconnects): caller audio waits in `callerBacklog`. */
  private engine: VoiceEngine | null = null;
  private callerBacklog: string[] = [];
  /**
   * The next engine speaks first: Twilio's stream started before an engine was ready (the
   * greeting), or the engine was lost mid-response (the new one picks the conversation up).
   */
  private respondOnNextEngine = false;
  /** Agent audio of a response has been sent since its last `response_done`. */
  private responseActive = false;
  /** The engine (the latest one) relies on the bridge for barge-in: its audio is paced, the caller listened to. */
  private localBargeIn = false;
  private readonly speechDetector = new CallerSpeechDetector();
  /** Paced agent audio not sent yet, oldest first. */
  private held: HeldAudio[] = [];
  /** When the agent audio sent so far will have played at Twilio (Date.now() ms), by our clock. */
  private playbackEndsAtMs = 0;
  /** Sends held audio should no caller frame come to do it. */
  private paceTimer: ReturnType<typeof setTimeout> | null = null;

  private markSequence = 0;
  private pendingMarks: PendingMark[] = [];
  /** The item being sent; null between items. */
  private sending: SendingItem | null = null;
  /** The last mark Twilio echoed: audio up to there has played. */
  private played: PendingMark | null = null;
  /** Audio of an interrupted item still in flight from the engine is dropped. */
  private interruptedItemId: string | null = null;

  /**
   * Set once the agent's next words are its last: until `awaitingReply` is over (the reply to a
   * tool call or a `speak` has started), then until they are done and played, capped at `capAtMs`
   * (moved on by the length of the audio sent meanwhile).
   */
  private lastWords: { timer: ReturnType<typeof setTimeout>; capAtMs: number; awaitingReply: boolean } | null = null;

  /** Caller frames received: the silence watchdog checks that it moves. */
  callerFrames = 0;
  /** When the latest of `callerFrames` arrived (meaningless while there are none). */
  lastCallerFrameAtMs = 0;

  constructor(
    private readonly events: MediaBridgeEvents,
    private readonly tap: MediaTap | null = null,
  ) {}

  /** A Media Stream socket is attached (a call has one). */
  get hasStream(): boolean {
    return this.twilio !== null;
  }

  /** Twilio's stream has started and is still up: what the agent says now reaches the line. */
  get streaming(): boolean {
    return this.streamSid !== null && !this.closed;
  }

  /** Takes Twilio's Media Stream socket (already accepted); see `hasStream`. */
  attachTwilio(socket: WebSocket): void {
    this.twilio = socket;
    socket.addEventListener("message", (event) => this.onTwilioMessage(socket, event.data));
    socket.addEventListener("close", () => this.onTwilioGone(socket));
    socket.addEventListener("error", () => this.onTwilioGone(socket));
  }

  /** The engine is connected: greet if the caller is already there, then send the audio that waited. */
  useEngine(engine: VoiceEngine): void {
    if (this.closed) return;
    this.engine = engine;
    this.localBargeIn = engine.bargeIn === "local";
    if (this.respondOnNextEngine) engine.respond();
    this.respondOnNextEngine = false;
    for (const payload of this.callerBacklog) engine.appendCallerAudio(payload);
    this.callerBacklog = [];
  }

  /** The engine is gone: caller audio waits for the next one; a response it was giving is cut off. */
  engineLost(): void {
    this.engine = null;
    this.respondOnNextEngine ||= this.responseActive;
    this.responseActive = false;
    this.markSentAudio();
    this.sending = null;
    // Last words under way have all the audio they will get (a reply asked of this engine never comes).
    if (this.lastWords) this.lastWords.awaitingReply = false;
    this.finishIfLastWordsPlayed();
  }

  /** What the engine says about the conversation; its end ("closed") and tool calls are the driver's. */
  onEngineEvent(event: Exclude<EngineEvent, { type: "closed" | "tool_call" }>): void {
    if (this.closed) return;
    switch (event.type) {
      case "agent_audio":
        return this.sendAgentAudio(event.payload, event.itemId, event.contentIndex);
      case "agent_transcript":
        return this.events.turn("agent", event.text);
      case "caller_transcript":
        return this.events.turn("customer", event.text);
      case "caller_started_speaking":
        return this.interrupt();
      case "response_done":
        this.responseActive = false;
        // Held audio is marked once it is sent (see `pace`).
        if (this.held.length === 0) this.markSentAudio();
        return this.finishIfLastWordsPlayed();
    }
  }

  /**
   * The agent's next words are its last: `lastWordsPlayed` follows once they have played — those of
   * the response under way (a goodbye before end_call), or with `afterReply` those of the reply the
   * engine was asked for (to a tool call, or a `speak`). Only the first request counts.
   */
  finishAfterSpeech({ afterReply }: { afterReply: boolean }): void {
    if (this.closed || this.lastWords) return;
    const capAtMs = Date.now() + LAST_WORDS_PLAYBACK_CAP_MS;
    this.lastWords = { timer: setTimeout(() => this.onLastWordsCap(), LAST_WORDS_PLAYBACK_CAP_MS), capAtMs, awaitingReply: afterReply };
    this.finishIfLastWordsPlayed();
  }

  /** Ends the bridge: Twilio's socket is closed, nothing more is sent or reported. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.lastWords) clearTimeout(this.lastWords.timer);
    this.lastWords = null;
    this.engine = null;
    this.callerBacklog = [];
    this.held = [];
    if (this.paceTimer) clearTimeout(this.paceTimer);
    const socket = this.twilio;
    if (socket && socket.readyState === WebSocket.OPEN) socket.close(1000, "call ended");
  }

  private onTwilioMessage(socket: WebSocket, data: string | ArrayBuffer): void {
    if (this.closed || socket !== this.twilio || typeof data !== "string") return;
    const payload = mediaPayload(data);
    if (payload !== null) return this.onCallerAudio(payload);
    let message: { event?: unknown; media?: { payload?: unknown }; mark?: { name?: unknown } };
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message.event) {
      case "media": {
        const payload = message.media?.payload;
        if (typeof payload === "string") this.onCallerAudio(payload);
        return;
      }
      case "mark": {
        const name = message.mark?.name;
        if (typeof name === "string") this.onMarkPlayed(Number(name));
        return;
      }
      case "start":
        return this.onStart(socket, message);
      case "stop":
        if (this.streamSid !== null) this.endStream();
        return;
      // "connected" (first, before start) and "dtmf" carry nothing the call needs.
    }
  }

  private onCallerAudio(payload: string): void {
    if (this.streamSid === null) return;
    this.callerFrames += 1;
    this.lastCallerFrameAtMs = Date.now();
    if (this.engine) this.engine.appendCallerAudio(payload);
    else this.callerBacklog.push(payload);
    // After the relay: the frame reaches the model first.
    this.tap?.callerAudio(payload);
    if (this.localBargeIn) this.onCallerFrame(payload);
  }

  private onStart(socket: WebSocket, message: unknown): void {
    if (this.streamSid !== null) return;
    const parsed = StartMessageSchema.safeParse(message);
    if (!parsed.success || !this.events.authorize(parsed.data.start.customParameters ?? {})) {
      console.warn("[echo] refused a media stream whose start did not match the call");
      this.twilio = null;
      socket.close(1008, "stream not authorized");
      return;
    }
    const { streamSid } = parsed.data.start;
    this.streamSid = streamSid;
    const sid = JSON.stringify(streamSid);
    this.mediaPrefix = `{"event":"media","streamSid":${sid},"media":{"payload":`;
    this.markPrefix = `{"event":"mark","streamSid":${sid},"mark":{"name":"`;
    this.clearMessage = `{"event":"clear","streamSid":${sid}}`;
    // The greeting first: every moment before it is dead air for the callee.
    if (this.engine) this.engine.respond();
    else this.respondOnNextEngine = true;
    this.events.streamStarted();
  }

  private sendAgentAudio(payload: string, itemId: string, contentIndex: number): void {
    const engine = this.engine;
    if (!this.twilio || this.streamSid === null || !engine || itemId === this.interruptedItemId) return;
    this.responseActive = true;
    const bytes = base64ByteLength(payload);
    if (this.lastWords) {
      this.lastWords.awaitingReply = false;
      this.lastWords.capAtMs += bytes / MULAW_BYTES_PER_MS;
    }
    if (engine.bargeIn === "server-event") return this.transmit(payload, bytes, engine, itemId, contentIndex);
    for (let start = 0; start < payload.length; start += PACED_PIECE_CHARS) {
      const piece = payload.length <= PACED_PIECE_CHARS ? payload : payload.slice(start, start + PACED_PIECE_CHARS);
      this.held.push({ payload: piece, bytes: base64ByteLength(piece), engine, itemId, contentIndex });
    }
    this.pace();
  }

  /** Sends agent audio to Twilio (and the tap), with a mark every MARK_EVERY_BYTES. */
  private transmit(payload: string, bytes: number, engine: VoiceEngine, itemId: string, contentIndex: number): void {
    const socket = this.twilio;
    if (!socket) return;
    let sending = this.sending;
    if (!sending || sending.itemId !== itemId || sending.contentIndex !== contentIndex) {
      this.markSentAudio();
      sending = this.sending = { engine, itemId, contentIndex, bytes: 0, markedBytes: 0 };
    }
    sending.bytes += bytes;
    socket.send(`${this.mediaPrefix}${JSON.stringify(payload)}}}`);
    this.tap?.agentAudio(payload);
    if (sending.bytes - sending.markedBytes >= MARK_EVERY_BYTES) this.markSentAudio();
  }

  /** Sends held audio while Twilio has less than PACED_LEAD_MS of it ahead of playback. */
  private pace(): void {
    const now = Date.now();
    while (this.held.length > 0) {
      const next = this.held[0]!;
      const nextMs = next.bytes / MULAW_BYTES_PER_MS;
      const leadMs = this.playbackEndsAtMs - now;
      if (leadMs > 0 && leadMs + nextMs > PACED_LEAD_MS) break;
      this.held.shift();
      this.playbackEndsAtMs = Math.max(this.playbackEndsAtMs, now) + nextMs;
      this.transmit(next.payload, next.bytes, next.engine, next.itemId, next.contentIndex);
    }
    if (this.held.length === 0) {
      // All of a finished response is out: its last audio gets its mark now.
      if (!this.responseActive) this.markSentAudio();
      return;
    }
    // Caller frames normally release the rest; without them, go on when Twilio's queue runs dry.
    this.paceTimer ??= setTimeout(
      () => {
        this.paceTimer = null;
        if (!this.closed) this.pace();
      },
      Math.max(MULAW_FRAME_MS, this.playbackEndsAtMs - now),
    );
  }

  /** A caller frame, for a `local` barge-in engine: the clock of the paced audio, and the caller's voice. */
  private onCallerFrame(payload: string): void {
    const change = this.speechDetector.push(payload);
    if (change === "started") this.interrupt();
    // The agent's words after a false start (a cough, a bump) play again once the caller is quiet.
    else if (change === "stopped") this.interruptedItemId = null;
    if (this.held.length > 0) this.pace();
  }

  /** Sends a mark after the agent audio that has none yet, so that its playback is known. */
  private markSentAudio(): void {
    const sending = this.sending;
    if (!sending || sending.bytes === sending.markedBytes || !this.twilio) return;
    const sequence = ++this.markSequence;
    this.twilio.send(`${this.markPrefix}${sequence}"}}`);
    sending.markedBytes = sending.bytes;
    this.pendingMarks.push({ sequence, engine: sending.engine, itemId: sending.itemId, contentIndex: sending.contentIndex, itemBytes: sending.bytes });
  }

  /** Twilio plays marks in order: an echoed mark means all audio before it has played. */
  private onMarkPlayed(sequence: number): void {
    // Marks of audio dropped by `clear` come back too; they are no longer pending and mean nothing.
    while (this.pendingMarks.length > 0 && this.pendingMarks[0]!.sequence <= sequence) this.played = this.pendingMarks.shift()!;
    this.finishIfLastWordsPlayed();
  }

  /**
   * Cuts the agent off — the caller talks over it (barge-in), or a voicemail's beep sounded: drop
   * what Twilio has not played yet, and tell the engine how much of the item was heard — by the
   * marks Twilio echoed, so never more than was sent.
   */
  interrupt(): void {
    const sending = this.sending;
    // Paced audio not sent yet is dropped here, with the rest of its item still to come from the engine.
    const held = this.held.at(-1);
    this.held = [];
    this.playbackEndsAtMs = 0;
    // More of the item being sent may still be on its way from the engine, even if all sent has played.
    if (held) this.interruptedItemId = held.itemId;
    else if (sending) this.interruptedItemId = sending.itemId;
    // Audio sent after the last mark may still be playing too.
    const unplayed = this.pendingMarks[0] ?? (sending && sending.bytes > sending.markedBytes ? sending : null);
    if ((!unplayed && !held) || !this.twilio) return;
    this.twilio.send(this.clearMessage);
    this.tap?.agentCleared();
    if (!unplayed) return this.finishIfLastWordsPlayed();
    const played = this.played;
    const heardBytes = played && played.itemId === unplayed.itemId && played.contentIndex === unplayed.contentIndex ? played.itemBytes : 0;
    // An item of an engine lost since exists only as text in the current one.
    const engine = this.engine;
    if (engine && unplayed.engine === engine) engine.truncate(unplayed.itemId, unplayed.contentIndex, Math.floor(heardBytes / MULAW_BYTES_PER_MS));
    this.pendingMarks = [];
    this.sending = null;
    this.finishIfLastWordsPlayed();
  }

  private finishIfLastWordsPlayed(): void {
    const lastWords = this.lastWords;
    if (lastWords && !lastWords.awaitingReply && !this.responseActive && this.held.length === 0 && this.pendingMarks.length === 0) this.lastWordsPlayed();
  }

  /** The cap, unless the audio sent since it was set moved it on. */
  private onLastWordsCap(): void {
    const lastWords = this.lastWords;
    if (!lastWords) return;
    const leftMs = lastWords.capAtMs - Date.now();
    if (leftMs > 0) lastWords.timer = setTimeout(() => this.onLastWordsCap(), leftMs);
    else this.lastWordsPlayed();
  }

  private lastWordsPlayed(): void {
    if (!this.lastWords) return;
    clearTimeout(this.lastWords.timer);
    this.lastWords = null;
    this.events.lastWordsPlayed();
  }

  private onTwilioGone(socket: WebSocket): void {
    if (socket !== this.twilio || this.closed) return;
    // A socket that closed before its stream started leaves nothing behind.
    if (this.streamSid === null) this.twilio = null;
    else this.endStream();
  }

  private endStream(): void {
    this.close();
    this.events.streamEnded();
  }
}
