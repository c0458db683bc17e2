import type { Config, Bindings } from "./env";
import type { Database } from "./db/client";

/** Who is calling and which tenant every query is scoped to. */
export interface AuthContext {
  kind: "api_key" | "user";
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
  };
}
