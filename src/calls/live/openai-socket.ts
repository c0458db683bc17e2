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

/** OpenAI's error body (`{"error":{"message":…}}`) of a refused upgrade when there is one, else the start of the text. */
export async function refusalMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    return z.object({ error: z.object({ message: z.string() }) }).parse(JSON.parse(text)).error.message;
  } catch {
    return text.slice(0, 200);
  }
}
