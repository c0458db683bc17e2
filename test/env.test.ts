import { describe, expect, it } from "vitest";
import { DEFAULT_MODEL_PRICES } from "../src/calls/usage";
import { ConfigError, DEFAULT_DNS_RESOLVER_URL, DEFAULT_RATE_LIMITS, DEFAULT_RECORDING_RETENTION_DAYS, DEFAULT_RETRY_SCHEDULE_SECONDS, getConfig, type Vars } from "../src/env";

/** A fresh object each time: getConfig validates each environment once. */
function bindings(vars: Vars): Vars {
  return { ...vars };
}

describe("getConfig", () => {
  it("refuses to run in production without a JWT secret, or with a short one", () => {
    expect(() => getConfig(bindings({ ENVIRONMENT: "production" }))).toThrow(ConfigError);
    expect(() => getConfig(bindings({ ENVIRONMENT: "production", JWT_SECRET: "short" }))).toThrow(/at least 32/);
    // No ENVIRONMENT at all means production: a deploy is never accidentally insecure.
    expect(() => getConfig(bindings({}))).toThrow(/JWT_SECRET must be set/);
  });

  it("falls back to development defaults only outside production, and says so", () => {
    const config = getConfig(bindings({ ENVIRONMENT: "development" }));
    expect(config.devDefaults).toEqual(["JWT_SECRET"]);
    expect(config.webhooks.allowPrivateUrls).toBe(true);
    expect(config.webhooks.retryScheduleSeconds).toEqual(DEFAULT_RETRY_SCHEDULE_SECONDS);
    expect(config.live).toBeUndefined();
    expect(config.openai).toMatchObject({ baseUrl: "https://api.openai.com/v1", realtimeModel: "gpt-realtime" });
  });

  it("chooses live calls with complete settings, and refuses half of them", () => {
    const base = { ENVIRONMENT: "production", JWT_SECRET: "x".repeat(40) };
    const live = { ...base, TWILIO_ACCOUNT_SID: "AC123", TWILIO_AUTH_TOKEN: "tok", TWILIO_FROM_NUMBER: "+14155550100", OPENAI_API_KEY: "sk-1", PUBLIC_BASE_URL: "https://echo.example.com/" };
    expect(getConfig(bindings(base)).live).toBeUndefined();
    expect(getConfig(bindings(live)).live).toEqual({
      twilio: { accountSid: "AC123", authUser: "AC123", authSecret: "tok", authToken: "tok", fromNumber: "+14155550100", apiBaseUrl: "https://api.twilio.com" },
      publicBaseUrl: "https://echo.example.com",
      openaiApiKey: "sk-1",
    });
    expect(getConfig(bindings({ ...live, TWILIO_API_KEY_SID: "SK1", TWILIO_API_KEY_SECRET: "sec" })).live?.twilio).toMatchObject({ authUser: "SK1", authSecret: "sec", authToken: "tok" });
    expect(() => getConfig(bindings({ ...live, TWILIO_AUTH_TOKEN: undefined }))).toThrow(/TWILIO_AUTH_TOKEN/);
    expect(() => getConfig(bindings({ ...live, PUBLIC_BASE_URL: undefined, OPENAI_API_KEY: "" }))).toThrow(/OPENAI_API_KEY, PUBLIC_BASE_URL/);
    expect(() => getConfig(bindings({ ...live, TWILIO_API_KEY_SID: "SK1" }))).toThrow(/TWILIO_API_KEY_SECRET/);
    // Production delivers webhooks only to public https:// receivers.
    expect(getConfig(bindings(base)).webhooks.allowPrivateUrls).toBe(false);
  });

  it("rejects malformed settings with a message naming them", () => {
    expect(() => getConfig(bindings({ ENVIRONMENT: "staging" }))).toThrow(/ENVIRONMENT/);
    expect(() => getConfig(bindings({ ENVIRONMENT: "development", WEBHOOK_RETRY_SCHEDULE: "0, 1m" }))).toThrow(/WEBHOOK_RETRY_SCHEDULE/);
    expect(() => getConfig(bindings({ ENVIRONMENT: "development", PUBLIC_BASE_URL: "not a url" }))).toThrow(/PUBLIC_BASE_URL/);
    expect(getConfig(bindings({ ENVIRONMENT: "development", WEBHOOK_RETRY_SCHEDULE: "0, 5,10" })).webhooks.retryScheduleSeconds).toEqual([0, 5, 10]);
  });

  it("reads rate limits as <requests>/<window>, with API.md's defaults", () => {
    expect(getConfig(bindings({ ENVIRONMENT: "development" })).rateLimits).toEqual({
      perCaller: { limit: 100, windowSeconds: 10 },
      authPerIp: { limit: 60, windowSeconds: 60 },
      failedLoginsPerAccount: { limit: 10, windowSeconds: 900 },
      notificationsPerProject: { limit: 10, windowSeconds: 10 },
    });
    expect(DEFAULT_RATE_LIMITS.perCaller).toEqual({ limit: 100, windowSeconds: 10 });
    const custom = getConfig(bindings({ ENVIRONMENT: "development", RATE_LIMIT_API_KEY: "500 / 1m", RATE_LIMIT_AUTH_IP: "300/1h", RATE_LIMIT_FAILED_LOGINS: "5/30m", RATE_LIMIT_NOTIFICATIONS: "1/1s" }));
    expect(custom.rateLimits).toEqual({
      perCaller: { limit: 500, windowSeconds: 60 },
      authPerIp: { limit: 300, windowSeconds: 3600 },
      failedLoginsPerAccount: { limit: 5, windowSeconds: 1800 },
      notificationsPerProject: { limit: 1, windowSeconds: 1 },
    });
    for (const malformed of ["100", "100/10", "100 per 10s", "0/10s", "10/0s", "10/25h", "-1/10s"]) {
      expect(() => getConfig(bindings({ ENVIRONMENT: "development", RATE_LIMIT_API_KEY: malformed })), malformed).toThrow(/RATE_LIMIT_API_KEY/);
    }
  });

  it("resolves webhook hosts with Cloudflare's DNS over HTTPS unless another https:// resolver is set", () => {
    expect(getConfig(bindings({ ENVIRONMENT: "development" })).webhooks.dnsResolverUrl).toBe(DEFAULT_DNS_RESOLVER_URL);
    expect(DEFAULT_DNS_RESOLVER_URL).toBe("https://cloudflare-dns.com/dns-query");
    expect(getConfig(bindings({ ENVIRONMENT: "development", DNS_RESOLVER_URL: " https://dns.google/resolve " })).webhooks.dnsResolverUrl).toBe("https://dns.google/resolve");
    expect(() => getConfig(bindings({ ENVIRONMENT: "development", DNS_RESOLVER_URL: "http://dns.google/resolve" }))).toThrow(/DNS_RESOLVER_URL: an https:\/\/ URL/);
    expect(() => getConfig(bindings({ ENVIRONMENT: "development", DNS_RESOLVER_URL: "not a url" }))).toThrow(/DNS_RESOLVER_URL/);
  });

  it("keeps recordings RECORDING_RETENTION_DAYS days, 30 by default, a whole number from 1 to 3650", () => {
    expect(getConfig(bindings({ ENVIRONMENT: "development" })).recordingRetentionDays).toBe(DEFAULT_RECORDING_RETENTION_DAYS);
    expect(DEFAULT_RECORDING_RETENTION_DAYS).toBe(30);
    expect(getConfig(bindings({ ENVIRONMENT: "development", RECORDING_RETENTION_DAYS: " 7 " })).recordingRetentionDays).toBe(7);
    for (const malformed of ["0", "1.5", "3651", "-2", "a week"]) {
      expect(() => getConfig(bindings({ ENVIRONMENT: "development", RECORDING_RETENTION_DAYS: malformed })), malformed).toThrow(/RECORDING_RETENTION_DAYS/);
    }
  });

  it("prices models from the public lists, each model in MODEL_PRICES replacing its entry", () => {
    expect(getConfig(bindings({ ENVIRONMENT: "development" })).modelPrices).toEqual(DEFAULT_MODEL_PRICES);
    const custom = getConfig(bindings({ ENVIRONMENT: "development", MODEL_PRICES: '{"gpt-realtime": {"input_audio": 10, "output_audio": 20}, "my-model": {"session_minute": 0.02}}' }));
    expect(custom.modelPrices).toEqual({ ...DEFAULT_MODEL_PRICES, "gpt-realtime": { input_audio: 10, output_audio: 20 }, "my-model": { session_minute: 0.02 } });
  });

  it("refuses MODEL_PRICES that is not JSON prices by model, saying where", () => {
    const refused = (json: string) => () => getConfig(bindings({ ENVIRONMENT: "development", MODEL_PRICES: json }));
    expect(refused("{gpt-realtime: 4}")).toThrow(/MODEL_PRICES: not valid JSON/);
    expect(refused('{"gpt-realtime": {"input_txt": 4}}')).toThrow(/MODEL_PRICES\.gpt-realtime: Unrecognized key: "input_txt"/);
    expect(refused('{"gpt-realtime": {"input_text": -1}}')).toThrow(/MODEL_PRICES\.gpt-realtime\.input_text: Too small/);
    expect(refused('{"gpt-realtime": {"input_text": "4"}}')).toThrow(/MODEL_PRICES\.gpt-realtime\.input_text/);
    expect(refused('{"gpt-realtime": {}}')).toThrow(/MODEL_PRICES\.gpt-realtime: at least one price/);
    expect(refused("[4]")).toThrow(/MODEL_PRICES/);
  });
});
