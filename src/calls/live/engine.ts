import type { CallToolName } from "./tools";

/**
 * The speech-to-speech model behind a live call, seen from the bridge. The bridge (Twilio media ⇄
 * model) speaks only this interface, so another engine (OpenAI GPT-Live next) plugs in without
 * touching it. Audio is G.711 μ-law 8 kHz, base64, both ways: what the phone line carries, passed
 * through untouched. Playback tracking (Twilio marks) stays in the bridge: every engine needs it.
 */

/**
 * How the bridge learns that the caller talks over the agent. `server-event`: the engine says so
 * (`caller_started_speaking`, the model has stopped) and `truncate` tells it what was heard.
 * `local`: the model handles barge-in itself and says nothing in time (GPT-Live), so the bridge
 * holds the agent audio back to a small lead over real time and listens to the caller's frames
 * itself, to drop what Twilio has not played yet the moment the caller starts.
 */
export type BargeInSignal = "server-event" | "local";

export interface EngineSessionConfig {
  /** The rendered prompt. */
  instructions: string;
  /** agent.voice, or null for the engine's default voice. */
  voice: string | null;
  /** agent.language (e.g. "en" or "en-US"), a hint for transcribing the caller; null: detect. */
  language: string | null;
  /** Earlier turns to restore after a reconnect (text only), oldest first; empty for a new call. */
  history: { role: "agent" | "customer"; text: string }[];
  /** The tools the model may call (see tools.ts). */
  tools: CallToolName[];
}

export type EngineEvent =
  /** A chunk of the agent's speech: base64 G.711 μ-law 8 kHz, passed through untouched. */
  | { type: "agent_audio"; payload: string; itemId: string; contentIndex: number }
  /** The final text of one agent turn. */
  | { type: "agent_transcript"; itemId: string; text: string }
  /** The final text of one caller turn. */
  | { type: "caller_transcript"; itemId: string; text: string }
  /**
   * The caller began to speak: barge-in. A `server-event` engine has already stopped generating; a
   * `local` one reports the first words of the caller's turn it was told of (its transcript).
   */
  | { type: "caller_started_speaking" }
  /** The model finished a response (completed or interrupted): no more audio of it will come. */
  | { type: "response_done" }
  /**
   * The model called one of the session's tools. Arrives after its response's audio and before
   * that response's `response_done`; answer it with `completeToolCall`.
   */
  | { type: "tool_call"; name: CallToolName; toolCallId: string }
  /** The session is over, exactly once after a successful connect; error: it ended unasked. */
  | { type: "closed"; error: string | null; usage: EngineUsage };

/**
 * What the model billed for the session, from the engine's own counters, summed: seconds for an
 * engine billed by session time (GPT-Live), tokens by kind for one billed per response (Realtime;
 * GPT-Live's delegated tool calls bill text tokens). Input counts include the cached ones.
 */
export interface EngineUsage {
  sessionSeconds: number;
  inputTextTokens: number;
  inputAudioTokens: number;
  /** Of the input tokens of each kind, those read from the cache (billed at its cached rate). */
  cachedInputTextTokens: number;
  cachedInputAudioTokens: number;
  outputTextTokens: number;
  outputAudioTokens: number;
}

/**
 * One model session. An engine connects once; to reconnect after a drop, create a new engine and
 * pass the conversation so far as `history`. Calls made before `connect` resolves are queued and
 * sent, in order, once the socket is open, so no caller audio is lost while the session starts.
 */
export interface VoiceEngine {
  readonly bargeIn: BargeInSignal;
  /**
   * Opens and configures the session; resolves when the model accepted the configuration, rejects
   * (with nothing emitted) when it cannot be had: refused, an error answer, or a timeout.
   */
  connect(config: EngineSessionConfig, onEvent: (event: EngineEvent) => void): Promise<void>;
  /**
   * Asks the model to speak (the opening, or after a tool result). Never overlaps a response: asked
   * while one is active, the request waits until that one is done.
   */
  respond(): void;
  /**
   * Has the agent say `text` word for word, in its own voice, as its next response; whatever it is
   * saying now is cut off (that response ends with its `response_done`).
   */
  speak(text: string): void;
  /** Base64 μ-law from the caller, sent untouched. */
  appendCallerAudio(payload: string): void;
  /** The caller heard only `audioEndMs` of this item: forget the rest. */
  truncate(itemId: string, contentIndex: number, audioEndMs: number): void;
  /** Acknowledge a tool call (so the conversation stays well-formed); does not ask for a response. */
  completeToolCall(toolCallId: string, output: string): void;
  /** Ends the session; `closed` follows (error null) unless it was already over. */
  close(): void;
}
