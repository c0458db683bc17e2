import type { LiveCallConfig, OpenAIConfig } from "../../env";
import { errorText } from "../../errors";
import { timingSafeEqualStrings } from "../../lib/crypto";
import type { AnsweredBy, CallCore, CallDriver, CallParams, EndedReason, LiveCallParams, LiveCallState, TranscriptTurn, VoiceEngineName } from "../call";
import type { EngineEvent, EngineSessionConfig, EngineUsage, VoiceEngine } from "./engine";
import { extractCallResult } from "./extraction";
import { MediaBridge } from "./media-bridge";
import { createOpenAILiveEngine } from "./openai-live";
import { createOpenAIRealtimeEngine } from "./openai-realtime";
import type { CallToolName } from "./tools";
import { recordingKey, type CallRecording } from "../recording";
import { addEngineUsage, NO_ENGINE_USAGE } from "../usage";
import { CallRecorder } from "./recorder";
import {
  dialTwiml,
  isFinalTwilioStatus,
  streamTwiml,
  twilioMachineDetectionCallbackUrl,
  twilioStatusCallbackUrl,
  twilioStatusRank,
  twilioStreamUrl,
  TwilioApiError,
  TwilioClient,
  type TwilioAnsweredBy,
  type TwilioCallStatus,
  type TwilioMachineDetection,
  type TwilioStatusUpdate,
} from "./twilio";

/**
 * A real phone call: Twilio dials the callee and streams the call's audio to this Durable Object,
 * where the media bridge relays it to and from the voice model. This driver places and hangs up
 * the call, follows Twilio's status callbacks and the stream, keeps the model session alive
 * (one reconnect), and reports every step to the lifecycle core — which stores it and emits the
 * events exactly as for a simulated call.
 */

export function newLiveCallState(): LiveCallState {
  return { callSid: null, statusSequence: null, statusRank: twilioStatusRank("queued"), agentEnded: false, transferred: false };
}

/** How long Twilio lets the phone ring. */
const RING_TIMEOUT_SECONDS = 30;
/**
 * Twilio's own time limit is a backstop: our watchdog ends the call at max_duration_seconds (with
 * exceeded-max-duration) a little before Twilio would cut it.
 */
const TIME_LIMIT_GRACE_SECONDS = 10;
/**
 * A call handed over to a person may last as long as Twilio lets any call (its default TimeLimit,
 * 4 hours): the limit it was placed with was the agent's max_duration_seconds.
 */
const TRANSFERRED_TIME_LIMIT_SECONDS = 4 * 3600;
/** No caller audio for this long (Twilio sends a frame every 20 ms, silence included): the line is dead. */
const SILENCE_TIMEOUT_MS = 15_000;
/** The one step a live call schedules: the media watchdog. */
const SILENCE_CHECK = 0;
/**
 * How long the end of a call waits for its model sessions' final usage after closing them (an
 * engine may hear its last figures from the server a moment after `close`; GPT-Live waits up to 5 s
 * for its `session.closed`): longer than any engine's own close, then it counts what came.
 */
const USAGE_WAIT_MS = 7_000;

const NEVER_CONNECTED: Partial<Record<TwilioCallStatus, { endedReason: EndedReason; errorMessage: string | null }>> = {
  busy: { endedReason: "customer-busy", errorMessage: null },
  "no-answer": { endedReason: "customer-did-not-answer", errorMessage: null },
  failed: { endedReason: "error", errorMessage: "Twilio could not connect the call" },
  canceled: { endedReason: "canceled", errorMessage: null },
};

/**
 * Answering machine detection verdicts that mean no person is on the line (a fax cannot listen
 * either); human and unknown leave the call with the person.
 */
const MACHINE_VERDICTS: ReadonlySet<string> = new Set<TwilioAnsweredBy>(["machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"]);

/** Who answered, from Twilio's AnsweredBy (on callbacks, the detection verdict and the call resource). */
function answeredByOf(twilioAnsweredBy: string | null): AnsweredBy {
  return twilioAnsweredBy !== null && MACHINE_VERDICTS.has(twilioAnsweredBy) ? "machine_end_beep" : "human";
}

/**
 * The model's instructions: the rendered prompt, how to open, and how to treat the person called —
 * a call screener, a voicemail greeting, a request not to be called again, or for a human.
 */
function sessionInstructions(params: CallParams): string {
  return [
    params.prompt,
    `Open the call by saying: "${params.opening}"`,
    `If a call screener answers instead of the person (a phone's assistant asking who is calling and why), answer it in one sentence: "${params.screenerReply}" If that does not say why you are calling, add the purpose in a few words. Then say nothing more and wait; when the person picks up, carry on with the call as above.`,
    "If a voicemail greeting answers, say nothing: you will be told what to do once it has ended.",
    'If the person asks not to be called again (for example "don\'t call me again", "remove me from your list", "stop calling me"), call opt_out at once, before saying anything; then tell them in one short sentence that they won\'t be called again, and say goodbye.',
    params.transferTo === null
      ? "If the person asks to speak to a human (a person, a representative), tell them politely that no one is available to take the call right now, say goodbye, and call end_call."
      : 'If the person asks to speak to a human (a person, a representative), call transfer_call at once, before saying anything; then say one short hand-over line, such as "Please hold while I connect you."',
  ].join("\n\n");
}

/** A new session of the call's engine (the agent's, else its project's default). */
function createVoiceEngine(engine: VoiceEngineName, config: OpenAIConfig & { apiKey: string }): VoiceEngine {
  switch (engine) {
    case "openai-realtime":
      return createOpenAIRealtimeEngine(config);
    case "openai-live":
      return createOpenAILiveEngine(config);
  }
}

/** The tools of a call: transfer_call only when the agent has someone to hand over to. */
function sessionTools(params: CallParams): CallToolName[] {
  return params.transferTo === null ? ["end_call", "opt_out"] : ["end_call", "opt_out", "transfer_call"];
}

/**
 * Hangs up a leg (Status=completed; a leg already over stays as it was). A failure is logged: the
 * call still ends on our side, and Twilio's time limit ends it on the line at the latest.
 */
export async function hangUpLeg(config: LiveCallConfig, callSid: string): Promise<void> {
  try {
    await new TwilioClient(config.twilio).hangUp(callSid);
  } catch (error) {
    console.error(`[echo] could not hang up Twilio call ${callSid}`, error);
  }
}

/**
 * How a call whose object lost it ends, from its leg's status on Twilio: a leg that never connected
 * ends the way Twilio says; one still up is hung up. Either way the conversation (if any) is gone.
 */
export async function endLostLeg(config: LiveCallConfig, callSid: string): Promise<{ endedReason: EndedReason; errorMessage: string | null }> {
  let status: TwilioCallStatus;
  try {
    status = (await new TwilioClient(config.twilio).fetchCall(callSid)).status;
  } catch (error) {
    await hangUpLeg(config, callSid);
    return { endedReason: "error", errorMessage: `The call was lost and Twilio could not be asked how it ended: ${errorText(error)}` };
  }
  const neverConnected = NEVER_CONNECTED[status];
  if (neverConnected) return neverConnected;
  if (!isFinalTwilioStatus(status)) await hangUpLeg(config, callSid);
  return { endedReason: "error", errorMessage: `The call was lost while Twilio reported it ${status}` };
}

export class LiveCallDriver implements CallDriver {
  /** The ring timeout Twilio is given, and half a minute for its final callback. */
  readonly answerWithinMs = (RING_TIMEOUT_SECONDS + 30) * 1000;
  private readonly twilio: TwilioClient;
  private readonly bridge: MediaBridge;
  private readonly liveParams: LiveCallParams;
  /** The model session in use; null while none is connected (or after the call). */
  private engine: VoiceEngine | null = null;
  /** A model session was asked for (by `begin`, or by a stream reaching an object that lost its own). */
  private engineRequested = false;
  private reconnectsLeft = 1;
  private released = false;
  /** The agent asked to end the call (end_call, opt_out); known at once, stored with the next operation. */
  private agentEndRequested = false;
  /** The agent called transfer_call: once its hand-over line has played, the call goes to `transfer_to`. */
  private transferRequested = false;
  /** The answering machine's verdict was acted on (its message is being left, or the call hung up). */
  private machineHandled = false;
  private framesAtLastSilenceCheck = 0;
  /** A recorded call's recorder, on the bridge's tap. */
  private readonly recorder: CallRecorder | null;
  /** Each model session's usage, settled when it closed (its `closed` event), or none when it never connected. */
  private readonly sessionUsages: Promise<EngineUsage>[] = [];

  constructor(
    private readonly core: CallCore,
    private readonly params: CallParams,
    private readonly config: { live: LiveCallConfig; openai: OpenAIConfig; recordings: R2Bucket },
  ) {
    if (!params.live) throw new Error(`Call ${params.callId} was not created as a live call`);
    this.liveParams = params.live;
    this.twilio = new TwilioClient(config.live.twilio);
    this.recorder = params.record ? new CallRecorder(config.recordings, recordingKey(params)) : null;
    this.bridge = new MediaBridge({
      authorize: (parameters) =>
        parameters.notification_id === params.notificationId && timingSafeEqualStrings(parameters.stream_token ?? "", this.liveParams.streamToken),
      streamStarted: () => void this.core.run(() => this.streamStarted()),
      turn: (role, text) => void this.core.run(async () => this.core.addTurn(role, text)),
      lastWordsPlayed: () => void (this.transferRequested ? this.handOver() : this.core.run(() => this.endCall(this.completedReason()))),
      streamEnded: () => void this.core.run(() => this.core.finish(this.completedReason())),
    }, this.recorder);
  }

  /** Dials, while the model session opens alongside, so the agent can speak the moment the callee answers. */
  async begin(): Promise<void> {
    this.connectEngine([]);
    const { publicBaseUrl } = this.config.live;
    const { notificationId } = this.params;
    try {
      const call = await this.twilio.createCall({
        to: this.params.phoneE164,
        twiml: streamTwiml(twilioStreamUrl(publicBaseUrl, notificationId), { notification_id: notificationId, stream_token: this.liveParams.streamToken }),
        statusCallbackUrl: twilioStatusCallbackUrl(publicBaseUrl, notificationId),
        machineDetectionCallbackUrl: twilioMachineDetectionCallbackUrl(publicBaseUrl, notificationId),
        timeoutSeconds: RING_TIMEOUT_SECONDS,
        timeLimitSeconds: Math.ceil(this.params.maxDurationSeconds) + TIME_LIMIT_GRACE_SECONDS,
      });
      await this.core.markDialled(call.sid);
    } catch (error) {
      if (!(error instanceof TwilioApiError)) throw error;
      // Twilio refused the call (or could not be reached): the notification fails with its reason.
      await this.core.finish("error", error.message);
    }
  }

  /** Applies one status callback, unless it is a duplicate or older than what was applied. */
  async twilioStatus(update: TwilioStatusUpdate): Promise<void> {
    const state = this.core.liveState();
    if (update.callSid !== state.callSid) return;
    const rank = twilioStatusRank(update.callStatus);
    const stale = update.sequenceNumber !== null && state.statusSequence !== null && update.sequenceNumber <= state.statusSequence;
    if (stale || rank <= state.statusRank) return;
    state.statusRank = rank;
    if (update.sequenceNumber !== null) state.statusSequence = update.sequenceNumber;

    if (update.callStatus === "ringing") {
      await this.core.markRinging();
      return;
    }
    if (update.callStatus === "in-progress") {
      await this.answered(answeredByOf(update.answeredBy));
      return;
    }
    if (update.callStatus === "completed") {
      // Only an answered call completes; its in-progress callback may still be on its way.
      if (!(await this.answered(answeredByOf(update.answeredBy)))) return;
      await this.core.finish(this.completedReason());
      return;
    }
    const neverConnected = NEVER_CONNECTED[update.callStatus];
    if (neverConnected) {
      const sip = update.sipResponseCode === null ? "" : ` (SIP ${update.sipResponseCode})`;
      await this.core.finish(neverConnected.endedReason, neverConnected.errorMessage && `${neverConnected.errorMessage}${sip}`);
    }
  }

  /**
   * Applies the answering machine detection verdict. Detection waits for the end of the greeting
   * (DetectMessageEnd), so a machine's verdict comes at the beep, while the agent may be talking over
   * the greeting. A machine makes the call a voicemail (no extraction): what the agent was saying is
   * dropped and the agent's voicemail_message is left now, then the call hangs up; without one (or
   * at a fax) it hangs up at once.
   */
  async twilioMachineDetection(detection: TwilioMachineDetection): Promise<void> {
    const state = this.core.liveState();
    if (detection.callSid !== state.callSid || answeredByOf(detection.answeredBy) === "human" || this.machineHandled) return;
    // The verdict may beat the in-progress callback and the stream: it answers the call too.
    if (!(await this.answered("machine_end_beep"))) return;
    if (!(await this.core.markAnsweredBy("machine_end_beep"))) return;
    this.machineHandled = true;
    const message = detection.answeredBy === "fax" ? null : this.params.voicemailMessage;
    const engine = this.engine;
    // Without a stream (or a model) there is nothing to speak into.
    if (message === null || engine === null || !this.bridge.streaming) {
      await this.endCall("voicemail");
      return;
    }
    // Spoken by the model, told to say exactly the message, rather than by TwiML <Say>: it is the
    // agent's own voice, and replacing the TwiML would end the stream the hang-up after it waits on.
    // The model is cut off first, then what Twilio still holds of it is dropped.
    engine.speak(message);
    this.bridge.interrupt();
    this.bridge.finishAfterSpeech({ afterReply: true });
  }

  /** Takes the Media Stream WebSocket Twilio opened to this call. */
  async acceptMediaStream(): Promise<Response> {
    if (this.released) return new Response("The call has ended", { status: 410 });
    if (this.bridge.hasStream) return new Response("The call already has a media stream", { status: 409 });
    // An object restarted since `begin` has no model session: open one, with what was said so far.
    if (!this.engineRequested) this.connectEngine(await this.core.transcript());
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    this.bridge.attachTwilio(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** The only step: the media watchdog. Caller audio since the last check means the line is alive. */
  async runStep(): Promise<void> {
    const frames = this.bridge.callerFrames;
    if (!this.released && frames > this.framesAtLastSilenceCheck) {
      this.framesAtLastSilenceCheck = frames;
      this.core.schedule(SILENCE_CHECK, this.bridge.lastCallerFrameAtMs + SILENCE_TIMEOUT_MS);
      return;
    }
    await this.endCall("silence-timed-out");
  }

  async hangUp(): Promise<void> {
    const { callSid, statusRank, transferred } = this.core.liveState();
    this.release();
    // Not dialled, Twilio already reported the call over, or it was handed over to a person and goes on without us.
    if (callSid === null || statusRank === twilioStatusRank("completed") || transferred) return;
    await hangUpLeg(this.config.live, callSid);
  }

  /** Twilio's own record of the call, applied as the status callback that may have been lost. */
  async reconcile(): Promise<void> {
    const { callSid } = this.core.liveState();
    if (callSid === null) return;
    let call: Awaited<ReturnType<TwilioClient["fetchCall"]>>;
    try {
      call = await this.twilio.fetchCall(callSid);
    } catch (error) {
      console.error(`[echo] could not read Twilio call ${callSid}`, error);
      return;
    }
    await this.twilioStatus({ callSid, callStatus: call.status, sequenceNumber: null, answeredBy: call.answeredBy, durationSeconds: call.duration, sipResponseCode: null });
  }

  async extractResult(transcript: TranscriptTurn[], outputSchema: Record<string, unknown>) {
    return extractCallResult({ openai: { ...this.config.openai, apiKey: this.config.live.openaiApiKey }, instructions: this.params.prompt, transcript, outputSchema });
  }

  /** What the caller heard, once the stream is over (an object restarted mid-call has none). */
  takeRecording(): CallRecording | null {
    return this.recorder?.hasAudio ? this.recorder : null;
  }

  /**
   * What every model session of the call billed, summed, once each has closed (`release` closes the
   * last). A session that has not reported within USAGE_WAIT_MS counts as nothing, and is logged.
   */
  async usage(): Promise<EngineUsage> {
    const late = Promise.withResolvers<null>();
    const timer = setTimeout(() => late.resolve(null), USAGE_WAIT_MS);
    try {
      const usages = await Promise.all(this.sessionUsages.map((usage) => Promise.race([usage, late.promise])));
      const missing = usages.filter((usage) => usage === null).length;
      if (missing > 0) console.error(`[echo] call ${this.params.callId}: ${missing} model session(s) did not report their usage within ${USAGE_WAIT_MS} ms; counted as none`);
      return usages.reduce<EngineUsage>((sum, usage) => (usage ? addEngineUsage(sum, usage) : sum), NO_ENGINE_USAGE);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The call is over: the model session and Twilio's stream are closed. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.bridge.close();
    const engine = this.engine;
    this.engine = null;
    engine?.close();
  }

  private async answered(answeredBy: AnsweredBy): Promise<boolean> {
    const firstAnswer = this.core.answeredBy() === null;
    if (!(await this.core.markAnswered(answeredBy))) return false;
    if (firstAnswer) this.core.schedule(SILENCE_CHECK, Date.now() + SILENCE_TIMEOUT_MS);
    return true;
  }

  /** The stream can start before Twilio's in-progress callback arrives: either one answers the call. */
  private async streamStarted(): Promise<void> {
    if (!(await this.answered(this.core.answeredBy() ?? "human"))) return;
    this.core.schedule(SILENCE_CHECK, Date.now() + SILENCE_TIMEOUT_MS);
  }

  /** A machine's call is a voicemail whoever hung up (the agent does, once its message is left). */
  private completedReason(): EndedReason {
    if (this.core.answeredBy() === "machine_end_beep") return "voicemail";
    if (this.core.liveState().transferred) return "transferred";
    if (this.core.liveState().agentEnded || this.agentEndRequested) return "assistant-ended-call";
    return "customer-ended-call";
  }

  /** The model called a tool (tools.ts); each is answered at once so the conversation stays well-formed. */
  private onToolCall(engine: VoiceEngine, name: CallToolName, toolCallId: string): void {
    switch (name) {
      case "end_call":
        engine.completeToolCall(toolCallId, JSON.stringify({ status: "hanging up once the goodbye has played" }));
        this.agentEnds();
        this.bridge.finishAfterSpeech({ afterReply: false });
        return;
      case "opt_out":
        this.agentEnds();
        void this.optOut(engine, toolCallId);
        return;
      case "transfer_call":
        this.transferRequested = true;
        engine.completeToolCall(toolCallId, JSON.stringify({ status: "connecting", next: "Say one short hand-over line, such as: Please hold while I connect you." }));
        engine.respond();
        this.bridge.finishAfterSpeech({ afterReply: true });
        return;
    }
  }

  /** The agent will end the call (its reason, should the caller hang up first). */
  private agentEnds(): void {
    this.agentEndRequested = true;
    void this.core.run(async () => {
      this.core.liveState().agentEnded = true;
    });
  }

  /**
   * The person asked not to be called again: their phone is opted out before the model is told so,
   * then the model confirms it and the call ends once that has played.
   */
  private async optOut(engine: VoiceEngine, toolCallId: string): Promise<void> {
    const optedOut = (await this.core.run(() => this.core.optOut())) === true;
    engine.completeToolCall(
      toolCallId,
      JSON.stringify(
        optedOut
          ? { opted_out: true, next: "Tell the person in one short sentence that they won't be called again, and say goodbye." }
          : { opted_out: false, next: "It could not be recorded right now. Apologise briefly, and say goodbye." },
      ),
    );
    engine.respond();
    this.bridge.finishAfterSpeech({ afterReply: true });
  }

  /**
   * The hand-over line has played: Twilio is told to dial `transfer_to` on this leg (the TwiML
   * replaced, which ends our stream), and the call ends `transferred` while the leg goes on.
   */
  private async handOver(): Promise<void> {
    // Stored before Twilio is asked: from then on nothing of ours hangs this leg up, even after a restart.
    const marked = await this.core.run(async () => {
      this.core.liveState().transferred = true;
      return true;
    });
    if (marked) await this.core.run(() => this.dialTransfer());
  }

  private async dialTransfer(): Promise<void> {
    const state = this.core.liveState();
    const { transferTo, phoneE164 } = this.params;
    if (state.callSid === null || transferTo === null) return;
    try {
      // Whoever takes the call sees the person's number (Twilio allows a leg's called number as caller ID).
      await this.twilio.updateCallTwiml(state.callSid, dialTwiml(transferTo, { callerId: phoneE164 }), TRANSFERRED_TIME_LIMIT_SECONDS);
    } catch (error) {
      state.transferred = false;
      await this.endCall("error", `The call could not be transferred: ${errorText(error)}`);
      return;
    }
    await this.core.finish("transferred");
  }

  private async endCall(endedReason: EndedReason, errorMessage: string | null = null): Promise<void> {
    await this.hangUp();
    await this.core.finish(endedReason, errorMessage);
  }

  /** Opens a model session, restoring `turns` (the conversation so far; none for a new call). */
  private connectEngine(turns: TranscriptTurn[]): void {
    const history = turns.map(({ role, text }) => ({ role, text }));
    const engine = createVoiceEngine(this.params.engine, { ...this.config.openai, apiKey: this.config.live.openaiApiKey });
    this.engine = engine;
    this.engineRequested = true;
    const session: EngineSessionConfig = { instructions: sessionInstructions(this.params), voice: this.liveParams.voice, language: this.liveParams.language, history, tools: sessionTools(this.params) };
    const usage = Promise.withResolvers<EngineUsage>();
    this.sessionUsages.push(usage.promise);
    const onEvent = (event: EngineEvent) => {
      // Kept whenever it comes, after `release` too: this driver no longer listens then, but the call still pays for it.
      if (event.type === "closed") usage.resolve(event.usage);
      this.onEngineEvent(engine, event);
    };
    engine.connect(session, onEvent).then(
      () => {
        if (engine === this.engine) this.bridge.useEngine(engine);
      },
      (error: unknown) => {
        usage.resolve(NO_ENGINE_USAGE);
        if (engine === this.engine) this.engineLost(errorText(error));
      },
    );
  }

  private onEngineEvent(engine: VoiceEngine, event: EngineEvent): void {
    if (engine !== this.engine) return;
    if (event.type === "closed") this.engineLost(event.error ?? "the model closed the session");
    else if (event.type === "tool_call") this.onToolCall(engine, event.name, event.toolCallId);
    else this.bridge.onEngineEvent(event);
  }

  /** One reconnect, with the conversation so far; after that the agent cannot speak, so the call ends. */
  private engineLost(reason: string): void {
    this.engine = null;
    this.bridge.engineLost();
    if (this.reconnectsLeft > 0) {
      this.reconnectsLeft -= 1;
      void this.reconnect();
      return;
    }
    void this.core.run(() => this.endCall("error", `The voice model session was lost and could not be restored: ${reason}`));
  }

  private async reconnect(): Promise<void> {
    const transcript = await this.core.run(() => this.core.transcript());
    if (transcript === undefined || this.released) return;
    this.connectEngine(transcript);
  }
}
