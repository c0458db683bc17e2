import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Database = ReturnType<typeof createDb>;

export function createDb(d1: D1Database) {
  return drizzle(d1, { schema });
}

/**
 * Whether a unique index (`columns` as SQLite names them, e.g. "users.email") refused the write;
 * drizzle wraps single-query errors, so the causes are looked at too.
 */
export function violatesUnique(err: unknown, columns: string): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e.message.includes(`UNIQUE constraint failed: ${columns}`)) return true;
  }
  return false;
}
