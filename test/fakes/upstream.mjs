// @ts-check
/**
 * The outside world for tests: every outbound fetch and WebSocket upgrade of the Worker under test
 * lands here (miniflare `outboundService`), and is answered by the fake of the host it was meant for
 * (DNS-over-HTTPS lookups of the webhook URL guard too).
 * Unknown hosts get a 502, so a test never reaches the real internet by accident.
 */
import { receiver } from "./receiver.mjs";
import { twilio } from "./twilio.mjs";
import { openaiRealtime } from "./openai-realtime.mjs";
import { openaiLive } from "./openai-live.mjs";
import { openaiChat } from "./openai-chat.mjs";
import { dns } from "./dns.mjs";

/** @type {Record<string, (request: Request) => Promise<Response>>} */
const FAKES = {
  "receiver.test": receiver,
  "api.twilio.com": twilio,
  "api.openai.com": openai,
  "cloudflare-dns.com": dns,
};

/**
 * api.openai.com by path: the Realtime socket and its fake's controls to the Realtime fake, the
 * GPT-Live socket and its controls to the GPT-Live fake, the rest of the REST API to the
 * chat-completions fake.
 * @param {Request} request
 */
async function openai(request) {
  const { pathname } = new URL(request.url);
  if (pathname.startsWith("/v1/realtime") || pathname.startsWith("/_fake/realtime")) return openaiRealtime(request);
  if (pathname.startsWith("/v1/live") || pathname.startsWith("/_fake/live")) return openaiLive(request);
  return openaiChat(request);
}

export default {
  /** @param {Request} request */
  async fetch(request) {
    const { hostname } = new URL(request.url);
    const fake = FAKES[hostname];
    if (fake) return fake(request);
    return new Response(`fake-upstream: no fake for ${hostname}`, { status: 502 });
  },
};
