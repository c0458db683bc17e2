import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            ENVIRONMENT: "test",
            JWT_SECRET: "test-jwt-secret-that-is-at-least-32-characters",
            SIMULATOR_TIME_SCALE: "0.01",
            WEBHOOK_RETRY_SCHEDULE: "0,1,1",
          },
          // Every outbound fetch (and WebSocket upgrade) of the Worker and its Durable Objects
          // reaches the fakes of Twilio, OpenAI and webhook receivers in this auxiliary worker.
          outboundService: "fake-upstream",
          workers: [{ name: "fake-upstream", modules: true, scriptPath: "./test/fakes/upstream.mjs", compatibilityDate: "2026-11-09" }],
        },
      }),
    ],
    test: {
      setupFiles: ["./test/setup.ts"],
      testTimeout: 20_000,
      hookTimeout: 20_000,
    },
  };
});
