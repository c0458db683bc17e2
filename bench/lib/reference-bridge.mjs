// @ts-check
// A minimal Node.js stand-in for our Worker's call path, run in the harness process itself
// (`--target=reference`). It places the call on the fake Twilio, opens and configures the model
// session on the fake OpenAI, and relays audio both ways with marks, clear and truncate. It is not
// a product: it measures the harness's own floor (fakes, sockets, event loop), so that the
// Worker's numbers can be read against it.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import WebSocket, { WebSocketServer } from "ws";
import { placeStreamCall } from "./place-call.mjs";
import { payloadMs } from "./audio.mjs";
import { closeServer, listenLocal } from "./net.mjs";

/**
 * @param {{ twilioBaseUrl: string; accountSid: string; authToken: string; fromNumber: string; openaiBaseUrl: string; openaiKey: string; model: string }} config
 */
export async function startReferenceBridge(config) {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  /** @type {Map<string, { instructions: string; model: WebSocket; modelReady: Promise<void> }>} */
  const calls = new Map();
  const server = createServer((req, res) => {
    // Status callbacks: accepted (the fake signs them; the Worker checks that, not this floor).
    req.resume();
    req.on("end", () => {
      res.writeHead(204);
      res.end();
    });
  });
  server.on("upgrade", (req, socket, head) => {
    const id = /^\/twilio\/media\/([\w-]+)$/.exec(req.url ?? "")?.[1];
    const call = id ? calls.get(id) : undefined;
    if (!id || !call) return socket.destroy();
    wss.handleUpgrade(req, socket, head, (twilio) => bridge(id, call, twilio));
  });
  const port = await listenLocal(server);

  /** @param {string} id @param {{ instructions: string; model: WebSocket; modelReady: Promise<void> }} call @param {WebSocket} twilio */
  const bridge = async (id, call, twilio) => {
    const { model } = call;
    let streamSid = "";
    /** Agent audio in flight: item, ms sent; marks say how much has played. */
    let currentItem = { id: "", contentIndex: 0, sentMs: 0, playedMs: 0 };
    let markCounter = 0;
    /** @type {Map<string, { itemId: string; endMs: number }>} */
    const marks = new Map();
    let responseActive = false;
    /** @type {string[]} caller audio that arrived before the model was ready */
    const buffered = [];
    let ready = false;
    call.modelReady.then(() => {
      ready = true;
      for (const audio of buffered.splice(0)) model.send(JSON.stringify({ type: "input_audio_buffer.append", audio }));
    });

    model.on("message", (data) => {
      const event = JSON.parse(String(data));
      if (event.type === "response.output_audio.delta") {
        if (event.item_id !== currentItem.id) currentItem = { id: event.item_id, contentIndex: event.content_index, sentMs: 0, playedMs: 0 };
        twilio.send(JSON.stringify({ event: "media", streamSid, media: { payload: event.delta } }));
        currentItem.sentMs += payloadMs(event.delta);
        const name = `m${++markCounter}`;
        marks.set(name, { itemId: currentItem.id, endMs: currentItem.sentMs });
        twilio.send(JSON.stringify({ event: "mark", streamSid, mark: { name } }));
      } else if (event.type === "input_audio_buffer.speech_started") {
        twilio.send(JSON.stringify({ event: "clear", streamSid }));
        if (currentItem.id && currentItem.playedMs < currentItem.sentMs) {
          model.send(JSON.stringify({ type: "conversation.item.truncate", item_id: currentItem.id, content_index: currentItem.contentIndex, audio_end_ms: Math.floor(currentItem.playedMs) }));
          currentItem.sentMs = currentItem.playedMs;
        }
      } else if (event.type === "response.created") {
        responseActive = true;
      } else if (event.type === "response.done") {
        responseActive = false;
      }
    });

    twilio.on("message", (data) => {
      const message = JSON.parse(String(data));
      if (message.event === "media") {
        if (ready) model.send(JSON.stringify({ type: "input_audio_buffer.append", audio: message.media.payload }));
        else buffered.push(message.media.payload);
      } else if (message.event === "mark") {
        const mark = marks.get(message.mark.name);
        marks.delete(message.mark.name);
        if (mark && mark.itemId === currentItem.id) currentItem.playedMs = Math.max(currentItem.playedMs, Math.min(mark.endMs, currentItem.sentMs));
      } else if (message.event === "start") {
        streamSid = message.start.streamSid;
        call.modelReady.then(() => {
          if (!responseActive) model.send(JSON.stringify({ type: "response.create" }));
        });
      } else if (message.event === "stop") {
        model.close();
      }
    });
    twilio.on("close", () => {
      calls.delete(id);
      if (model.readyState === WebSocket.OPEN) model.close();
    });
  };

  return {
    port,
    /** Opens the model session, then places the call. */
    async place(/** @type {{ to: string; instructions: string }} */ input) {
      const id = randomBytes(8).toString("hex");
      const model = new WebSocket(`${config.openaiBaseUrl.replace(/^http/, "ws")}/realtime?model=${encodeURIComponent(config.model)}`, {
        headers: { authorization: `Bearer ${config.openaiKey}` },
        perMessageDeflate: false,
      });
      const modelReady = new Promise((resolve, reject) => {
        model.once("error", reject);
        model.on("message", (data) => {
          if (JSON.parse(String(data)).type === "session.updated") resolve(undefined);
        });
        model.once("open", () =>
          model.send(
            JSON.stringify({
              type: "session.update",
              session: {
                type: "realtime",
                instructions: input.instructions,
                audio: {
                  input: { format: { type: "audio/pcmu" }, transcription: { model: "gpt-4o-mini-transcribe" }, turn_detection: { type: "server_vad", create_response: true, interrupt_response: true } },
                  output: { format: { type: "audio/pcmu" }, voice: "alloy" },
                },
              },
            }),
          ),
        );
      }).then(() => undefined);
      calls.set(id, { instructions: input.instructions, model, modelReady });
      await placeStreamCall({
        baseUrl: config.twilioBaseUrl,
        accountSid: config.accountSid,
        authToken: config.authToken,
        from: config.fromNumber,
        to: input.to,
        streamUrl: `ws://127.0.0.1:${port}/twilio/media/${id}`,
        statusCallback: `http://127.0.0.1:${port}/twilio/status/${id}`,
      });
      return id;
    },
    async close() {
      for (const client of wss.clients) client.terminate();
      for (const call of calls.values()) call.model.terminate();
      server.closeAllConnections();
      await closeServer(server);
    },
  };
}
