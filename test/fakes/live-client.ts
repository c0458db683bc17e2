import { expect } from "vitest";

/**
 * The tests' side of the fake GPT-Live server (test/fakes/openai-live.mjs): scripting the sessions
 * to come and reading back what each session recorded. It runs in the tests, not in the fakes'
 * worker (like realtime-client.ts), so it is not one of the config's FAKE_MODULES.
 */

/** A script's fields, all optional (what each does: test/fakes/openai-live.mjs). */
export interface LiveScript {
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
  usage_seconds?: number | null;
  delegation_usage?: { input_tokens: number; output_tokens: number; cached_tokens: number };
  close_after_events?: number | null;
  close_reason?: "expired" | "connection_lost" | "content" | "remote_hangup";
  drop_after_events?: number | null;
  drop_sessions?: number | null;
  refuse_session?: string | null;
  ignore_session_start?: boolean;
}

/** A session as the fake lists it. */
export interface FakeLiveSession {
  id: string;
  model: string | null;
  script_match: string | null;
  instructions: string | null;
  start: Record<string, any> | null;
  client_events: Array<Record<string, any>>;
  server_events: string[];
  sent_audio: Array<{ bytes: number; sha256: string }>;
  errors: Array<{ code: string; message: string; param?: string; client_event_id?: string }>;
  closed: { by: string; code: number; reason: string } | null;
}

/** Scripts the sessions whose instructions contain `match`. */
export async function scriptLive(match: string, script: LiveScript = {}): Promise<void> {
  const response = await fetch("https://api.openai.com/_fake/live/script", { method: "POST", body: JSON.stringify({ match, ...script }) });
  expect(response.status).toBe(200);
}

/** The sessions whose instructions contain `match`, oldest first. */
export async function liveSessions(match: string): Promise<FakeLiveSession[]> {
  const response = await fetch(`https://api.openai.com/_fake/live/sessions?match=${encodeURIComponent(match)}`);
  return response.json();
}
