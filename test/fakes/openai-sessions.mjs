// @ts-check
/**
 * What the two fake OpenAI voice sockets (openai-realtime.mjs, openai-live.mjs) keep alike: the
 * scripts a test posts and a session picks by its instructions, the listing of a session's traffic
 * with audio as hashes, and OpenAI's REST error body.
 */

/**
 * Posted scripts, latest first, each with how many sessions have used it.
 * @template {{ match: string | null }} S
 */
export class ScriptRegistry {
  /** @type {Array<{ script: S, sessionsUsing: number }>} */
  entries = [];

  /** Adds a script; one posted before with the same `match` is replaced. @param {S} script */
  post(script) {
    const existing = this.entries.findIndex((entry) => entry.script.match === script.match);
    if (existing >= 0) this.entries.splice(existing, 1);
    this.entries.unshift({ script, sessionsUsing: 0 });
  }

  /** The latest script whose `match` is in the instructions, else the latest without one; counted as used. @param {string} instructions */
  choose(instructions) {
    const entry = this.entries.find((candidate) => candidate.script.match !== null && instructions.includes(candidate.script.match)) ?? this.entries.find((candidate) => candidate.script.match === null);
    if (entry) entry.sessionsUsing += 1;
    return entry;
  }
}

/**
 * The client events of a session as received, each audio append with the SHA-256 of its payload.
 * @param {{ clientEvents: Array<Record<string, unknown>>, appendPayloads: Map<Record<string, unknown>, string> }} session
 */
export async function hashedClientEvents(session) {
  const listed = [];
  for (const event of session.clientEvents) {
    const payload = session.appendPayloads.get(event);
    listed.push(payload === undefined ? event : { ...event, sha256: await sha256Hex(payload) });
  }
  return listed;
}

/** An audio payload as listed: its size and hash. @param {string} payload */
export async function hashedAudio(payload) {
  return { bytes: base64Bytes(payload).length, sha256: await sha256Hex(payload) };
}

/**
 * @param {number} status
 * @param {string} message
 * @param {string} type
 * @param {string | null} code
 */
export function apiError(status, message, type, code) {
  return Response.json({ error: { message, type, param: null, code } }, { status });
}

/** @param {string} base64 */
export function base64Bytes(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** @param {string} text */
async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
