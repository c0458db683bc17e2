import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { ACCOUNT_SID, AUTH_TOKEN, OWNED_NUMBER } from "./test/fakes/twilio.mjs";

/** Settings every test worker shares; each project adds the ones that choose how calls are made. */
const COMMON_BINDINGS = {
  ENVIRONMENT: "test",
  JWT_SECRET: "test-jwt-secret-that-is-at-least-32-characters",
  SIMULATOR_TIME_SCALE: "0.01",
  WEBHOOK_RETRY_SCHEDULE: "0,1,1",
  // Starts across the deployment are not paced in tests but pacing's own (PACING_BINDINGS).
  TWILIO_CPS: "1000",
  // Each test file signs up and calls hundreds of times from one client; the limits' own tests
  // (test/limits) set low ones per request.
  RATE_LIMIT_API_KEY: "1000000/1s",
  RATE_LIMIT_AUTH_IP: "1000000/1s",
  RATE_LIMIT_FAILED_LOGINS: "1000000/1s",
  RATE_LIMIT_NOTIFICATIONS: "1000000/1s",
};

/**
 * Live calls: Twilio and OpenAI are configured, so notifications dial through the fakes. The fakes
 * answer on the real hosts (api.twilio.com, api.openai.com): no base URL is overridden.
 */
const LIVE_BINDINGS = {
  TWILIO_ACCOUNT_SID: ACCOUNT_SID,
  TWILIO_AUTH_TOKEN: AUTH_TOKEN,
  TWILIO_FROM_NUMBER: OWNED_NUMBER,
  OPENAI_API_KEY: "sk-fake-openai-key",
  PUBLIC_BASE_URL: "https://echo.test",
  // The fakes answer in milliseconds; a model that never answers ends a call's extraction soon.
  OPENAI_EXTRACTION_TIMEOUT_MS: "3000",
  // Not the list prices: a live call's estimated_cost_usd shows it was priced from MODEL_PRICES.
  MODEL_PRICES: JSON.stringify({ "gpt-realtime": { input_text: 5, cached_input_text: 0.5, input_audio: 40, cached_input_audio: 2.5, output_text: 20, output_audio: 80 } }),
};

/**
 * Pacing's own tests run with starts a fifth of a second apart, so they can see them; every other
 * test dials at once (COMMON_BINDINGS), as a test that expects Twilio's answer to its trigger must.
 */
const PACING_TESTS = "test/calls/pacer.live.test.ts";
const PACING_BINDINGS = { ...LIVE_BINDINGS, TWILIO_CPS: "5" };

/** The fakes' worker: upstream.mjs (its entry) first, then every module it imports. */
const FAKE_MODULES = ["upstream.mjs", "receiver.mjs", "twilio.mjs", "openai-realtime.mjs", "openai-live.mjs", "openai-sessions.mjs", "openai-chat.mjs", "dns.mjs"].map((file) => ({
  type: "ESModule" as const,
  path: `test/fakes/${file}`,
}));

const LIVE_TESTS = "test/**/*.live.test.ts";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  const workers = (bindings: Record<string, string>) =>
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: { TEST_MIGRATIONS: migrations, ...COMMON_BINDINGS, ...bindings },
        // Every outbound fetch (and WebSocket upgrade) of the Worker and its Durable Objects
        // reaches the fakes of Twilio, OpenAI, webhook receivers and DNS in this auxiliary worker.
        outboundService: "fake-upstream",
        workers: [{ name: "fake-upstream", modulesRoot: ".", modules: FAKE_MODULES, compatibilityDate: "2026-11-09", compatibilityFlags: ["nodejs_compat"] }],
      },
    });
  // The bundle's zod (wrangler.toml [alias]), so the tests run what is deployed.
  const resolve = { alias: [{ find: /^zod$/, replacement: "/build/zod/index.mjs" }] };
  const shared = { setupFiles: ["./test/setup.ts"], testTimeout: 20_000, hookTimeout: 20_000 };
  return {
    test: {
      projects: [
        { plugins: [workers({})], resolve, test: { ...shared, name: "simulator", include: ["test/**/*.test.ts"], exclude: [LIVE_TESTS] } },
        { plugins: [workers(LIVE_BINDINGS)], resolve, test: { ...shared, name: "live", include: [LIVE_TESTS], exclude: [PACING_TESTS] } },
        { plugins: [workers(PACING_BINDINGS)], resolve, test: { ...shared, name: "pacing", include: [PACING_TESTS] } },
      ],
    },
  };
});
