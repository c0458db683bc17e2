import type { AnsweredBy, CallCore, CallDriver, CallParams, EndedReason, TranscriptTurn, TurnRole } from "./call";
import { sampleCallResult } from "./call-result";
import { recordingKey, silentRecording, type CallRecording } from "./recording";
import { NO_ENGINE_USAGE } from "./usage";

/**
 * The built-in call simulator (API.md "Calls", last paragraph): nothing is dialled; the number
 * chooses the outcome and the call goes through the same lifecycle as a real one.
 */

export type SimulatedOutcome = "answered" | "busy" | "no-answer" | "voicemail" | "failed" | "screener" | "opt-out" | "transfer";

/** The fictional US exchange 555-01xx, in any area code. */
const MAGIC_SUFFIXES: Record<string, SimulatedOutcome> = {
  "5550101": "busy",
  "5550102": "no-answer",
  "5550103": "voicemail",
  "5550104": "failed",
  /** A call screener answers and asks who is calling, then puts the person through. */
  "5550105": "screener",
  /** The person asks not to be called again. */
  "5550106": "opt-out",
  /** The person asks for a human. */
  "5550107": "transfer",
};

export function simulatedOutcome(phoneE164: string): SimulatedOutcome {
  return MAGIC_SUFFIXES[phoneE164.replace(/\D/g, "").slice(-7)] ?? "answered";
}

export type SimulatorAction =
  | { kind: "ring" }
  | { kind: "answer"; answeredBy: AnsweredBy }
  | { kind: "say"; role: TurnRole; text: string }
  /** The person's phone is opted out, as the live agent's opt_out tool does. */
  | { kind: "opt-out" }
  | { kind: "end"; endedReason: EndedReason; errorMessage?: string };

export interface SimulatorStep {
  /** Seconds after the call was started, at time scale 1. */
  atSeconds: number;
  action: SimulatorAction;
}

/** Pacing at time scale 1, in seconds. */
export const PACING = {
  ring: 0.3,
  /** From ringing to a person picking up. */
  answer: 2,
  /** From ringing to an answering machine's beep. */
  beep: 3,
  /** From the answer to the agent's first words. */
  firstWords: 0.5,
  turn: 1,
  /** From the last words to the hang-up. */
  hangUp: 0.5,
  busy: 1,
  /** How long an unanswered call rings before it gives up. */
  noAnswer: 5,
} as const;

const RING: SimulatorStep = { atSeconds: PACING.ring, action: { kind: "ring" } };

/** The whole call, from the number's outcome and what the agent will say. */
export function simulatorScript(params: Pick<CallParams, "phoneE164" | "opening" | "voicemailMessage" | "screenerReply" | "transferTo">): SimulatorStep[] {
  const ringEnd = (after: number, endedReason: EndedReason): SimulatorStep[] => [RING, { atSeconds: PACING.ring + after, action: { kind: "end", endedReason } }];
  switch (simulatedOutcome(params.phoneE164)) {
    case "busy":
      return ringEnd(PACING.busy, "customer-busy");
    case "no-answer":
      return ringEnd(PACING.noAnswer, "customer-did-not-answer");
    case "failed":
      return [{ atSeconds: PACING.ring, action: { kind: "end", endedReason: "error", errorMessage: "The call could not be connected (simulated failure)" } }];
    case "voicemail":
      return paced(PACING.ring + PACING.beep, { kind: "answer", answeredBy: "machine_end_beep" }, params.voicemailMessage === null ? [] : [agent(params.voicemailMessage)], "voicemail");
    case "answered":
      return paced(PACING.ring + PACING.answer, ANSWERED, conversation(params.opening), "customer-ended-call");
    case "screener":
      return paced(PACING.ring + PACING.answer, ANSWERED, [customer(SCREENER_QUESTION), agent(params.screenerReply), ...conversation(params.opening)], "customer-ended-call");
    case "opt-out":
      return paced(PACING.ring + PACING.answer, ANSWERED, [agent(params.opening), customer(OPT_OUT_REQUEST), { kind: "opt-out" }, agent(OPT_OUT_ACKNOWLEDGEMENT)], "assistant-ended-call");
    case "transfer":
      return params.transferTo === null
        ? paced(PACING.ring + PACING.answer, ANSWERED, [agent(params.opening), customer(HUMAN_REQUEST), agent(NO_ONE_AVAILABLE)], "assistant-ended-call")
        : paced(PACING.ring + PACING.answer, ANSWERED, [agent(params.opening), customer(HUMAN_REQUEST), agent(HAND_OVER)], "transferred");
  }
}

const ANSWERED: SimulatorAction = { kind: "answer", answeredBy: "human" };
/** What the simulated call screener asks first. */
const SCREENER_QUESTION = "Hi, the person you're calling is using a screening service. Please say your name and why you're calling.";
const OPT_OUT_REQUEST = "Please don't call me again. Take me off your list.";
const OPT_OUT_ACKNOWLEDGEMENT = "Understood. You won't be called again. Sorry for the trouble, and goodbye.";
const HUMAN_REQUEST = "Can I speak to a real person, please?";
const HAND_OVER = "Of course. Please hold while I connect you.";
const NO_ONE_AVAILABLE = "I'm sorry, there is no one available to take your call right now. Thank you for your time, and goodbye.";

/** Ringing, the answer, one action a second (turns, and the opt-out between two), then the hang-up. */
function paced(answerAt: number, answer: SimulatorAction, turns: SimulatorAction[], endedReason: EndedReason): SimulatorStep[] {
  const steps: SimulatorStep[] = [RING, { atSeconds: answerAt, action: answer }];
  turns.forEach((action, i) => steps.push({ atSeconds: answerAt + PACING.firstWords + i * PACING.turn, action }));
  const lastWords = turns.length === 0 ? answerAt : answerAt + PACING.firstWords + (turns.length - 1) * PACING.turn;
  steps.push({ atSeconds: lastWords + PACING.hangUp, action: { kind: "end", endedReason } });
  return steps;
}

const agent = (text: string): SimulatorAction => ({ kind: "say", role: "agent", text });
const customer = (text: string): SimulatorAction => ({ kind: "say", role: "customer", text });

/** The agent's opening, then a cooperative customer. */
function conversation(opening: string): SimulatorAction[] {
  const asked = opening.trim().endsWith("?");
  return [
    agent(opening),
    customer(asked ? "Yes, that works for me. Thank you!" : "Okay, thanks for letting me know."),
    agent(asked ? "Wonderful, you're all set. Thank you for your time, and have a great day. Goodbye!" : "You're welcome. Have a great day. Goodbye!"),
    customer("Bye!"),
  ];
}

/** Plays `simulatorScript` through the lifecycle core, one alarm per step, paced by the time scale. */
export class SimulatorDriver implements CallDriver {
  private readonly steps: SimulatorStep[];
  /** The longest ring of the script, at least a minute: its steps end the call long before. */
  readonly answerWithinMs: number;

  constructor(
    private readonly core: CallCore,
    private readonly params: CallParams,
    private readonly timeScale: number,
    private readonly recordings: R2Bucket,
  ) {
    this.steps = simulatorScript(params);
    this.answerWithinMs = Math.max(60_000, (PACING.ring + PACING.noAnswer) * 1000 * timeScale * 2);
  }

  begin(): void {
    this.scheduleStep(0);
  }

  async runStep(index: number): Promise<void> {
    const action = this.steps[index]?.action;
    if (!action) return;
    switch (action.kind) {
      case "ring":
        if (!(await this.core.markRinging())) return;
        break;
      case "answer":
        if (!(await this.core.markAnswered(action.answeredBy))) return;
        break;
      case "say":
        this.core.addTurn(action.role, action.text);
        break;
      case "opt-out":
        if (!(await this.core.optOut())) return;
        break;
      case "end":
        await this.core.finish(action.endedReason, action.errorMessage ?? null);
        return;
    }
    this.scheduleStep(index + 1);
  }

  /** Nothing is on the line: the core dropping the pending step is the hang-up. */
  async hangUp(): Promise<void> {}

  /** The script is the whole truth of a simulated call: there is nothing else to ask. */
  async reconcile(): Promise<void> {}

  /** A cooperative customer gives what the schema asks for. */
  extractResult(_transcript: TranscriptTurn[], outputSchema: Record<string, unknown>) {
    return sampleCallResult(outputSchema);
  }

  /** Nothing is said aloud: a recorded call keeps its talk time of silence, laid out as a live call's recording. */
  takeRecording(talkMs: number): CallRecording | null {
    return this.params.record && talkMs > 0 ? silentRecording(this.recordings, recordingKey(this.params), talkMs) : null;
  }

  /** No model runs a simulated call: its usage is zero, and so is its cost. */
  usage() {
    return NO_ENGINE_USAGE;
  }

  /** Each step keeps its gap from the one before, counted from when that one actually ran. */
  private scheduleStep(index: number): void {
    const step = this.steps[index];
    if (!step) return;
    const gapSeconds = step.atSeconds - (this.steps[index - 1]?.atSeconds ?? 0);
    this.core.schedule(index, Date.now() + gapSeconds * 1000 * this.timeScale);
  }
}
