import { describe, expect, it } from "vitest";
import { addUsage, callUsage, DEFAULT_MODEL_PRICES, NO_ENGINE_USAGE, noUsage } from "../../src/calls/usage";

const MODELS = { realtimeModel: "gpt-realtime", liveModel: "gpt-live-1", delegationModel: "gpt-4.1-mini" };

/** A Realtime call: 3,000 text tokens in (2,000 of them cached), 1,200 audio in (200 cached), 100 text and 900 audio out. */
const REALTIME_COUNTERS = {
  ...NO_ENGINE_USAGE,
  inputTextTokens: 3000,
  cachedInputTextTokens: 2000,
  inputAudioTokens: 1200,
  cachedInputAudioTokens: 200,
  outputTextTokens: 100,
  outputAudioTokens: 900,
};

describe("callUsage", () => {
  it("prices a Realtime call's tokens by kind, cached input apart, at the list prices", () => {
    expect(callUsage("openai-realtime", MODELS, DEFAULT_MODEL_PRICES, REALTIME_COUNTERS)).toEqual({
      engine: "openai-realtime",
      model: "gpt-realtime",
      delegation_model: null,
      model_seconds: null,
      input_tokens: 4200,
      output_tokens: 1000,
      tokens: { input_text: 1000, cached_input_text: 2000, input_audio: 1000, cached_input_audio: 200, output_text: 100, output_audio: 900 },
      // (1000 × 4 + 2000 × 0.4 + 1000 × 32 + 200 × 0.4 + 100 × 16 + 900 × 64) / 1M
      estimated_cost_usd: 0.09608,
    });
  });

  it("prices a GPT-Live call's session by the minute and its delegated tool calls' tokens at the delegation model's prices", () => {
    const usage = callUsage("openai-live", MODELS, DEFAULT_MODEL_PRICES, { ...NO_ENGINE_USAGE, sessionSeconds: 93.5, inputTextTokens: 1500, cachedInputTextTokens: 1000, outputTextTokens: 40 });
    expect(usage).toEqual({
      engine: "openai-live",
      model: "gpt-live-1",
      delegation_model: "gpt-4.1-mini",
      model_seconds: 93.5,
      input_tokens: 1500,
      output_tokens: 40,
      tokens: { input_text: 500, cached_input_text: 1000, input_audio: 0, cached_input_audio: 0, output_text: 40, output_audio: 0 },
      // 93.5 / 60 × 0.05 + (500 × 0.4 + 1000 × 0.1 + 40 × 1.6) / 1M
      estimated_cost_usd: 0.078281,
    });
  });

  it("gives no cost for usage of a model or kind without a price, and 0 for no usage at all", () => {
    expect(callUsage("openai-realtime", { ...MODELS, realtimeModel: "unpriced" }, DEFAULT_MODEL_PRICES, REALTIME_COUNTERS).estimated_cost_usd).toBeNull();
    const textOnly = { "gpt-realtime": { input_text: 4, cached_input_text: 0.4, output_text: 16 } };
    expect(callUsage("openai-realtime", MODELS, textOnly, REALTIME_COUNTERS).estimated_cost_usd).toBeNull();
    expect(callUsage("openai-realtime", MODELS, textOnly, { ...NO_ENGINE_USAGE, inputTextTokens: 1_000_000 }).estimated_cost_usd).toBe(4);
    expect(noUsage("openai-live", { ...MODELS, liveModel: "unpriced" })).toMatchObject({ model: "unpriced", model_seconds: 0, input_tokens: 0, output_tokens: 0, estimated_cost_usd: 0 });
    expect(noUsage("openai-realtime", MODELS)).toMatchObject({ model_seconds: null, estimated_cost_usd: 0 });
  });
});

describe("addUsage", () => {
  it("sums attempts, each priced when it ended; an attempt without a cost leaves the total without one", () => {
    const first = callUsage("openai-live", MODELS, DEFAULT_MODEL_PRICES, { ...NO_ENGINE_USAGE, sessionSeconds: 30 });
    const second = callUsage("openai-live", MODELS, DEFAULT_MODEL_PRICES, { ...NO_ENGINE_USAGE, sessionSeconds: 90, inputTextTokens: 200, outputTextTokens: 10 });
    expect(addUsage(first, second)).toMatchObject({
      model_seconds: 120,
      input_tokens: 200,
      output_tokens: 10,
      tokens: { input_text: 200, output_text: 10 },
      estimated_cost_usd: 0.100096,
    });
    const unpriced = callUsage("openai-live", { ...MODELS, liveModel: "unpriced" }, DEFAULT_MODEL_PRICES, { ...NO_ENGINE_USAGE, sessionSeconds: 1 });
    expect(addUsage(first, unpriced)).toMatchObject({ model: "unpriced", model_seconds: 31, estimated_cost_usd: null });
    expect(addUsage(noUsage("openai-realtime", MODELS), noUsage("openai-realtime", MODELS)).model_seconds).toBeNull();
  });
});
