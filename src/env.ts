import { z } from "zod";
import { DEFAULT_MODEL_PRICES, modelPriceSchema, type ModelPrices } from "./calls/usage";

/** The optional secrets and vars this Worker reads; `getConfig` validates them. */
export interface Vars {
  ENVIRONMENT?: string;
  JWT_SECRET?: string;
  PUBLIC_BASE_URL?: string;
  TWILIO_ACCOUNT_SID?: string;
  TWILIO_AUTH_TOKEN?: string;
  TWILIO_API_KEY_SID?: string;
  TWILIO_API_KEY_SECRET?: string;
  TWILIO_FROM_NUMBER?: string;
  TWILIO_API_BASE_URL?: string;
  /** Calls the deployment starts per second at most, across all projects (Twilio's default is 1). */
  TWILIO_CPS?: string;
  OPENAI_API_KEY?: string;
  OPENAI_BASE_URL?: string;
  /** The speech-to-speech model of live calls on the openai-realtime engine. */
  OPENAI_REALTIME_MODEL?: string;
  /** The model of live calls on the openai-live engine (GPT-Live). */
  OPENAI_LIVE_MODEL?: string;
  /** The Responses model GPT-Live delegates tool calls to. */
  OPENAI_DELEGATION_MODEL?: string;
  /** Transcribes the caller's audio during live calls. */
  OPENAI_TRANSCRIPTION_MODEL?: string;
  /** Extracts `call_result` from the transcript with structured outputs. */
  OPENAI_EXTRACTION_MODEL?: string;
  /** JSON prices by model name (USD per 1M tokens by kind, per session minute), over `DEFAULT_MODEL_PRICES`: a call's `estimated_cost_usd`. */
  MODEL_PRICES?: string;
  /** The most an extraction may take, retries included (default 60 000 ms); then the result is null, saying why. */
  OPENAI_EXTRACTION_TIMEOUT_MS?: string;
  /** Multiplies the simulator's pacing: 1 = a few seconds per call, 0.01 = tests. */
  SIMULATOR_TIME_SCALE?: string;
  /** Comma-separated seconds between webhook delivery attempts. */
  WEBHOOK_RETRY_SCHEDULE?: string;
  WEBHOOK_TIMEOUT_MS?: string;
  /** An endpoint failing every attempt for this many seconds is disabled (default 5 days). */
  WEBHOOK_DISABLE_AFTER_SECONDS?: string;
  /** Rate limits, each `<requests>/<window>` (e.g. `100/10s`, `60/1m`, `10/15m`): see `DEFAULT_RATE_LIMITS`. */
  RATE_LIMIT_API_KEY?: string;
  RATE_LIMIT_AUTH_IP?: string;
  RATE_LIMIT_FAILED_LOGINS?: string;
  RATE_LIMIT_NOTIFICATIONS?: string;
  /** The DNS-over-HTTPS JSON endpoint that resolves webhook hosts in production (default Cloudflare's). */
  DNS_RESOLVER_URL?: string;
  /** Days a call recording is kept before the cron deletes it (default 30). */
  RECORDING_RETENTION_DAYS?: string;
}

/** The bindings wrangler.toml declares, as `npm run types` generates them (worker-configuration.d.ts), and the vars. */
export interface Bindings extends Env, Omit<Vars, "ENVIRONMENT"> {}

const DEV_JWT_SECRET = "development-only-jwt-secret-do-not-use-in-production";

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === "" ? undefined : value.trim()));

/** A JSON text, parsed; its shape is checked by what it is piped to. */
const jsonText = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    ctx.addIssue({ code: "custom", message: "not valid JSON" });
    return z.NEVER;
  }
});

const optionalNumber = optionalText.transform((value) => (value === undefined ? undefined : Number(value)));

/** At most `limit` requests in each fixed window of `windowSeconds`, which starts at the first request counted. */
export interface RateLimitRule {
  limit: number;
  windowSeconds: number;
}

const WINDOW_UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;
const RATE_LIMIT_RULE = /^(\d+)\s*\/\s*(\d+)\s*([smh])$/;

/** `<requests>/<window>`: `100/10s`, `60/1m`, `10/15m`, `1000/1h`. */
const rateLimitRule = z
  .string()
  .regex(RATE_LIMIT_RULE, "<requests>/<window>, e.g. 100/10s, 60/1m or 10/15m")
  .transform((text): RateLimitRule => {
    const [, limit = "", amount = "", unit = "s"] = RATE_LIMIT_RULE.exec(text) ?? [];
    return { limit: Number(limit), windowSeconds: Number(amount) * WINDOW_UNIT_SECONDS[unit as keyof typeof WINDOW_UNIT_SECONDS] };
  })
  .refine((rule) => rule.limit >= 1 && rule.limit <= 1_000_000, "between 1 and 1,000,000 requests")
  .refine((rule) => rule.windowSeconds >= 1 && rule.windowSeconds <= 24 * 3600, "a window between 1 s and 24 h");

const rawConfigSchema = z.object({
  ENVIRONMENT: z.enum(["development", "test", "production"]).default("production"),
  JWT_SECRET: optionalText,
  PUBLIC_BASE_URL: optionalText.pipe(z.url().optional()),
  TWILIO_ACCOUNT_SID: optionalText,
  TWILIO_AUTH_TOKEN: optionalText,
  TWILIO_API_KEY_SID: optionalText,
  TWILIO_API_KEY_SECRET: optionalText,
  TWILIO_FROM_NUMBER: optionalText,
  TWILIO_API_BASE_URL: optionalText.pipe(z.url().optional()),
  TWILIO_CPS: optionalNumber.pipe(z.number().positive().max(1000).optional()),
  OPENAI_API_KEY: optionalText,
  OPENAI_BASE_URL: optionalText.pipe(z.url().optional()),
  OPENAI_REALTIME_MODEL: optionalText,
  OPENAI_LIVE_MODEL: optionalText,
  OPENAI_DELEGATION_MODEL: optionalText,
  OPENAI_TRANSCRIPTION_MODEL: optionalText,
  OPENAI_EXTRACTION_MODEL: optionalText,
  OPENAI_EXTRACTION_TIMEOUT_MS: optionalNumber.pipe(z.number().int().min(100).max(300_000).optional()),
  MODEL_PRICES: optionalText.pipe(jsonText.pipe(z.record(z.string().min(1), modelPriceSchema)).optional()),
  SIMULATOR_TIME_SCALE: optionalNumber.pipe(z.number().positive().max(100).optional()),
  WEBHOOK_RETRY_SCHEDULE: optionalText.pipe(
    z
      .string()
      .regex(/^\d+(\s*,\s*\d+)*$/, "a comma-separated list of whole seconds")
      .transform((text) => text.split(",").map((part) => Number(part.trim())))
      .optional(),
  ),
  WEBHOOK_TIMEOUT_MS: optionalNumber.pipe(z.number().int().min(100).max(60_000).optional()),
  WEBHOOK_DISABLE_AFTER_SECONDS: optionalNumber.pipe(z.number().int().min(1).optional()),
  RATE_LIMIT_API_KEY: optionalText.pipe(rateLimitRule.optional()),
  RATE_LIMIT_AUTH_IP: optionalText.pipe(rateLimitRule.optional()),
  RATE_LIMIT_FAILED_LOGINS: optionalText.pipe(rateLimitRule.optional()),
  RATE_LIMIT_NOTIFICATIONS: optionalText.pipe(rateLimitRule.optional()),
  // https only: a lookup an attacker on the path could answer would defeat the check it serves.
  DNS_RESOLVER_URL: optionalText.pipe(z.url({ protocol: /^https$/, error: "an https:// URL" }).optional()),
  RECORDING_RETENTION_DAYS: optionalNumber.pipe(z.number().int().min(1).max(3650).optional()),
});

export interface TwilioConfig {
  accountSid: string;
  /** Basic-auth user: the account SID or an API key SID. */
  authUser: string;
  authSecret: string;
  /** Twilio signs its requests to us with the account's auth token, whatever authenticates ours. */
  authToken: string;
  fromNumber: string;
  apiBaseUrl: string;
}

/** Everything a live call needs; present only when all of it is configured. */
export interface LiveCallConfig {
  twilio: TwilioConfig;
  /** The origin Twilio reaches this server at (status callbacks, media stream), no trailing slash. */
  publicBaseUrl: string;
  openaiApiKey: string;
}

export interface OpenAIConfig {
  apiKey: string | undefined;
  /** REST base, e.g. https://api.openai.com/v1; the Realtime socket is `${baseUrl}/realtime`. */
  baseUrl: string;
  realtimeModel: string;
  /** GPT-Live: its socket is `${baseUrl}/live/sessions`. */
  liveModel: string;
  delegationModel: string;
  transcriptionModel: string;
  extractionModel: string;
  extractionTimeoutMs: number;
}

export interface Config {
  jwtSecret: string;
  /** Settings that fell back to a development default (printed as a warning). */
  devDefaults: string[];
  publicBaseUrl: string | undefined;
  /** Set: notifications place real calls. Unset: the built-in call simulator. */
  live: LiveCallConfig | undefined;
  openai: OpenAIConfig;
  /** USD prices by model name: the defaults, each model in MODEL_PRICES replacing its entry. */
  modelPrices: ModelPrices;
  simulatorTimeScale: number;
  /** Calls started per second at most, across the deployment (simulated ones too). */
  callsPerSecond: number;
  webhooks: {
    /** Development allows http:// and loopback receivers; production only https:// to public hosts. */
    allowPrivateUrls: boolean;
    retryScheduleSeconds: number[];
    timeoutMs: number;
    /** How long an endpoint may fail every attempt before it is disabled. */
    disableAfterSeconds: number;
    /** Resolves receivers' host names (DNS over HTTPS, JSON) so that names reaching private space are refused. */
    dnsResolverUrl: string;
  };
  rateLimits: RateLimits;
  /** How long a call recording is kept, in days. */
  recordingRetentionDays: number;
}

export interface RateLimits {
  /** `/api/v1/*` requests per API key, or per user and project for a Bearer token. */
  perCaller: RateLimitRule;
  /** `/auth/*` (and `/api/auth/*`) requests per client IP (an IPv6 client per /64). */
  authPerIp: RateLimitRule;
  /** Login attempts per account (email) that did not succeed; a success starts the count again. */
  failedLoginsPerAccount: RateLimitRule;
  /** `POST /api/v1/notifications` per project: each one may place a call. */
  notificationsPerProject: RateLimitRule;
}

/**
 * API.md "Limits". Triggers: 10 per 10 s is the 1 call per second Twilio places for an account by
 * default (it queues calls beyond that), so a burst never waits in Twilio's queue for long.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  perCaller: { limit: 100, windowSeconds: 10 },
  authPerIp: { limit: 60, windowSeconds: 60 },
  failedLoginsPerAccount: { limit: 10, windowSeconds: 15 * 60 },
  notificationsPerProject: { limit: 10, windowSeconds: 10 },
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Attempts at 0, 1 min, 5 min, 30 min, 2 h, 6 h, 12 h (API.md, Webhooks). */
export const DEFAULT_RETRY_SCHEDULE_SECONDS = [0, 60, 300, 1800, 7200, 21600, 43200];

export const DEFAULT_DNS_RESOLVER_URL = "https://cloudflare-dns.com/dns-query";

/** API.md, The person called: recordings are deleted after RECORDING_RETENTION_DAYS, 30 by default. */
export const DEFAULT_RECORDING_RETENTION_DAYS = 30;

/** An endpoint failing continuously for 5 days is disabled (API.md, Webhooks). */
export const DEFAULT_DISABLE_AFTER_SECONDS = 5 * 24 * 60 * 60;

const cache = new WeakMap<object, Config>();

/** Validates the environment once per isolate; throws ConfigError when production lacks a secret. */
export function getConfig(env: Vars): Config {
  const cached = cache.get(env);
  if (cached) return cached;
  const parsed = rawConfigSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ");
    throw new ConfigError(`Invalid configuration: ${problems}`);
  }
  const raw = parsed.data;
  const production = raw.ENVIRONMENT === "production";
  const devDefaults: string[] = [];

  let jwtSecret = raw.JWT_SECRET;
  if (!jwtSecret) {
    if (production) throw new ConfigError("JWT_SECRET must be set in production (wrangler secret put JWT_SECRET)");
    jwtSecret = DEV_JWT_SECRET;
    devDefaults.push("JWT_SECRET");
  } else if (production && jwtSecret.length < 32) {
    throw new ConfigError("JWT_SECRET must be at least 32 characters in production");
  }

  const publicBaseUrl = raw.PUBLIC_BASE_URL?.replace(/\/+$/, "");
  const config: Config = {
    jwtSecret,
    devDefaults,
    publicBaseUrl,
    live: liveCallConfig(raw, publicBaseUrl),
    openai: {
      apiKey: raw.OPENAI_API_KEY,
      baseUrl: (raw.OPENAI_BASE_URL ?? "https://api.openai.com/v1").replace(/\/+$/, ""),
      realtimeModel: raw.OPENAI_REALTIME_MODEL ?? "gpt-realtime",
      liveModel: raw.OPENAI_LIVE_MODEL ?? "gpt-live-1",
      delegationModel: raw.OPENAI_DELEGATION_MODEL ?? "gpt-4.1-mini",
      transcriptionModel: raw.OPENAI_TRANSCRIPTION_MODEL ?? "gpt-4o-mini-transcribe",
      extractionModel: raw.OPENAI_EXTRACTION_MODEL ?? "gpt-4.1-mini",
      extractionTimeoutMs: raw.OPENAI_EXTRACTION_TIMEOUT_MS ?? 60_000,
    },
    modelPrices: { ...DEFAULT_MODEL_PRICES, ...raw.MODEL_PRICES },
    simulatorTimeScale: raw.SIMULATOR_TIME_SCALE ?? 1,
    callsPerSecond: raw.TWILIO_CPS ?? 1,
    webhooks: {
      allowPrivateUrls: !production,
      retryScheduleSeconds: raw.WEBHOOK_RETRY_SCHEDULE ?? DEFAULT_RETRY_SCHEDULE_SECONDS,
      timeoutMs: raw.WEBHOOK_TIMEOUT_MS ?? 10_000,
      disableAfterSeconds: raw.WEBHOOK_DISABLE_AFTER_SECONDS ?? DEFAULT_DISABLE_AFTER_SECONDS,
      dnsResolverUrl: raw.DNS_RESOLVER_URL ?? DEFAULT_DNS_RESOLVER_URL,
    },
    rateLimits: {
      perCaller: raw.RATE_LIMIT_API_KEY ?? DEFAULT_RATE_LIMITS.perCaller,
      authPerIp: raw.RATE_LIMIT_AUTH_IP ?? DEFAULT_RATE_LIMITS.authPerIp,
      failedLoginsPerAccount: raw.RATE_LIMIT_FAILED_LOGINS ?? DEFAULT_RATE_LIMITS.failedLoginsPerAccount,
      notificationsPerProject: raw.RATE_LIMIT_NOTIFICATIONS ?? DEFAULT_RATE_LIMITS.notificationsPerProject,
    },
    recordingRetentionDays: raw.RECORDING_RETENTION_DAYS ?? DEFAULT_RECORDING_RETENTION_DAYS,
  };
  if (devDefaults.length > 0 && raw.ENVIRONMENT === "development") {
    console.warn(`[echo] development defaults in use for ${devDefaults.join(", ")}; never deploy like this`);
  }
  cache.set(env, config);
  return config;
}

const TWILIO_CREDENTIALS = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_FROM_NUMBER"] as const;

/**
 * No Twilio credential at all → the simulator. Any of them → live calls, and then everything a live
 * call needs must be there: a half-configured server fails loudly instead of quietly simulating.
 */
function liveCallConfig(raw: z.infer<typeof rawConfigSchema>, publicBaseUrl: string | undefined): LiveCallConfig | undefined {
  if (TWILIO_CREDENTIALS.every((name) => raw[name] === undefined)) return undefined;
  const missing: string[] = [];
  const { TWILIO_ACCOUNT_SID: accountSid, TWILIO_AUTH_TOKEN: authToken, TWILIO_FROM_NUMBER: fromNumber, OPENAI_API_KEY: openaiApiKey } = raw;
  if (!accountSid) missing.push("TWILIO_ACCOUNT_SID");
  if (!authToken) missing.push("TWILIO_AUTH_TOKEN (Twilio signs its callbacks with it, even when an API key authenticates our requests)");
  if (!fromNumber) missing.push("TWILIO_FROM_NUMBER");
  if (Boolean(raw.TWILIO_API_KEY_SID) !== Boolean(raw.TWILIO_API_KEY_SECRET)) missing.push("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET together");
  if (!openaiApiKey) missing.push("OPENAI_API_KEY");
  if (!publicBaseUrl) missing.push("PUBLIC_BASE_URL (how Twilio reaches this server)");
  if (!accountSid || !authToken || !fromNumber || !openaiApiKey || !publicBaseUrl || missing.length > 0) {
    throw new ConfigError(`Live calls are configured but incomplete; set ${missing.join(", ")} — or unset every TWILIO_* credential to use the call simulator`);
  }
  const apiBaseUrl = (raw.TWILIO_API_BASE_URL ?? "https://api.twilio.com").replace(/\/+$/, "");
  const apiKey = raw.TWILIO_API_KEY_SID && raw.TWILIO_API_KEY_SECRET ? { authUser: raw.TWILIO_API_KEY_SID, authSecret: raw.TWILIO_API_KEY_SECRET } : { authUser: accountSid, authSecret: authToken };
  return { twilio: { accountSid, ...apiKey, authToken, fromNumber, apiBaseUrl }, publicBaseUrl, openaiApiKey };
}
