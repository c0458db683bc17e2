import { DurableObject } from "cloudflare:workers";
import type { Bindings, RateLimitRule } from "../env";

/** What one counted request learns: whether it may go on, and what the X-RateLimit-* headers say. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Requests left in the window after this one. */
  remaining: number;
  /** Whole seconds until the window ends and the count starts again (at least 1). */
  resetSeconds: number;
}

interface CountWindow {
  count: number;
  endsAtMs: number;
}

const STORED_WINDOW = "window";

/**
 * One rate-limited thing (an API key, a client IP, an account's logins, a project's triggers), one
 * object, named by what it counts. A single writer counts exactly, however many requests race.
 * Short windows live in memory (an eviction forgives at most one of them); a `durable` count —
 * failed logins — is kept in the object's storage and deleted by the alarm once its window is over.
 */
export class RateLimiter extends DurableObject<Bindings> {
  private window: CountWindow | undefined;

  /** Counts a request if the rule allows it; a refused request is not counted. */
  async take(rule: RateLimitRule, durable: boolean): Promise<RateLimitDecision> {
    const now = Date.now();
    const current = durable ? this.ctx.storage.kv.get<CountWindow>(STORED_WINDOW) : this.window;
    const startsNow = current === undefined || current.endsAtMs <= now;
    let window = startsNow ? { count: 0, endsAtMs: now + rule.windowSeconds * 1000 } : current;
    const allowed = window.count < rule.limit;
    if (allowed) window = { ...window, count: window.count + 1 };
    // Counted before the first await: concurrent requests see each other's counts.
    if (durable) this.ctx.storage.kv.put(STORED_WINDOW, window);
    else this.window = window;
    if (durable && startsNow) await this.ctx.storage.setAlarm(window.endsAtMs);
    return {
      allowed,
      limit: rule.limit,
      remaining: Math.max(0, rule.limit - window.count),
      resetSeconds: Math.max(1, Math.ceil((window.endsAtMs - now) / 1000)),
    };
  }

  /** Starts the count again (a successful login). */
  async clear(): Promise<void> {
    this.window = undefined;
    await this.ctx.storage.deleteAll();
  }

  override async alarm(): Promise<void> {
    const window = this.ctx.storage.kv.get<CountWindow>(STORED_WINDOW);
    if (!window || window.endsAtMs <= Date.now()) await this.ctx.storage.deleteAll();
  }
}
