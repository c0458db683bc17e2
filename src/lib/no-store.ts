import type { Context } from "hono";

/**
 * Marks a response that carries a secret (tokens, an API key, a webhook signing secret): no browser
 * or cache on the way may keep a copy (RFC 9111, 5.2.2.5).
 */
export function noStore(c: Pick<Context, "header">): void {
  c.header("Cache-Control", "no-store");
}
