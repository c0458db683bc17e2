import { drizzle } from "drizzle-orm/d1";

export type Database = ReturnType<typeof createDb>;

/**
 * Queries are built with the query builder on the tables of ./schema, so drizzle is not given the
 * schema: with it, every database handle (one a request, one a call object) would first build the
 * relational-query configuration of every table, which nothing here uses.
 */
export function createDb(d1: D1Database) {
  return drizzle(d1);
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
