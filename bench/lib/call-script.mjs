// @ts-check
// What every benchmark call says and hears, shared by the harness and the fakes' threads.

/**
 * What the caller says, in ms from the stream start: a turn after the greeting, a barge-in into
 * the agent's answer, another turn, another barge-in. With the default model latency (300 ms) and
 * silence_duration_ms (500 ms), the agent's responses play at about 0.3–3.3 s (greeting),
 * 6.3–11.3 s (cut at 8 s), 9.8–11.8 s, 14.8–18.8 s (cut at 16 s) and 17.4–18.9 s; the model
 * streams them twice as fast as they play, so Twilio holds unplayed audio when the caller cuts in.
 */
export const CALLER_SPEECH = [
  [4000, 5500],
  [8000, 9000],
  [13000, 14000],
  [16000, 16600],
];
/** The agent's responses in order (0 = the greeting); later ones are 1 s. */
export const AGENT_RESPONSES = [
  { durationMs: 3000, transcript: "Hi, this is Acme calling to confirm your appointment tomorrow at ten. Does that still work?" },
  { durationMs: 5000, transcript: "Great. Just so you know, please bring your insurance card and arrive ten minutes early, and" },
  { durationMs: 2000, transcript: "Of course, go ahead." },
  { durationMs: 4000, transcript: "Thanks, I have noted that you would prefer the afternoon, and I will" },
  { durationMs: 1500, transcript: "Sure. Goodbye!" },
];
export const CALLER_TRANSCRIPTS = ["Yes, that works.", "Sorry, one question.", "Could it be in the afternoon instead?", "Thanks, bye."];

/** The phone number of bench call `index` (and back): the fake Twilio knows its calls by it. */
export const phoneFor = (/** @type {number} */ index) => `+1415555${String(2000 + index).padStart(4, "0")}`;
export const indexForPhone = (/** @type {string} */ phone) => {
  const match = /^\+1415555(\d{4})$/.exec(phone);
  return match ? Number(match[1]) - 2000 : null;
};

/** Calls fired together speak in lockstep; `--jitter=ms` shifts each caller's script by up to that much. */
export const scriptOffsetMs = (/** @type {number} */ index, /** @type {number} */ jitterMs) => (jitterMs > 0 ? (((index * 7919) % 1000) / 1000) * jitterMs : 0);

/** Whether the caller speaks at `atMs` into the stream. */
export const callerSpeaks = (/** @type {number} */ index, /** @type {number} */ atMs, /** @type {number} */ jitterMs) => {
  const shifted = atMs - scriptOffsetMs(index, jitterMs);
  return CALLER_SPEECH.some(([from, to]) => shifted >= from && shifted < to);
};

/** A frame's call number and counter, from the first 8 base64 characters (6 bytes) of its payload. */
export function frameId(/** @type {string} */ payload) {
  const head = Buffer.from(payload.slice(0, 8), "base64");
  if (head.length < 6) return null;
  return { index: head.readUInt16BE(0), counter: head.readUInt32BE(2) & 0x7fffffff };
}
