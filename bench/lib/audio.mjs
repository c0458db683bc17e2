// @ts-check
// Synthetic G.711 μ-law frames: 20 ms (160 bytes at 8 kHz) unless said otherwise, each unique,
// either silence or "speech".
//
// Bytes 0–1 hold the call's number and bytes 2–5 a per-call frame counter (bit 31 set for agent
// audio), so that every payload is unique and a relayed frame can be matched by its base64 text.
// The rest is μ-law silence (0xFF, i.e. zero amplitude) or loud alternating samples: the fake model
// tells them apart by energy, as a voice activity detector does.

export const FRAME_MS = 20;
export const FRAME_BYTES = 160;
const MULAW_SILENCE = 0xff;
const HEADER_BYTES = 6;
const AGENT_AUDIO_FLAG = 0x80000000;

/**
 * @param {number} callIndex 0..65535
 * @param {number} counter 0..2^31-1
 * @param {boolean} speech
 * @param {boolean} [agent] agent audio (the model's output) rather than caller audio
 * @param {number} [ms] length (20 ms, a Twilio frame, unless said otherwise)
 */
export function makeFrame(callIndex, counter, speech, agent = false, ms = FRAME_MS) {
  // The 6-byte header is 8 base64 characters on its own (6 is a multiple of 3), so a frame is its
  // header's base64 followed by the body's, which is the same for every frame of its kind: the
  // fakes make 2 500 frames a second at 50 calls, and this keeps each one to a 6-byte encode.
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt16BE(callIndex, 0);
  header.writeUInt32BE((agent ? AGENT_AUDIO_FLAG : 0) + counter, 2);
  return header.toString("base64") + frameBody(speech, ms);
}

/** @type {Map<string, string>} */
const bodies = new Map();
/** The base64 of a frame's body (all but the header): μ-law silence, or loud alternating samples. */
function frameBody(/** @type {boolean} */ speech, /** @type {number} */ ms) {
  const key = `${speech ? "s" : "q"}${ms}`;
  let body = bodies.get(key);
  if (body === undefined) {
    const bytes = Buffer.alloc((FRAME_BYTES * ms) / FRAME_MS - HEADER_BYTES, MULAW_SILENCE);
    if (speech) for (let i = 0; i < bytes.length; i++) bytes[i] = (i + HEADER_BYTES) % 2 === 0 ? 0x10 : 0x90;
    body = bytes.toString("base64");
    bodies.set(key, body);
  }
  return body;
}

/**
 * Whether a base64 payload is speech, without decoding it when it is one of the harness's own
 * frames (header + a known body); anything else is decoded and measured (`isSpeech`).
 */
export function payloadIsSpeech(/** @type {string} */ payload) {
  const ms = payloadMs(payload);
  if (payload.length > 8 && Number.isInteger(ms)) {
    const rest = payload.length - 8;
    const speech = frameBody(true, ms);
    if (speech.length === rest && payload.endsWith(speech)) return true;
    const quiet = frameBody(false, ms);
    if (quiet.length === rest && payload.endsWith(quiet)) return false;
  }
  return isSpeech(payloadBytes(payload));
}

/** μ-law bytes carried by a base64 payload. */
export function payloadBytes(/** @type {string} */ payload) {
  return Buffer.from(payload, "base64");
}

/** Milliseconds of 8 kHz μ-law audio in a base64 payload, without decoding it. */
export function payloadMs(/** @type {string} */ payload) {
  const padding = payload.endsWith("==") ? 2 : payload.endsWith("=") ? 1 : 0;
  return ((payload.length / 4) * 3 - padding) / 8;
}

/** True when more than half the samples are not silence: a crude energy-based voice detector. */
export function isSpeech(/** @type {Buffer} */ bytes) {
  let loud = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== MULAW_SILENCE && bytes[i] !== 0x7f) loud++;
  return loud * 2 > bytes.length;
}
