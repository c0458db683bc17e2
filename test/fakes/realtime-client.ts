import { expect } from "vitest";

/**
 * The tests' side of the fake OpenAI Realtime server (test/fakes/openai-realtime.mjs): scripting the
 * sessions to come and reading back what each session recorded. It runs in the tests, not in the
 * fakes' worker (like twilio-peer.ts), so it is not one of the config's FAKE_MODULES.
 */

/** A script's fields, all optional (what each does: test/fakes/openai-realtime.mjs). */
export interface RealtimeScript {
  responses?: string[];
  audio_deltas?: number | number[];
  audio_bytes_per_delta?: number;
  delta_interval_ms?: number;
  caller_turns?: string[];
  speech_start_frames?: number;
  speech_stop_frames?: number;
  end_call_after_turn?: number | null;
  tool_call_after_turn?: number | null;
  tool_name?: string | null;
  usage?: RealtimeUsage;
  drop_after_events?: number | null;
  drop_sessions?: number | null;
  refuse_session?: string | null;
  ignore_session_update?: boolean;
}

/** A response's usage by kind, as the Realtime API details it (`response.done`). */
export interface RealtimeUsage {
  input_token_details: { text_tokens: number; audio_tokens: number; cached_tokens_details: { text_tokens: number; audio_tokens: number } };
  output_token_details: { text_tokens: number; audio_tokens: number };
}

/** A response's usage: input tokens by kind (text and audio include their cached ones), output tokens by kind. */
export function realtimeUsage(input: { text: number; audio: number; cachedText: number; cachedAudio: number }, output: { text: number; audio: number }): RealtimeUsage {
  return {
    input_token_details: { text_tokens: input.text, audio_tokens: input.audio, cached_tokens_details: { text_tokens: input.cachedText, audio_tokens: input.cachedAudio } },
    output_token_details: { text_tokens: output.text, audio_tokens: output.audio },
  };
}

/** A session as the fake lists it. */
export interface FakeRealtimeSession {
  id: string;
  model: string;
  script_match: string | null;
  instructions: string | null;
  client_events: Array<Record<string, any>>;
  server_events: string[];
  sent_audio: Array<{ item_id: string; bytes: number; sha256: string }>;
  errors: Array<{ code: string; message: string; event_id: string | null }>;
  closed: { by: string; code: number; reason: string } | null;
}

/** Scripts the sessions whose instructions contain `match`. */
export async function scriptRealtime(match: string, script: RealtimeScript = {}): Promise<void> {
  const response = await fetch("https://api.openai.com/_fake/realtime/script", { method: "POST", body: JSON.stringify({ match, ...script }) });
  expect(response.status).toBe(200);
}

/** The sessions whose instructions contain `match`, oldest first. */
export async function realtimeSessions(match: string): Promise<FakeRealtimeSession[]> {
  const response = await fetch(`https://api.openai.com/_fake/realtime/sessions?match=${encodeURIComponent(match)}`);
  return response.json();
}

/** SHA-256 hex of a text, as the fake hashes the base64 audio it sent and received. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
