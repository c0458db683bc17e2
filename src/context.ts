import type { Config, Bindings } from "./env";
import type { Database } from "./db/client";
import type { RateLimitDecision } from "./limits/rate-limiter";

/** Who is calling and which tenant every query is scoped to. */
export interface AuthContext {
  kind: "api_key" | "user";
  /** The API key's id or the user's id: whose requests are counted together. */
  callerId: string;
  projectId: string;
  businessId: string;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: {
    requestId: string;
    config: Config;
    db: Database;
    auth: AuthContext;
    /** The rate limit the X-RateLimit-* headers show; unset on routes no limit applies to. */
    rateLimit: RateLimitDecision | undefined;
  };
}
