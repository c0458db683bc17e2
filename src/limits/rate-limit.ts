import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context";
import { ApiError } from "../errors";
import type { RateLimitDecision } from "./rate-limiter";

/**
 * The API's rate limits (API.md "Limits"), each counted exactly by a `RateLimiter` object named by
 * what it counts. Every response of a limited route says where its caller stands in
 * `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the window
 * ends); a 429 adds `Retry-After` (the same seconds).
 */

/** The object counting `counted`, e.g. `api-key:<id>`. */
function limiter(c: Context<AppEnv>, counted: string) {
  return c.env.RATE_LIMITER.get(c.env.RATE_LIMITER.idFromName(counted));
}

/** Where several limits apply (a trigger, a login), the headers show the one with the fewest requests left. */
function showDecision(c: Context<AppEnv>, decision: RateLimitDecision): void {
  const shown = c.get("rateLimit");
  if (shown && shown.remaining < decision.remaining) return;
  c.set("rateLimit", decision);
  c.header("X-RateLimit-Limit", String(decision.limit));
  c.header("X-RateLimit-Remaining", String(decision.remaining));
  c.header("X-RateLimit-Reset", String(decision.resetSeconds));
}

function enforce(c: Context<AppEnv>, decision: RateLimitDecision, tooMany: string): void {
  showDecision(c, decision);
  if (decision.allowed) return;
  c.header("Retry-After", String(decision.resetSeconds));
  throw new ApiError("rate_limited", `${tooMany}; try again in ${decision.resetSeconds} s`);
}

/** `/api/v1/*`, after authentication: per API key, or per user and project for a Bearer token. */
export const limitPerCaller = createMiddleware<AppEnv>(async (c, next) => {
  const { auth, config } = c.var;
  const counted = auth.kind === "api_key" ? `api-key:${auth.callerId}` : `user:${auth.callerId}:project:${auth.projectId}`;
  const what = auth.kind === "api_key" ? "requests with this API key" : "requests by this user in this project";
  enforce(c, await limiter(c, counted).take(config.rateLimits.perCaller, false), `Too many ${what}`);
  await next();
});

/** `/auth/*`: per client IP, before any body is read or password hashed. */
export const limitPerClientIp = createMiddleware<AppEnv>(async (c, next) => {
  const network = clientNetwork(c.req.header("cf-connecting-ip"));
  enforce(c, await limiter(c, `auth-ip:${network}`).take(c.var.config.rateLimits.authPerIp, false), "Too many requests from this address");
  await next();
});

/** `POST /api/v1/notifications`: the project's budget of triggers, before any D1 work or dialling. */
export const limitNotificationTriggers = createMiddleware<AppEnv>(async (c, next) => {
  const { auth, config } = c.var;
  enforce(c, await limiter(c, `notifications:${auth.projectId}`).take(config.rateLimits.notificationsPerProject, false), "Too many notifications triggered in this project");
  await next();
});

export interface LoginAttempt {
  /** The password was wrong (or the account unknown): the attempt stays counted. */
  failed(): void;
  /** The password was right: the account's count starts again. */
  succeeded(): Promise<void>;
}

/**
 * Counts a login attempt against its email before the password is hashed, so a locked account costs
 * no PBKDF2 and concurrent guesses cannot slip past the count. Until it succeeds an attempt counts as
 * failed; unknown emails are counted alike, so the limit tells nothing about which accounts exist.
 */
export async function countLoginAttempt(c: Context<AppEnv>, email: string): Promise<LoginAttempt> {
  const account = limiter(c, `failed-logins:${email}`);
  const decision = await account.take(c.var.config.rateLimits.failedLoginsPerAccount, true);
  if (!decision.allowed) enforce(c, decision, "Too many failed logins for this account");
  return { failed: () => showDecision(c, decision), succeeded: () => account.clear() };
}

/** What a client IP is counted as: IPv4 as it is, IPv6 by its /64 (one subscriber's network). */
function clientNetwork(ip: string | undefined): string {
  if (!ip) return "unknown";
  if (!ip.includes(":")) return ip;
  const [head = "", tail] = ip.toLowerCase().split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const omitted = tail === undefined ? 0 : Math.max(0, 8 - headGroups.length - tailGroups.length);
  const groups = [...headGroups, ...Array<string>(omitted).fill("0"), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}
