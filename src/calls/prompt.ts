/** Prompt variables (API.md "Prompt variables") and the scripts a call is made from. */

const TOKEN = /\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g;

export type PromptValues = Record<string, string>;

export interface Rendered {
  text: string;
  /** Token names with no value: unique, in order of first appearance. */
  missing: string[];
}

/** Fills `{{ name }}` tokens in one pass: a value that itself contains `{{…}}` stays literal. */
export function renderTemplate(template: string, values: PromptValues): Rendered {
  const missing: string[] = [];
  const text = template.replace(TOKEN, (token, name: string) => {
    const value = Object.hasOwn(values, name) ? values[name] : undefined;
    if (value !== undefined) return value;
    if (!missing.includes(name)) missing.push(name);
    return token;
  });
  return { text, missing };
}

export interface PromptSources {
  business: { name: string; summary: string; industry: string };
  customer: { firstName: string; lastName: string };
  request: { message?: string | null; context?: string | null; variables?: Record<string, string | number | boolean> };
}

/** Built-ins from the business, the customer and the request; the request's `variables` override them. */
export function promptValues({ business, customer, request }: PromptSources): PromptValues {
  const values: PromptValues = {
    business_name: business.name,
    business_summary: business.summary,
    industry: business.industry,
    recipient_name: `${customer.firstName} ${customer.lastName}`.trim(),
    recipient_first_name: customer.firstName,
    recipient_last_name: customer.lastName,
  };
  // Absent, they stay unfilled, so a prompt that uses them is refused rather than read aloud empty.
  if (request.message != null) values.message = request.message;
  if (request.context != null) values.context = request.context;
  for (const [name, value] of Object.entries(request.variables ?? {})) values[name] = String(value);
  return values;
}

/** What a call is made from, before variables are filled in. */
export interface ScriptTemplate {
  systemPrompt: string;
  firstMessage: string | null;
  voicemailMessage: string | null;
  outputSchema: Record<string, unknown> | null;
}

/** The output schema of the LLM path with `collect_feedback`: the person's answer to the message. */
export const FEEDBACK_OUTPUT_SCHEMA: Record<string, unknown> = {
  type: "object",
  required: ["response"],
  properties: {
    response: {
      type: "string",
      enum: ["confirmed", "cancel_requested", "reschedule_requested", "no_clear_answer"],
      description: "What the person answered: they confirm, want to cancel, want to reschedule, or gave no clear answer",
    },
    reschedule_time: { type: "string", description: "The time the person would prefer, when they asked to reschedule" },
    notes: { type: "string", description: "Anything else the person asked or said that the business should know" },
  },
};

/** The LLM path (no agent): a script built from the business profile and the request's message. */
export function llmScript({ hasContext, collectFeedback }: { hasContext: boolean; collectFeedback: boolean }): ScriptTemplate {
  const lines = [
    "You are a friendly, concise voice assistant calling {{recipient_name}} on behalf of {{business_name}}, a business in {{industry}}: {{business_summary}}.",
    "Greet {{recipient_first_name}}, say who you are calling for, then deliver this message clearly and politely:",
    '"{{message}}"',
  ];
  if (hasContext) lines.push("Background you may use to answer questions about the message (do not read it out unprompted): {{context}}");
  if (collectFeedback) {
    lines.push(
      "Then ask {{recipient_first_name}} whether they confirm, would like to cancel, or would like to reschedule. If they want to reschedule, ask for a preferred time. Make sure you understood their answer before ending the call.",
    );
  }
  lines.push("Only discuss this message. If you reach voicemail, do not leave a message. Thank them and end the call warmly.");
  return { systemPrompt: lines.join("\n"), firstMessage: null, voicemailMessage: null, outputSchema: collectFeedback ? FEEDBACK_OUTPUT_SCHEMA : null };
}

export interface RenderedScript {
  prompt: string;
  firstMessage: string | null;
  voicemailMessage: string | null;
  outputSchema: Record<string, unknown> | null;
  /** Unfilled tokens across the prompt, first message and voicemail message; unique, in order. */
  missing: string[];
}

export function renderScript(template: ScriptTemplate, values: PromptValues): RenderedScript {
  const prompt = renderTemplate(template.systemPrompt, values);
  const firstMessage = template.firstMessage === null ? null : renderTemplate(template.firstMessage, values);
  const voicemail = template.voicemailMessage === null ? null : renderTemplate(template.voicemailMessage, values);
  const missing = [...new Set([...prompt.missing, ...(firstMessage?.missing ?? []), ...(voicemail?.missing ?? [])])];
  return {
    prompt: prompt.text,
    firstMessage: firstMessage?.text ?? null,
    voicemailMessage: voicemail?.text ?? null,
    outputSchema: template.outputSchema,
    missing,
  };
}

const SAYING = /\bsaying:?\s*["“]([^"”]+)["”]/i;

/**
 * What the agent says first: the rendered first_message; else, on the agent path, the quoted
 * sentence after "saying:" in the rendered prompt; else a greeting (with the message on the LLM path).
 */
export function openingLine(input: {
  firstMessage: string | null;
  prompt: string;
  values: PromptValues;
  llm: { message: string; collectFeedback: boolean } | null;
}): string {
  if (input.firstMessage) return input.firstMessage;
  const quoted = input.llm ? undefined : SAYING.exec(input.prompt)?.[1]?.trim();
  if (quoted) return quoted;
  const greeting = `Hi ${input.values.recipient_first_name}, this is ${input.values.business_name} calling.`;
  if (!input.llm) return greeting;
  const question = input.llm.collectFeedback ? " Can you confirm, or would you like to cancel or reschedule?" : "";
  return `${greeting} ${input.llm.message}${question}`;
}

/** Spoken first on a recorded call whose agent sets no `recording_disclosure`. */
export const DEFAULT_RECORDING_DISCLOSURE = "This call is recorded.";

/** The opening of a recorded call starts with its disclosure. */
export function withDisclosure(opening: string, recording: { disclosure: string | null } | null): string {
  return recording ? `${recording.disclosure ?? DEFAULT_RECORDING_DISCLOSURE} ${opening}` : opening;
}

/**
 * What the agent answers a call screener (a phone's assistant that asks who is calling): its name,
 * the business, who the call is for and, when the request says it, why — one sentence, so the
 * screener can pass it on whole.
 */
export function screenerReply(input: { agentName: string | null; values: PromptValues; purpose: string | null }): string {
  const who = input.agentName ? `${input.agentName}, an automated assistant` : "an automated assistant";
  const purpose = input.purpose?.trim().replace(/[.!?]+$/, "");
  return `Hi, this is ${who} calling from ${input.values.business_name} for ${input.values.recipient_name}${purpose ? `, about: ${purpose}` : ""}.`;
}
