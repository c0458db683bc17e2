// @ts-check
// The smallest Worker that does what a live call's audio path does — Twilio Media Stream in, one
// Durable Object per call, an OpenAI Realtime socket out, frames relayed untouched both ways, a
// mark every 100 ms of agent audio and at the end of a response (as ours), clear + truncate on barge-in — and nothing else (no storage unless FLOOR_DURABLE, no D1, no
// status handling). Measured with the same harness, it is the floor that workerd under
// `wrangler dev` sets on this machine.
//
// `/twilio/media/openai-live/<key>` relays to GPT-Live instead (`/v1/live/sessions`), doing the
// least our bridge does for it: `session.start`, the greeting as `session.instructions.append`,
// frames untouched both ways, agent audio paced to at most 200 ms ahead of playback (released on
// each caller frame, or by a timer), a mark every 100 ms of it, and an energy detector on the
// caller's frames (two loud frames in a row, as ours) that drops the held audio and sends `clear`.
//
// `POST /trigger` (only under `wrangler.trigger.toml`, `bench calls --floor-trigger=minimal`) places
// a call the least way a notification API can: the minimal route of `npm run bench -- api` (a D1
// insert and a select, the call's object created by an RPC and storing the call, a queue send), the
// object dialling Twilio before the 201 as ours' does (`placeStreamCall`, as the other stand-ins).
// Status callbacks are still answered 204 at once.

import { DurableObject } from "cloudflare:workers";
import { placeStreamCall } from "../lib/place-call.mjs";
import { recordNotification } from "../minimal/notification-row.mjs";

const json = (/** @type {unknown} */ body, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

export default {
  /** @param {Request} request @param {FloorEnv} env */
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    const media = /^\/twilio\/media\/(?:(openai-realtime|openai-live)\/)?([\w-]+)$/.exec(pathname);
    if (media) return env.RELAY.get(env.RELAY.idFromName(media[2])).fetch(request);
    if (pathname.startsWith("/twilio/status/")) return new Response(null, { status: 204 });
    if (pathname === "/trigger" && request.method === "POST" && env.DB) return trigger(request, env);
    if (pathname === "/") return json({ name: "echo-bench-floor" });
    return json({ error: "not found" }, 404);
  },

  /** @param {MessageBatch} batch */
  async queue(batch) {
    batch.ackAll();
  },
};

/**
 * The minimal route's work in front of a call. Body: `{ key, to, stream_url, status_callback }`.
 * @param {Request} request @param {FloorEnv} env
 */
async function trigger(request, env) {
  const body = /** @type {{ key: string; to: string; stream_url: string; status_callback: string }} */ (await request.json());
  const row = await recordNotification(env.DB, body.key, body.to);
  const call = await env.RELAY.get(env.RELAY.idFromName(body.key)).start(body);
  await env.QUEUE.send({ id: body.key });
  return json({ notification: row, call }, 201);
}

/**
 * @typedef {{ RELAY: DurableObjectNamespace<Relay>; OPENAI_BASE_URL: string; OPENAI_API_KEY: string; FLOOR_DURABLE?: string;
 *   DB?: D1Database; QUEUE: Queue; TWILIO_API_BASE_URL: string; TWILIO_ACCOUNT_SID: string; TWILIO_AUTH_TOKEN: string; TWILIO_FROM_NUMBER: string }} FloorEnv
 */

/** @extends {DurableObject<FloorEnv>} */
export class Relay extends DurableObject {
  /** @param {DurableObjectState} state @param {FloorEnv} env */
  constructor(state, env) {
    super(state, env);
    this.state = state;
    this.env = env;
  }

  /**
   * `/trigger`: stores the call and dials it (the stream and status callback URLs are the caller's).
   * @param {{ key: string; to: string; stream_url: string; status_callback: string }} call
   */
  async start(call) {
    await this.state.storage.put("call", { ...call, createdAt: Date.now() });
    const callSid = await placeStreamCall({
      baseUrl: this.env.TWILIO_API_BASE_URL,
      accountSid: this.env.TWILIO_ACCOUNT_SID,
      authToken: this.env.TWILIO_AUTH_TOKEN,
      from: this.env.TWILIO_FROM_NUMBER,
      to: call.to,
      streamUrl: call.stream_url,
      statusCallback: call.status_callback,
    });
    return { callSid };
  }

  /** @param {Request} request */
  async fetch(request) {
    const key = new URL(request.url).pathname.split("/").pop();
    // FLOOR_DURABLE=1 (`bench calls --floor-durable`): the least a call that must survive its object's
    // restart stores — a record written before the stream is accepted, the object's storage deleted
    // once the stream has closed.
    if (this.env.FLOOR_DURABLE === "1") await this.state.storage.put("call", { key, startedAt: Date.now() });
    if (new URL(request.url).pathname.includes("/openai-live/")) return this.live(/** @type {string} */ (key));
    const pair = new WebSocketPair();
    const twilio = pair[1];
    twilio.accept();
    /** @type {WebSocket | null} */
    let model = null;
    /** @type {string[]} */
    const backlog = [];
    let streamSid = "";
    let greet = false;
    let markCounter = 0;
    /** @type {{ name: number; itemId: string; endMs: number }[]} */
    let pending = [];
    let item = { id: "", contentIndex: 0, sentMs: 0, markedMs: 0, playedMs: 0 };
    let interruptedItemId = "";

    const markSentAudio = () => {
      if (item.sentMs === item.markedMs) return;
      const name = ++markCounter;
      twilio.send(`{"event":"mark","streamSid":"${streamSid}","mark":{"name":"${name}"}}`);
      pending.push({ name, itemId: item.id, endMs: item.sentMs });
      item.markedMs = item.sentMs;
    };

    const connectModel = async () => {
      const response = await fetch(`${this.env.OPENAI_BASE_URL}/realtime?model=gpt-realtime`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${this.env.OPENAI_API_KEY}` } });
      const socket = response.webSocket;
      if (!socket) throw new Error(`model refused: ${response.status}`);
      socket.accept();
      socket.send(
        JSON.stringify({
          type: "session.update",
          session: {
            type: "realtime",
            instructions: `Confirm the appointment. [bench call ${key}]`,
            audio: {
              input: { format: { type: "audio/pcmu" }, transcription: { model: "gpt-4o-mini-transcribe" }, turn_detection: { type: "server_vad", create_response: true, interrupt_response: true } },
              output: { format: { type: "audio/pcmu" } },
            },
          },
        }),
      );
      socket.addEventListener("message", (event) => {
        if (typeof event.data !== "string") return;
        const message = JSON.parse(event.data);
        if (message.type === "session.updated" && !model) {
          model = socket;
          for (const audio of backlog.splice(0)) socket.send(`{"type":"input_audio_buffer.append","audio":${JSON.stringify(audio)}}`);
          if (greet) socket.send('{"type":"response.create"}');
        } else if (message.type === "response.output_audio.delta") {
          if (!streamSid || message.item_id === interruptedItemId) return;
          if (message.item_id !== item.id) {
            markSentAudio();
            item = { id: message.item_id, contentIndex: message.content_index, sentMs: 0, markedMs: 0, playedMs: 0 };
          }
          twilio.send(`{"event":"media","streamSid":"${streamSid}","media":{"payload":${JSON.stringify(message.delta)}}}`);
          item.sentMs += ((message.delta.length / 4) * 3) / 8;
          if (item.sentMs - item.markedMs >= 100) markSentAudio();
        } else if (message.type === "response.done") {
          markSentAudio();
        } else if (message.type === "input_audio_buffer.speech_started") {
          const unplayed = pending[0] ?? (item.sentMs > item.markedMs ? { itemId: item.id } : null);
          if (!unplayed) return;
          twilio.send(`{"event":"clear","streamSid":"${streamSid}"}`);
          socket.send(JSON.stringify({ type: "conversation.item.truncate", item_id: unplayed.itemId, content_index: item.contentIndex, audio_end_ms: Math.floor(unplayed.itemId === item.id ? item.playedMs : 0) }));
          interruptedItemId = unplayed.itemId;
          pending = [];
        }
      });
    };
    connectModel().catch((error) => twilio.close(1011, String(error).slice(0, 100)));

    twilio.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      const message = JSON.parse(event.data);
      if (message.event === "media") {
        if (model) model.send(`{"type":"input_audio_buffer.append","audio":${JSON.stringify(message.media.payload)}}`);
        else backlog.push(message.media.payload);
      } else if (message.event === "mark") {
        const name = Number(message.mark.name);
        while (pending.length > 0 && pending[0].name <= name) {
          const played = /** @type {{ name: number; itemId: string; endMs: number }} */ (pending.shift());
          if (played.itemId === item.id) item.playedMs = played.endMs;
        }
      } else if (message.event === "start") {
        streamSid = message.start.streamSid;
        if (model) model.send('{"type":"response.create"}');
        else greet = true;
      } else if (message.event === "stop") {
        model?.close(1000);
        twilio.close(1000);
      }
    });
    twilio.addEventListener("close", () => {
      model?.close(1000);
      this.ended();
    });
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** The GPT-Live relay. @param {string} key */
  live(key) {
    const pair = new WebSocketPair();
    const twilio = pair[1];
    twilio.accept();
    /** @type {WebSocket | null} */
    let model = null;
    /** @type {string[]} */
    const backlog = [];
    let streamSid = "";
    let greet = false;
    let markCounter = 0;
    let pendingMarks = 0;
    let sentMs = 0;
    let markedMs = 0;
    /** Agent audio waiting for playback to catch up, and when what was sent ends playing (this clock). */
    /** @type {{ payload: string; ms: number }[]} */
    let held = [];
    let playbackEndsAt = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    let timer = null;
    let loudRun = 0;
    let speaking = false;
    let quietRun = 0;

    const mark = () => {
      if (sentMs === markedMs) return;
      twilio.send(`{"event":"mark","streamSid":"${streamSid}","mark":{"name":"${++markCounter}"}}`);
      pendingMarks++;
      markedMs = sentMs;
    };
    const pace = () => {
      const now = Date.now();
      while (held.length > 0) {
        const lead = playbackEndsAt - now;
        if (lead > 0 && lead + held[0].ms > 200) break;
        const next = /** @type {{ payload: string; ms: number }} */ (held.shift());
        playbackEndsAt = Math.max(playbackEndsAt, now) + next.ms;
        twilio.send(`{"event":"media","streamSid":"${streamSid}","media":{"payload":${JSON.stringify(next.payload)}}}`);
        sentMs += next.ms;
        if (sentMs - markedMs >= 100) mark();
      }
      if (held.length === 0) return mark();
      timer ??= setTimeout(() => {
        timer = null;
        pace();
      }, Math.max(20, playbackEndsAt - now));
    };
    /** μ-law energy: at least half the samples loud (neither silence value), as a simple detector. */
    const loud = (/** @type {string} */ payload) => {
      const bytes = atob(payload);
      let count = 0;
      for (let i = 0; i < bytes.length; i++) {
        const byte = bytes.charCodeAt(i);
        if (byte !== 0xff && byte !== 0x7f) count++;
      }
      return count * 2 >= bytes.length;
    };
    const onCallerFrame = (/** @type {string} */ payload) => {
      const speech = loud(payload);
      if (speech !== speaking) {
        if (speech) {
          quietRun = 0;
          if (++loudRun >= 2) {
            speaking = true;
            loudRun = 0;
            const unplayed = held.length > 0 || pendingMarks > 0 || playbackEndsAt > Date.now();
            held = [];
            playbackEndsAt = 0;
            if (unplayed) twilio.send(`{"event":"clear","streamSid":"${streamSid}"}`);
          }
        } else if (++quietRun >= 15) {
          speaking = false;
          quietRun = 0;
        }
      } else {
        loudRun = 0;
        quietRun = 0;
      }
      if (held.length > 0) pace();
    };

    const greeting = '{"type":"session.instructions.append","content":"Greet the callee.","delegation_id":null}';
    const connectModel = async () => {
      const response = await fetch(`${this.env.OPENAI_BASE_URL}/live/sessions`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${this.env.OPENAI_API_KEY}` } });
      const socket = response.webSocket;
      if (!socket) throw new Error(`model refused: ${response.status}`);
      socket.accept();
      socket.send(JSON.stringify({ type: "session.start", session: { model: "gpt-live", instructions: `Confirm the appointment. [bench call ${key}]`, audio: { format: { type: "audio/pcmu", rate: 8000 } } } }));
      socket.addEventListener("message", (event) => {
        if (typeof event.data !== "string") return;
        if (event.data.includes('"session.output_audio.delta"')) {
          const message = JSON.parse(event.data);
          if (!streamSid || speaking) return;
          held.push({ payload: message.delta, ms: ((message.delta.length / 4) * 3) / 8 });
          return pace();
        }
        const message = JSON.parse(event.data);
        if (message.type === "session.started" && !model) {
          model = socket;
          for (const audio of backlog.splice(0)) socket.send(`{"type":"session.input_audio.append","audio":${JSON.stringify(audio)}}`);
          if (greet) socket.send(greeting);
        }
      });
    };
    connectModel().catch((error) => twilio.close(1011, String(error).slice(0, 100)));

    twilio.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      const message = JSON.parse(event.data);
      if (message.event === "media") {
        if (model) model.send(`{"type":"session.input_audio.append","audio":${JSON.stringify(message.media.payload)}}`);
        else backlog.push(message.media.payload);
        onCallerFrame(message.media.payload);
      } else if (message.event === "mark") {
        pendingMarks = Math.max(0, pendingMarks - 1);
      } else if (message.event === "start") {
        streamSid = message.start.streamSid;
        if (model) model.send(greeting);
        else greet = true;
      } else if (message.event === "stop") {
        if (timer) clearTimeout(timer);
        if (model) {
          model.send('{"type":"session.close"}');
          model.close(1000);
        }
        twilio.close(1000);
      }
    });
    twilio.addEventListener("close", () => {
      if (timer) clearTimeout(timer);
      model?.close(1000);
      this.ended();
    });
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** FLOOR_DURABLE: the call's storage is deleted with it. */
  ended() {
    if (this.env.FLOOR_DURABLE === "1") this.state.storage.deleteAll().catch((error) => console.error("floor: deleteAll failed", error));
  }
}
