// @ts-check
/**
 * The outside world for tests: every outbound fetch and WebSocket upgrade of the Worker under test
 * lands here (miniflare `outboundService`), and is answered by the fake of the host it was meant for.
 * Unknown hosts get a 502, so a test never reaches the real internet by accident.
 */
import { receiver } from "./receiver.mjs";

/** @type {Record<string, (request: Request) => Promise<Response>>} */
const FAKES = {
  "receiver.test": receiver,
};

export default {
  /** @param {Request} request */
  async fetch(request) {
    const { hostname } = new URL(request.url);
    const fake = FAKES[hostname];
    if (fake) return fake(request);
    return new Response(`fake-upstream: no fake for ${hostname}`, { status: 502 });
  },
};
