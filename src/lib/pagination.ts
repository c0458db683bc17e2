import { z } from "@hono/zod-openapi";
import { ApiError } from "../errors";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const PaginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ description: "Page size (1–200, default 50)" }),
  cursor: z.string().optional().openapi({ description: "The X-Next-Cursor of the previous page" }),
});

/** Cursors are the last id of a page (UUID v7 ids sort by time), base64url-encoded to stay opaque. */
export function encodeCursor(id: string): string {
  return btoa(id).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined || cursor === "") return undefined;
  let id: string;
  try {
    id = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    throw ApiError.badRequest("Invalid cursor", [{ path: "cursor", message: "not a cursor returned by this API" }]);
  }
  if (!UUID.test(id)) throw ApiError.badRequest("Invalid cursor", [{ path: "cursor", message: "not a cursor returned by this API" }]);
  return id;
}

/** Given `limit + 1` rows newest first, returns the page and the cursor of the next one. */
export function paginate<T extends { id: string }>(rows: T[], limit: number): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.id) : null };
}
