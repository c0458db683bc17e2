/**
 * The tools the voice model may call during a call — one list for every engine (each declares them
 * in its own wire format). None takes arguments: what a tool does follows from the call itself.
 */
export const CALL_TOOL_NAMES = ["end_call", "opt_out", "transfer_call"] as const;
export type CallToolName = (typeof CALL_TOOL_NAMES)[number];

/** What the model is told of each tool; when to use it is said in the call's instructions. */
export const CALL_TOOL_DESCRIPTIONS: Record<CallToolName, string> = {
  end_call: "Hang up the phone call. Call it once the conversation is over and you have said goodbye.",
  opt_out:
    "Record that the person does not want to be called again: their number is taken off the calling list at once. Call it as soon as they ask, before saying anything; then confirm it to them.",
  transfer_call: "Hand the call over to a person at the business. Call it as soon as the caller asks for a human, before saying anything; then say a short hand-over line.",
};

export function isCallToolName(name: string): name is CallToolName {
  return CALL_TOOL_NAMES.some((tool) => tool === name);
}
