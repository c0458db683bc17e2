// @ts-check
/**
 * A fake webhook receiver (host receiver.test) that records every request's method, headers and raw
 * body. `POST /<inbox>` answers 200 unless the inbox name starts with a behaviour:
 *   `status-<code>[-…]`        always answers <code>
 *   `fail-<n>-…`               answers 500 to the first <n> requests, then 200
 *   `retry-after-<seconds>-…`  answers 503 with `Retry-After: <seconds>`
 *   `sleep-<ms>-…`             waits <ms> before answering 200
 *   `redirect-…`               answers 302 to another inbox
 *   `big-…`                    answers 200 with a 10 000-character body
 * `GET /_inbox/<inbox>` returns what arrived, in order.
 */

/** @type {Map<string, Array<{ method: string, url: string, headers: Record<string, string>, body: string, received_at: number }>>} */
const inboxes = new Map();

/** @param {Request} request */
export async function receiver(request) {
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
  return receiverAnswer(inbox, list.length);
}

/**
 * @param {string} inbox
 * @param {number} count requests this inbox has received, this one included
 * @returns {Promise<Response>}
 */
async function receiverAnswer(inbox, count) {
  const status = /^status-(\d{3})(?:-|$)/.exec(inbox);
  if (status) return new Response("receiver says no", { status: Number(status[1]) });
  const fail = /^fail-(\d+)-/.exec(inbox);
  if (fail && count <= Number(fail[1])) return new Response(`failure ${count} of ${fail[1]}`, { status: 500 });
  const retryAfter = /^retry-after-(\d+)-/.exec(inbox);
  if (retryAfter) return new Response("busy", { status: 503, headers: { "retry-after": retryAfter[1] ?? "0" } });
  const sleep = /^sleep-(\d+)-/.exec(inbox);
  if (sleep) await new Promise((resolve) => setTimeout(resolve, Number(sleep[1])));
  if (inbox.startsWith("redirect-")) return new Response(null, { status: 302, headers: { location: `http://receiver.test/${inbox}-target` } });
  if (inbox.startsWith("big-")) return new Response("x".repeat(10_000));
  return new Response("ok");
}
