import { z } from "zod";

/** What the two OpenAI voice engines (Realtime, GPT-Live) read from their sockets the same way. */

/** A server event (JSON text frame); null, logged, for anything else. */
export function parseFrame(engine: string, data: string | ArrayBuffer): Record<string, unknown> | null {
  // Both APIs speak JSON text frames only.
  if (typeof data !== "string") return null;
  try {
    return JSON.parse(data);
  } catch {
    console.warn(`[${engine}] ignored a frame that is not JSON`);
    return null;
  }
}

/** A control event validated at the edge; null, logged, when it does not have the shape we act on. */
export function parseEvent<T>(engine: string, schema: z.ZodType<T>, event: Record<string, unknown>): T | null {
  const parsed = schema.safeParse(event);
  if (parsed.success) return parsed.data;
  console.warn(`[${engine}] ignored a malformed ${String(event.type)} event: ${parsed.error.message}`);
  return null;
}

/**
 * Opens an engine's WebSocket (`fetch` with `Upgrade`, as a Worker must) and accepts it, its frames
 * going to `onMessage` and its end, with what is known of why, to `onGone`. Rejects with the
 * server's refusal, or with `signal`'s reason once it aborts.
 */
export async function openSocket(
  service: string,
  url: string,
  apiKey: string,
  signal: AbortSignal,
  handlers: { onMessage(data: string | ArrayBuffer): void; onGone(detail: string): void },
): Promise<WebSocket> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { Upgrade: "websocket", Authorization: `Bearer ${apiKey}` }, signal });
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  }
  const socket = response.webSocket;
  if (response.status !== 101 || !socket) throw new Error(`${service} refused the connection: ${response.status} ${await refusalMessage(response)}`);
  socket.accept();
  socket.addEventListener("message", (event) => handlers.onMessage(event.data));
  socket.addEventListener("close", (event) => handlers.onGone(`code ${event.code}${event.reason ? `: ${event.reason}` : ""}`));
  socket.addEventListener("error", (event) => handlers.onGone(`socket error: ${event.message}`));
  return socket;
}

/** OpenAI's error body (`{"error":{"message":…}}`) of a refused upgrade when there is one, else the start of the text. */
async function refusalMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    return z.object({ error: z.object({ message: z.string() }) }).parse(JSON.parse(text)).error.message;
  } catch {
    return text.slice(0, 200);
  }
}
