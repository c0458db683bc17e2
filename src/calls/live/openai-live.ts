import type { ClientEvent, FunctionTool, InitialItem, SessionConfig } from "openai/resources/live/live";
import { z } from "zod";
import type { OpenAIConfig } from "../../env";
import { openSocket, parseEvent, parseFrame } from "./openai-socket";
import type { EngineEvent, EngineSessionConfig, EngineUsage, VoiceEngine } from "./engine";
import { CALL_TOOL_DESCRIPTIONS, isCallToolName, type CallToolName } from "./tools";

/**
 * OpenAI GPT-Live as a VoiceEngine, over one WebSocket per call (`${baseUrl}/live/sessions`):
 * μ-law 8 kHz both ways (`audio/pcmu`, what Twilio carries), instructions, voice and the
 * conversation so far fixed by `session.start`, and the call's tools on a Responses backend the
 * model delegates to. The model is full duplex and decides itself when to listen and when to
 * speak: there is no turn detection to configure, no speech-started event, no response.done and no
 * truncate. So this engine
 * - asks for speech with `session.instructions.append` (the greeting, a message to say word for
 *   word);
 * - makes turns out of the transcript fragments (see `TURN_GAP_MS`), and from them the `response_done`
 *   the bridge waits on before the last words;
 * - reports barge-in as `local` (the bridge listens to the caller itself) and, as a second signal,
 *   the caller's first transcribed words as `caller_started_speaking`.
 * The OpenAI SDK's Live types check the shape of every event we send.
 */

/** How long opening the socket and `session.started` may take in all. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long `close` waits for `session.closed` (the final usage) before closing the socket anyway. */
const CLOSE_TIMEOUT_MS = 5_000;
/**
 * A turn ends when the other side starts (the caller's first transcribed words end the agent's
 * turn, the agent's first output ends the caller's), when the model delegates a tool call or is
 * told what to say next, or after this long without a fragment of it: GPT-Live sends neither a
 * transcript-done nor a response-done event. The model's output arrives faster than real time, so
 * a pause this long in it is the end of what it meant to say, not a breath.
 */
const TURN_GAP_MS = 800;
/** The session's `input` holds at most this many messages: the most recent turns are kept. */
const MAX_INPUT_MESSAGES = 128;

/** What the model is told to do when asked to speak (each well under the 500-token limit). */
const PROMPTS = {
  greet: "The person has just answered the phone. Speak now: open the call as your instructions say.",
  resume: "The line dropped for a moment and is back. Carry on the conversation from where it stopped, without greeting the person again.",
  carryOn: "Speak now: carry on the conversation.",
  sayExactly: (text: string) => `Say exactly this, word for word, and nothing else: "${text}"`,
};

/** What the delegated Responses model is for: it only ever calls the call's tools. */
const DELEGATION_INSTRUCTIONS =
  "You act for a voice agent on a phone call. When it hands you a task, call the one matching tool at once and reply in a few words with the outcome.";

/** A call tool as a delegated Responses function; none takes arguments. */
function functionTool(name: CallToolName): FunctionTool {
  return { type: "function", name, description: CALL_TOOL_DESCRIPTIONS[name], parameters: { type: "object", properties: {}, additionalProperties: false }, strict: true };
}

/** A restored turn as a message of the session's `input`: the agent's as assistant output text. */
function historyItem(turn: EngineSessionConfig["history"][number]): InitialItem {
  return turn.role === "agent"
    ? { type: "message", role: "assistant", content: [{ type: "output_text", text: turn.text }] }
    : { type: "message", role: "user", content: [{ type: "input_text", text: turn.text }] };
}

export function createOpenAILiveEngine(config: OpenAIConfig & { apiKey: string }, options: { connectTimeoutMs?: number; closeTimeoutMs?: number } = {}): VoiceEngine {
  return new OpenAILiveEngine(config, options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS, options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS);
}

// The control events we act on, validated at the edge. Audio deltas are read by hand: they are
// most of the traffic.
const errorEventSchema = z.object({ error: z.object({ message: z.string(), type: z.string().optional(), code: z.string().nullish(), client_event_id: z.string().nullish() }) });
const transcriptDeltaSchema = z.object({ delta: z.string(), start_ms: z.number(), end_ms: z.number() });
const usageSchema = z.object({ seconds: z.number().nonnegative() });
const usageUpdatedSchema = z.object({ usage: usageSchema });
const sessionClosedSchema = z.object({ reason: z.string(), usage: usageSchema.optional() });
const responseEventSchema = z.object({ delegation_id: z.string().nullish(), event: z.looseObject({ type: z.string() }) });
const outputItemDoneSchema = z.object({ item: z.object({ type: z.string(), call_id: z.string().optional(), name: z.string().optional(), status: z.string().optional() }) });
const responseUsageSchema = z.object({
  response: z.object({
    usage: z
      .object({ input_tokens: z.number(), output_tokens: z.number(), input_tokens_details: z.object({ cached_tokens: z.number() }).partial().nullish() })
      .nullish(),
  }),
});

type State = "new" | "connecting" | "open" | "closing" | "closed";

/**
 * One side's turn being put together from transcript fragments (and, for the agent, its audio),
 * ended by `onGap` once TURN_GAP_MS pass without one. A fragment only notes the time: the timer is
 * set again when it fires, not on every fragment — the agent's come with each audio delta.
 */
class OpenTurn {
  text = "";
  private lastFragmentAtMs = Date.now();
  private timer: ReturnType<typeof setTimeout>;

  constructor(
    /** The turn's id in the engine's events (GPT-Live has no item ids). */
    readonly itemId: string,
    private readonly onGap: () => void,
  ) {
    this.timer = setTimeout(() => this.checkGap(), TURN_GAP_MS);
  }

  fragment(): void {
    this.lastFragmentAtMs = Date.now();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private checkGap(): void {
    const leftMs = this.lastFragmentAtMs + TURN_GAP_MS - Date.now();
    if (leftMs > 0) this.timer = setTimeout(() => this.checkGap(), leftMs);
    else this.onGap();
  }
}

class OpenAILiveEngine implements VoiceEngine {
  readonly bargeIn = "local";
  private state: State = "new";
  private socket: WebSocket | null = null;
  private readonly connectAbort = new AbortController();
  /** Commands asked for before `session.started` (the protocol takes none earlier), sent right after it. */
  private outbox: string[] = [];
  private onEvent: (event: EngineEvent) => void = () => {};
  private started: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private lastError: string | null = null;
  private tools: ReadonlySet<CallToolName> = new Set();
  /** The session restores an earlier conversation: asked to speak first, it resumes rather than greets. */
  private resuming = false;
  private spokeFirst = false;
  /** A tool's output was handed back with `response.create`: the model relays the result by itself. */
  private toolOutputSent = false;
  /**
   * The event_id of a `speak` instruction not acknowledged yet: output before its
   * `session.instructions.appended` was generated before the model read it (events come in order),
   * so it is the cut-off speech, not the message, and is dropped.
   */
  private speakPending: string | null = null;
  private clientEventCount = 0;

  /** The agent's turn: its audio goes out as one item, its transcript as one `agent_transcript`. */
  private agentTurn: OpenTurn | null = null;
  private callerTurn: OpenTurn | null = null;
  /**
   * The caller's turn that the first audio of the agent's reply ended, reported once that audio is
   * out: the report stores a turn, and storing it in the same tick would hold the frame back.
   * Any other event reports it first (see `connect`; the session's end always reports `closed`), so
   * the order stays as spoken.
   */
  private endedCallerTurn: { turn: OpenTurn; timer: ReturnType<typeof setTimeout> } | null = null;
  private agentTurns = 0;
  private readonly sessionTag = crypto.randomUUID().slice(0, 8);
  private readonly usage: EngineUsage = { sessionSeconds: 0, inputTextTokens: 0, inputAudioTokens: 0, cachedInputTextTokens: 0, cachedInputAudioTokens: 0, outputTextTokens: 0, outputAudioTokens: 0 };

  constructor(
    private readonly config: OpenAIConfig & { apiKey: string },
    private readonly connectTimeoutMs: number,
    private readonly closeTimeoutMs: number,
  ) {}

  async connect(session: EngineSessionConfig, onEvent: (event: EngineEvent) => void): Promise<void> {
    if (this.state !== "new") throw new Error("A GPT-Live engine connects once; create a new one to reconnect");
    this.state = "connecting";
    // Whatever is reported after a caller's turn ended by the agent's audio comes after that turn.
    this.onEvent = (event) => {
      if (event.type !== "agent_audio") this.reportEndedCallerTurn();
      onEvent(event);
    };
    this.tools = new Set(session.tools);
    this.resuming = session.history.length > 0;
    const timer = setTimeout(() => this.connectAbort.abort(new Error(`GPT-Live did not start the session within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
    try {
      await this.open(session);
      this.state = "open";
      for (const message of this.outbox) this.socket?.send(message);
      this.outbox = [];
    } catch (error) {
      this.abandon();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  respond(): void {
    if (!this.spokeFirst) {
      this.spokeFirst = true;
      return this.appendInstructions(this.resuming ? PROMPTS.resume : PROMPTS.greet);
    }
    // After a tool result the delegated response continues and the model relays it: asking again
    // would make it speak twice.
    if (this.toolOutputSent) {
      this.toolOutputSent = false;
      return;
    }
    this.appendInstructions(PROMPTS.carryOn);
  }

  speak(text: string): void {
    // What the agent says next is the message: it is a turn of its own.
    this.endAgentTurn();
    this.spokeFirst = true;
    this.clientEventCount += 1;
    this.speakPending = `echo_speak_${this.clientEventCount}`;
    this.send({ type: "session.instructions.append", content: PROMPTS.sayExactly(text), delegation_id: null, event_id: this.speakPending });
  }

  appendCallerAudio(payload: string): void {
    // Hot path (50 frames a second): the payload is passed through as it came, only JSON-quoted.
    this.sendRaw(`{"type":"session.input_audio.append","audio":${JSON.stringify(payload)}}`);
  }

  /** Nothing to do: GPT-Live handles barge-in itself and is never told what was played. */
  truncate(): void {}

  completeToolCall(toolCallId: string, output: string): void {
    // The delegated response waits for the result: the output, then `response.create` to go on.
    this.send({ type: "response.item.create", item: { type: "function_call_output", call_id: toolCallId, output } });
    this.send({ type: "response.create" });
    this.toolOutputSent = true;
  }

  close(): void {
    switch (this.state) {
      case "new":
        this.state = "closed";
        return;
      case "connecting":
        this.connectAbort.abort(new Error("The engine was closed before the session started"));
        return;
      case "open":
        // The final usage comes with session.closed: wait for it, a bounded time.
        this.send({ type: "session.close" });
        this.state = "closing";
        this.closeTimer = setTimeout(() => this.finish(null), this.closeTimeoutMs);
        return;
    }
  }

  private async open(session: EngineSessionConfig): Promise<void> {
    const signal = this.connectAbort.signal;
    const socket = await openSocket("GPT-Live", `${this.config.baseUrl}/live/sessions`, this.config.apiKey, signal, {
      onMessage: (data) => this.onMessage(data),
      onGone: (detail) => this.onSocketGone(detail),
    });
    this.socket = socket;
    signal.throwIfAborted();
    const started = new Promise<void>((resolve, reject) => {
      this.started = { resolve, reject };
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    socket.send(JSON.stringify({ type: "session.start", session: this.sessionConfig(session) } satisfies ClientEvent));
    await started;
  }

  private sessionConfig(session: EngineSessionConfig): SessionConfig {
    const input = session.history.slice(-MAX_INPUT_MESSAGES).map(historyItem);
    return {
      model: this.config.liveModel,
      instructions: session.instructions,
      // One format for both directions, fixed for the session.
      audio: { format: { type: "audio/pcmu", rate: 8000 }, ...(session.voice ? { output: { voice: session.voice } } : {}) },
      ...(input.length > 0 ? { input } : {}),
      delegation: { type: "responses", responses: { model: this.config.delegationModel, instructions: DELEGATION_INSTRUCTIONS, tools: session.tools.map(functionTool) } },
    };
  }

  private onMessage(data: string | ArrayBuffer): void {
    const event = parseFrame("openai-live", data);
    if (!event) return;
    if (event.type === "session.output_audio.delta") {
      if (typeof event.delta === "string" && this.state === "open" && this.speakPending === null) this.onEvent({ type: "agent_audio", payload: event.delta, itemId: this.openAgentTurn().itemId, contentIndex: 0 });
      return;
    }
    this.onControlEvent(event);
  }

  private onControlEvent(event: Record<string, unknown>): void {
    switch (event.type) {
      case "session.started":
        this.started?.resolve();
        this.started = null;
        return;
      case "error":
        return this.onError(event);
      case "session.instructions.appended":
        if (event.client_event_id === this.speakPending) this.speakPending = null;
        return;
      case "session.output_transcript.delta": {
        const parsed = parseEvent("openai-live", transcriptDeltaSchema, event);
        if (parsed && this.state === "open" && this.speakPending === null) this.openAgentTurn().text += parsed.delta;
        return;
      }
      case "session.input_transcript.delta": {
        const parsed = parseEvent("openai-live", transcriptDeltaSchema, event);
        if (parsed && this.state === "open") this.onCallerWords(parsed.delta);
        return;
      }
      case "response.event":
        return this.onResponseEvent(event);
      case "session.usage.updated": {
        const parsed = parseEvent("openai-live", usageUpdatedSchema, event);
        // Cumulative totals: the latest is the session's so far.
        if (parsed) this.usage.sessionSeconds = Math.max(this.usage.sessionSeconds, parsed.usage.seconds);
        return;
      }
      case "session.closed":
        return this.onSessionClosed(event);
    }
  }

  /** The agent's turn under way, or a new one: the model started speaking, so the caller's turn is over. */
  private openAgentTurn(): OpenTurn {
    const callerTurn = this.callerTurn;
    if (callerTurn) {
      callerTurn.stop();
      this.callerTurn = null;
      this.endedCallerTurn = { turn: callerTurn, timer: setTimeout(() => this.reportEndedCallerTurn(), 0) };
    }
    if (this.agentTurn) {
      this.agentTurn.fragment();
      return this.agentTurn;
    }
    this.agentTurns += 1;
    return (this.agentTurn = new OpenTurn(`live_${this.sessionTag}_${this.agentTurns}`, () => this.endAgentTurn()));
  }

  private endAgentTurn(): void {
    const turn = this.agentTurn;
    if (!turn) return;
    turn.stop();
    this.agentTurn = null;
    const text = turn.text.trim();
    if (text) this.onEvent({ type: "agent_transcript", itemId: turn.itemId, text });
    this.onEvent({ type: "response_done" });
  }

  private onCallerWords(delta: string): void {
    this.endAgentTurn();
    if (this.callerTurn) this.callerTurn.fragment();
    else {
      this.callerTurn = new OpenTurn(`live_${this.sessionTag}_caller`, () => this.endCallerTurn());
      this.onEvent({ type: "caller_started_speaking" });
    }
    this.callerTurn.text += delta;
  }

  private endCallerTurn(): void {
    const turn = this.callerTurn;
    if (!turn) return;
    turn.stop();
    this.callerTurn = null;
    this.reportCallerTurn(turn);
  }

  private reportEndedCallerTurn(): void {
    const ended = this.endedCallerTurn;
    if (!ended) return;
    clearTimeout(ended.timer);
    this.endedCallerTurn = null;
    this.reportCallerTurn(ended.turn);
  }

  private reportCallerTurn(turn: OpenTurn): void {
    const text = turn.text.trim();
    if (text) this.onEvent({ type: "caller_transcript", itemId: turn.itemId, text });
  }

  /** A Responses event of a delegation: a call of one of our tools, or a response's token usage. */
  private onResponseEvent(event: Record<string, unknown>): void {
    const parsed = parseEvent("openai-live", responseEventSchema, event);
    if (!parsed || this.state !== "open") return;
    const inner = parsed.event;
    if (inner.type === "response.output_item.done") {
      const done = parseEvent("openai-live", outputItemDoneSchema, inner);
      const item = done?.item;
      if (!item || item.type !== "function_call" || item.status !== "completed" || !item.call_id) return;
      const name = item.name ?? "";
      if (!isCallToolName(name) || !this.tools.has(name)) {
        console.warn(`[openai-live] ignored a call of the undeclared tool ${JSON.stringify(name)}`);
        return;
      }
      this.onEvent({ type: "tool_call", name, toolCallId: item.call_id });
      // What the model says from here on answers the tool's result: a turn of its own.
      this.endAgentTurn();
      return;
    }
    if (inner.type === "response.completed" || inner.type === "response.incomplete" || inner.type === "response.failed") {
      const usage = parseEvent("openai-live", responseUsageSchema, inner)?.response.usage;
      if (!usage) return;
      // Delegated Responses bill text tokens.
      this.usage.inputTextTokens += usage.input_tokens;
      this.usage.cachedInputTextTokens += usage.input_tokens_details?.cached_tokens ?? 0;
      this.usage.outputTextTokens += usage.output_tokens;
    }
  }

  private onError(event: Record<string, unknown>): void {
    const parsed = parseEvent("openai-live", errorEventSchema, event);
    const error = parsed?.error ?? { message: "an error event without details", code: null, client_event_id: null };
    this.lastError = error.code ? `${error.code}: ${error.message}` : error.message;
    if (this.started) {
      this.started.reject(new Error(`GPT-Live refused the session: ${this.lastError}`));
      this.started = null;
      return;
    }
    // A refused speak is no longer awaited: the model says what it says.
    if (error.client_event_id && error.client_event_id === this.speakPending) this.speakPending = null;
    // An error answers one command and leaves the session up; should the session end with it, its close says so.
    console.warn(`[openai-live] ${this.lastError}`);
  }

  private onSessionClosed(event: Record<string, unknown>): void {
    const parsed = parseEvent("openai-live", sessionClosedSchema, event);
    if (parsed?.usage) this.usage.sessionSeconds = Math.max(this.usage.sessionSeconds, parsed.usage.seconds);
    const reason = parsed?.reason ?? "unknown";
    if (this.started) {
      this.started.reject(new Error(`GPT-Live closed the session before it started: ${reason}`));
      this.started = null;
      return;
    }
    if (this.state === "closing") return this.finish(null);
    // Ended unasked (expired, connection_lost, content, remote_hangup): the call may reconnect.
    this.finish(`GPT-Live session closed: ${reason}${this.lastError ? `; last error: ${this.lastError}` : ""}`);
  }

  private onSocketGone(detail: string): void {
    if (this.state === "closed") return;
    if (this.started) {
      this.started.reject(new Error(`GPT-Live session ended before it started (${detail})${this.lastError ? `; last error: ${this.lastError}` : ""}`));
      this.started = null;
      return;
    }
    if (this.state === "closing") return this.finish(null);
    this.finish(`GPT-Live session ended unexpectedly (${detail})${this.lastError ? `; last error: ${this.lastError}` : ""}`);
  }

  /** The session is over: what was said so far is reported, then `closed`, once. */
  private finish(error: string | null): void {
    if (this.state === "closed") return;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    const wasOpen = this.state === "open";
    this.state = "closed";
    if (wasOpen) {
      this.endAgentTurn();
      this.endCallerTurn();
    } else {
      // Asked to close: the call is over and nothing more of it is reported.
      this.agentTurn?.stop();
      this.callerTurn?.stop();
      this.agentTurn = this.callerTurn = null;
    }
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState === WebSocket.OPEN) socket.close(1000, "call ended");
    this.onEvent({ type: "closed", error, usage: { ...this.usage } });
  }

  /** Tears down a session that never started: no events, nothing more is sent. */
  private abandon(): void {
    this.state = "closed";
    this.started = null;
    this.outbox = [];
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.close(1000, "connect failed");
    this.socket = null;
  }

  private appendInstructions(content: string): void {
    this.send({ type: "session.instructions.append", content, delegation_id: null });
  }

  private send(event: ClientEvent): void {
    this.sendRaw(JSON.stringify(event));
  }

  private sendRaw(message: string): void {
    if (this.state === "open") this.socket?.send(message);
    else if (this.state === "new" || this.state === "connecting") this.outbox.push(message);
  }
}
