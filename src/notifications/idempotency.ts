import { z } from "@hono/zod-openapi";
import { and, eq, gt, lte, type Placeholder } from "drizzle-orm";
import type { Database } from "../db/client";
import { prepared, preparedInsert, runBatch, runStatement, setTo } from "../db/prepared";
import { idempotencyKeys } from "../db/schema";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { nowIso } from "../lib/ids";

/**
 * `Idempotency-Key` on notification triggers: the same key and body within 24 h replays the first
 * response and places no second call; the same key with another body is a 409.
 */

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** The header, for the routes that take it (a trigger, a batch). */
export const IdempotencyHeaders = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x20-\x7e]+$/, "must be printable ASCII")
    .optional()
    .openapi({ description: "Retries with the same key and body within 24 h return the first response and place no second call (or batch)" }),
});


/** JSON with object keys sorted at every level, so equal bodies hash equally. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const isKey = (p: Record<"projectId" | "key", Placeholder>) => and(eq(idempotencyKeys.projectId, p.projectId), eq(idempotencyKeys.key, p.key));
/** An expired key is forgotten before it is looked up, so it can be used again. */
const expiredKeyDelete = prepared(["projectId", "key", "now"], (db, p) => db.delete(idempotencyKeys).where(and(isKey(p), lte(idempotencyKeys.expiresAt, p.now))));
const unexpiredKeyRead = prepared(["projectId", "key", "now"], (db, p) => db.select().from(idempotencyKeys).where(and(isKey(p), gt(idempotencyKeys.expiresAt, p.now))).limit(1));
const keyInsert = preparedInsert(idempotencyKeys, (db, row) => db.insert(idempotencyKeys).values(row));
const responseUpdate = prepared(["projectId", "key", "responseBody"], (db, p) => db.update(idempotencyKeys).set({ responseBody: setTo(p.responseBody) }).where(isKey(p)));
const keyDelete = prepared(["projectId", "key"], (db, p) => db.delete(idempotencyKeys).where(isKey(p)));

/** One request's key: what it was sent with; the statement that records it (in the caller's batch), and what replaces or releases it. */
export class IdempotentRequest<Response> {
  private constructor(
    private readonly db: Database,
    private readonly projectId: string,
    readonly key: string,
    private readonly requestHash: string,
  ) {}

  static async of<Response>(db: Database, projectId: string, key: string, body: unknown): Promise<IdempotentRequest<Response>> {
    return new IdempotentRequest<Response>(db, projectId, key, await sha256Hex(canonicalJson(body)));
  }

  /** The first response to this key, or null when it is new (an expired key is forgotten first). */
  async replay(): Promise<Response | null> {
    const [, [row]] = await runBatch(this.db, this.replayStatements());
    return this.replayOf(row);
  }

  /**
   * `replay()` as statements, for a caller that reads more in the same round trip: the second
   * one's rows go to `replayOf`.
   */
  replayStatements() {
    return [expiredKeyDelete.bind(this.db, this.lookup()), this.unexpired()] as const;
  }

  /** After a failed insert: the response a racing request with the same key stored, if that is why. */
  async storedReplay(): Promise<Response | null> {
    const [row] = await runStatement(this.unexpired());
    return this.replayOf(row);
  }

  /** Records the key with its response; in the notification's own batch, so two racing requests make one call. */
  record(notificationId: string, response: Response, now: string) {
    const expiresAt = new Date(Date.parse(now) + IDEMPOTENCY_TTL_MS).toISOString();
    return keyInsert.bind(this.db, {
      projectId: this.projectId,
      key: this.key,
      requestHash: this.requestHash,
      notificationId,
      responseStatus: 201,
      responseBody: JSON.stringify(response),
      createdAt: now,
      expiresAt,
    });
  }

  /** What a replay answers from now on. */
  async replaceResponse(response: Response): Promise<void> {
    await runStatement(responseUpdate.bind(this.db, { projectId: this.projectId, key: this.key, responseBody: JSON.stringify(response) }));
  }

  /** Frees the key, so a retry with it places a new call. */
  async release(): Promise<void> {
    await runStatement(keyDelete.bind(this.db, { projectId: this.projectId, key: this.key }));
  }

  private unexpired() {
    return unexpiredKeyRead.bind(this.db, this.lookup());
  }

  private lookup() {
    return { projectId: this.projectId, key: this.key, now: nowIso() };
  }

  /** The stored response of a row `replayStatements` read (null: none), or a 409 when the body differs. */
  replayOf(row: typeof idempotencyKeys.$inferSelect | undefined): Response | null {
    if (!row) return null;
    if (row.requestHash !== this.requestHash) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was already used with a different request body");
    return JSON.parse(row.responseBody) as Response;
  }
}
