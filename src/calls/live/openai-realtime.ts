import type {
  RealtimeClientEvent,
  RealtimeConversationItemAssistantMessage,
  RealtimeConversationItemUserMessage,
  RealtimeFunctionTool,
  RealtimeSessionCreateRequest,
} from "openai/resources/realtime/realtime";
import { z } from "zod";
import type { OpenAIConfig } from "../../env";
import { openSocket, parseEvent, parseFrame } from "./openai-socket";
import type { EngineEvent, EngineSessionConfig, EngineUsage, VoiceEngine } from "./engine";
import { NO_ENGINE_USAGE } from "../usage";
import { CALL_TOOL_DESCRIPTIONS, isCallToolName, type CallToolName } from "./tools";

/**
 * The OpenAI Realtime API (GA interface) as a VoiceEngine, over one WebSocket per call: μ-law in
 * and out (`audio/pcmu`, what Twilio carries, so nothing is transcoded), server VAD that interrupts
 * the model when the caller speaks and answers when they stop, transcription of the caller, and the
 * call's tools as functions. The OpenAI SDK's Realtime types check the shape of every event we send.
 */

/** How long opening the socket and the model's acceptance of the configuration may take in all. */
const CONNECT_TIMEOUT_MS = 10_000;

/** A call tool as a Realtime function; none takes arguments. */
function functionTool(name: CallToolName): RealtimeFunctionTool {
  return { type: "function", name, description: CALL_TOOL_DESCRIPTIONS[name], parameters: { type: "object", properties: {}, additionalProperties: false } };
}

export function createOpenAIRealtimeEngine(config: OpenAIConfig & { apiKey: string }, options: { connectTimeoutMs?: number } = {}): VoiceEngine {
  return new OpenAIRealtimeEngine(config, options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
}

// The control events we act on, validated at the edge. Audio deltas are checked by hand instead:
// they are most of the traffic.
const errorEventSchema = z.object({
  error: z.object({ message: z.string(), type: z.string().optional(), code: z.string().nullish(), event_id: z.string().nullish() }),
});
const transcriptEventSchema = z.object({ item_id: z.string(), transcript: z.string() });
const responseDoneSchema = z.object({
  response: z.object({
    output: z.array(z.object({ type: z.string(), name: z.string().optional(), call_id: z.string().optional(), status: z.string().optional() })).optional(),
    usage: z
      .object({
        input_token_details: z
          .object({
            text_tokens: z.number().optional(),
            audio_tokens: z.number().optional(),
            cached_tokens_details: z.object({ text_tokens: z.number().optional(), audio_tokens: z.number().optional() }).optional(),
          })
          .optional(),
        output_token_details: z.object({ text_tokens: z.number().optional(), audio_tokens: z.number().optional() }).optional(),
      })
      .nullish(),
  }),
});

type State = "new" | "connecting" | "open" | "closed";

class OpenAIRealtimeEngine implements VoiceEngine {
  /** Server VAD interrupts the model and says so (`input_audio_buffer.speech_started`). */
  readonly bargeIn = "server-event";
  private state: State = "new";
  private socket: WebSocket | null = null;
  /** Stops a connect under way: on the timeout, or when the engine is closed first. */
  private readonly connectAbort = new AbortController();
  /** Messages asked for before the socket opened, sent right after the configuration. */
  private outbox: string[] = [];
  private onEvent: (event: EngineEvent) => void = () => {};
  /** Settles `connect` once the model accepted (or refused) the configuration. */
  private configured: { resolve: () => void; reject: (error: Error) => void } | null = null;
  /** Between response.created and response.done, whoever asked for the response (us or the VAD). */
  private responseActive = false;
  /** Our response.create is on its way: its response.created has not come yet. */
  private responseRequested = false;
  private respondWhenDone = false;
  private lastResponseCreateId: string | null = null;
  private clientEventCount = 0;
  private lastError: string | null = null;
  /** The tools declared in this session: a call of any other is not the model's to make. */
  private tools: ReadonlySet<CallToolName> = new Set();
  private readonly usage: EngineUsage = { ...NO_ENGINE_USAGE };

  constructor(
    private readonly config: OpenAIConfig & { apiKey: string },
    private readonly connectTimeoutMs: number,
  ) {}

  async connect(session: EngineSessionConfig, onEvent: (event: EngineEvent) => void): Promise<void> {
    if (this.state !== "new") throw new Error("An OpenAI Realtime engine connects once; create a new one to reconnect");
    this.state = "connecting";
    this.onEvent = onEvent;
    this.tools = new Set(session.tools);
    const timer = setTimeout(
      () => this.connectAbort.abort(new Error(`OpenAI Realtime did not accept the session within ${this.connectTimeoutMs} ms`)),
      this.connectTimeoutMs,
    );
    try {
      await this.open(session);
      this.state = "open";
    } catch (error) {
      this.abandon();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  respond(): void {
    if (this.responseActive || this.responseRequested) {
      this.respondWhenDone = true;
      return;
    }
    this.responseRequested = true;
    this.lastResponseCreateId = this.nextEventId();
    this.send({ type: "response.create", event_id: this.lastResponseCreateId });
  }

  speak(text: string): void {
    // The response under way is cut off (its response.done still comes); one only asked for runs first.
    if (this.responseActive) this.send({ type: "response.cancel" });
    this.send({
      type: "conversation.item.create",
      item: { type: "message", role: "system", content: [{ type: "input_text", text: `Say exactly this, word for word, and nothing else: "${text}"` }] },
    });
    this.respond();
  }

  appendCallerAudio(payload: string): void {
    // Hot path (50 frames a second): the payload is passed through as it came, only JSON-quoted.
    this.sendRaw(`{"type":"input_audio_buffer.append","audio":${JSON.stringify(payload)}}`);
  }

  truncate(itemId: string, contentIndex: number, audioEndMs: number): void {
    this.send({ type: "conversation.item.truncate", item_id: itemId, content_index: contentIndex, audio_end_ms: Math.max(0, Math.floor(audioEndMs)) });
  }

  completeToolCall(toolCallId: string, output: string): void {
    this.send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: toolCallId, output } });
  }

  close(): void {
    switch (this.state) {
      case "new":
        this.state = "closed";
        return;
      case "connecting":
        this.connectAbort.abort(new Error("The engine was closed before the session was configured"));
        return;
      case "open":
        this.socket?.close(1000, "call ended");
        this.finish(null);
        return;
    }
  }

  private async open(session: EngineSessionConfig): Promise<void> {
    const signal = this.connectAbort.signal;
    const url = `${this.config.baseUrl}/realtime?model=${encodeURIComponent(this.config.realtimeModel)}`;
    const socket = await openSocket("OpenAI Realtime", url, this.config.apiKey, signal, {
      onMessage: (data) => this.onMessage(data),
      onGone: (detail) => this.onSocketGone(detail),
    });
    this.socket = socket;
    signal.throwIfAborted();
    const configured = new Promise<void>((resolve, reject) => {
      this.configured = { resolve, reject };
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    socket.send(JSON.stringify(this.sessionUpdate(session)));
    for (const turn of session.history) socket.send(JSON.stringify(historyItem(turn)));
    for (const message of this.outbox) socket.send(message);
    this.outbox = [];
    await configured;
  }

  private sessionUpdate(session: EngineSessionConfig): RealtimeClientEvent {
    const transcriptionLanguage = isoLanguage(session.language);
    const realtimeSession: RealtimeSessionCreateRequest = {
      type: "realtime",
      output_modalities: ["audio"],
      instructions: session.instructions,
      audio: {
        input: {
          format: { type: "audio/pcmu" },
          transcription: { model: this.config.transcriptionModel, ...(transcriptionLanguage ? { language: transcriptionLanguage } : {}) },
          turn_detection: { type: "server_vad", create_response: true, interrupt_response: true },
        },
        output: { format: { type: "audio/pcmu" }, ...(session.voice ? { voice: session.voice } : {}) },
      },
      tools: session.tools.map(functionTool),
      tool_choice: "auto",
    };
    return { type: "session.update", session: realtimeSession };
  }

  private onMessage(data: string | ArrayBuffer): void {
    const event = parseFrame("openai-realtime", data);
    if (!event) return;
    if (event.type === "response.output_audio.delta") {
      const { delta, item_id: itemId, content_index: contentIndex } = event;
      if (typeof delta === "string" && typeof itemId === "string" && typeof contentIndex === "number") {
        this.onEvent({ type: "agent_audio", payload: delta, itemId, contentIndex });
      }
      return;
    }
    this.onControlEvent(event);
  }

  private onControlEvent(event: Record<string, unknown>): void {
    switch (event.type) {
      case "session.updated":
        this.configured?.resolve();
        this.configured = null;
        return;
      case "error":
        return this.onError(event);
      case "response.created":
        this.responseActive = true;
        this.responseRequested = false;
        return;
      case "response.done":
        return this.onResponseDone(event);
      case "input_audio_buffer.speech_started":
        return this.onEvent({ type: "caller_started_speaking" });
      case "response.output_audio_transcript.done": {
        const parsed = parseEvent("openai-realtime", transcriptEventSchema, event);
        if (parsed) this.onEvent({ type: "agent_transcript", itemId: parsed.item_id, text: parsed.transcript });
        return;
      }
      case "conversation.item.input_audio_transcription.completed": {
        const parsed = parseEvent("openai-realtime", transcriptEventSchema, event);
        if (parsed) this.onEvent({ type: "caller_transcript", itemId: parsed.item_id, text: parsed.transcript });
        return;
      }
    }
  }

  private onError(event: Record<string, unknown>): void {
    const parsed = parseEvent("openai-realtime", errorEventSchema, event);
    const error = parsed?.error ?? { message: "an error event without details", code: null, event_id: null };
    this.lastError = error.code ? `${error.code}: ${error.message}` : error.message;
    if (this.configured) {
      this.configured.reject(new Error(`OpenAI Realtime refused the session: ${this.lastError}`));
      this.configured = null;
      return;
    }
    if (error.event_id && error.event_id === this.lastResponseCreateId) {
      // Our response.create lost a race with a response the server started by itself (VAD): ask
      // again once that one is done. Refused for any other reason, no response is coming of it.
      this.responseRequested = false;
      if (error.code === "conversation_already_has_active_response") this.respondWhenDone = true;
      console.warn(`[openai-realtime] response.create refused: ${this.lastError}`);
      return;
    }
    // Most errors leave the session usable (e.g. a truncate that came too late): note and go on.
    console.warn(`[openai-realtime] ${this.lastError}`);
  }

  private onResponseDone(event: Record<string, unknown>): void {
    const parsed = parseEvent("openai-realtime", responseDoneSchema, event);
    const usage = parsed?.response.usage;
    this.usage.inputTextTokens += usage?.input_token_details?.text_tokens ?? 0;
    this.usage.inputAudioTokens += usage?.input_token_details?.audio_tokens ?? 0;
    this.usage.cachedInputTextTokens += usage?.input_token_details?.cached_tokens_details?.text_tokens ?? 0;
    this.usage.cachedInputAudioTokens += usage?.input_token_details?.cached_tokens_details?.audio_tokens ?? 0;
    this.usage.outputTextTokens += usage?.output_token_details?.text_tokens ?? 0;
    this.usage.outputAudioTokens += usage?.output_token_details?.audio_tokens ?? 0;
    for (const item of parsed?.response.output ?? []) {
      if (item.type !== "function_call" || !item.call_id || item.status === "incomplete" || item.status === "in_progress") continue;
      const name = item.name ?? "";
      if (!isCallToolName(name) || !this.tools.has(name)) {
        console.warn(`[openai-realtime] ignored a call of the undeclared tool ${JSON.stringify(name)}`);
        continue;
      }
      this.onEvent({ type: "tool_call", name, toolCallId: item.call_id });
    }
    this.responseActive = false;
    this.onEvent({ type: "response_done" });
    if (this.respondWhenDone) {
      this.respondWhenDone = false;
      this.respond();
    }
  }

  private onSocketGone(detail: string): void {
    if (this.state === "closed") return;
    const error = `OpenAI Realtime session ended unexpectedly (${detail})${this.lastError ? `; last error: ${this.lastError}` : ""}`;
    if (this.configured) {
      this.configured.reject(new Error(error));
      this.configured = null;
      return;
    }
    this.finish(error);
  }

  private finish(error: string | null): void {
    this.state = "closed";
    this.socket = null;
    this.onEvent({ type: "closed", error, usage: { ...this.usage } });
  }

  /** Tears down a session that never connected: no events, nothing more is sent. */
  private abandon(): void {
    this.state = "closed";
    this.configured = null;
    this.outbox = [];
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.close(1000, "connect failed");
    this.socket = null;
  }

  private send(event: RealtimeClientEvent): void {
    this.sendRaw(JSON.stringify(event));
  }

  private sendRaw(message: string): void {
    if (this.socket) this.socket.send(message);
    else if (this.state === "new" || this.state === "connecting") this.outbox.push(message);
  }

  private nextEventId(): string {
    this.clientEventCount += 1;
    return `event_echo_${this.clientEventCount}`;
  }
}

/** A restored turn: the agent's as assistant text (`output_text`), the caller's as user text. */
function historyItem(turn: EngineSessionConfig["history"][number]): RealtimeClientEvent {
  const item: RealtimeConversationItemAssistantMessage | RealtimeConversationItemUserMessage =
    turn.role === "agent"
      ? { type: "message", role: "assistant", content: [{ type: "output_text", text: turn.text }] }
      : { type: "message", role: "user", content: [{ type: "input_text", text: turn.text }] };
  return { type: "conversation.item.create", item };
}

/** The transcription model wants ISO-639-1 ("en"); agents may say "en-US". */
function isoLanguage(language: string | null): string | null {
  const primary = language?.trim().split(/[-_]/)[0]?.toLowerCase();
  return primary && /^[a-z]{2}$/.test(primary) ? primary : null;
}
