// @ts-check
/**
 * The outside world for tests: every outbound fetch of the Worker under test lands here
 * (miniflare `outboundService`). Hosts:
 *   - receiver.test: a webhook receiver that records every request's method, headers and raw
 *     body. `POST /<inbox>` answers 200 unless the inbox name says otherwise
 *     (`status-<code>` answers that code). `GET /_inbox/<inbox>` returns what arrived, in order.
 */

/** @type {Map<string, Array<{ method: string, url: string, headers: Record<string, string>, body: string, received_at: number }>>} */
const inboxes = new Map();

/** @param {Request} request */
async function receiver(request) {
  const url = new URL(request.url);
  const [first, second] = url.pathname.split("/").filter(Boolean);
  if (request.method === "GET" && first === "_inbox" && second) {
    return Response.json(inboxes.get(second) ?? []);
  }
  const inbox = first ?? "default";
  const body = await request.text();
  const headers = Object.fromEntries(request.headers);
  const list = inboxes.get(inbox) ?? [];
  list.push({ method: request.method, url: request.url, headers, body, received_at: Date.now() });
  inboxes.set(inbox, list);
  const status = /^status-(\d{3})$/.exec(inbox);
  return new Response(status ? "receiver says no" : "ok", { status: status ? Number(status[1]) : 200 });
}

export default {
  /** @param {Request} request */
  async fetch(request) {
    const { hostname } = new URL(request.url);
    if (hostname === "receiver.test") return receiver(request);
    return new Response(`fake-upstream: no fake for ${hostname}`, { status: 502 });
  },
};
