import { z } from "@hono/zod-openapi";
import { lt, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import type { Context } from "hono";
import { ApiError } from "../errors";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Decimal digits only: coercing with Number() would also read `0x10`, `1e1`, `+5` and ` 5`, so one
 * page size could be spelled many ways (and caches and logs would see them as different).
 */
const PageSize = z
  .string()
  .regex(/^[0-9]+$/, "must be a whole number from 1 to 200, in decimal digits")
  .transform(Number)
  .pipe(z.number().int().min(1).max(200))
  .default(50)
  .openapi({ type: "integer", minimum: 1, maximum: 200, default: 50, description: "Page size (1–200 in decimal digits, default 50)" });

export const PaginationQuery = z.object({
  limit: PageSize,
  cursor: z.string().optional().openapi({ description: "The X-Next-Cursor of the previous page" }),
});

/** Cursors are the last id of a page (UUID v7 ids sort by time), base64url-encoded to stay opaque. */
export function encodeCursor(id: string): string {
  return btoa(id).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined || cursor === "") return undefined;
  const invalid = () => new ApiError("validation_error", "Invalid cursor", { details: [{ path: "cursor", message: "not a cursor returned by this API" }] });
  let id: string;
  try {
    id = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    throw invalid();
  }
  if (!UUID.test(id)) throw invalid();
  return id;
}

/** The rows of the page after `cursor` (older ids: they sort by time); no condition on the first page. */
export function afterCursor(id: SQLiteColumn, cursor: string | undefined): SQL | undefined {
  const after = decodeCursor(cursor);
  return after ? lt(id, after) : undefined;
}

/** The page of `limit + 1` rows newest first; the next page's cursor goes in X-Next-Cursor. */
export function pageWithCursorHeader<T extends { id: string }>(c: Context, rows: T[], limit: number): T[] {
  const page = paginate(rows, limit);
  if (page.nextCursor) c.header("X-Next-Cursor", page.nextCursor);
  return page.items;
}

/** Given `limit + 1` rows newest first, returns the page and the cursor of the next one. */
export function paginate<T extends { id: string }>(rows: T[], limit: number): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.id) : null };
}
