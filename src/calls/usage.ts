import { z } from "zod";
import type { VoiceEngineName } from "./call";
import type { EngineUsage } from "./live/engine";

/**
 * What a notification's calls used of the voice model and what that is estimated to cost, from the
 * engines' own counters and the configured prices (`MODEL_PRICES` over `DEFAULT_MODEL_PRICES`). The
 * token kinds are those of OpenAI's price lists and bills, cached input apart from the rest, so each
 * count is priced at the rate of the same name.
 */

/** Token kinds as billed; an input kind counts only the tokens not read from the cache. */
export const TOKEN_KINDS = ["input_text", "cached_input_text", "input_audio", "cached_input_audio", "output_text", "output_audio"] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

/** One model's prices in USD: per 1M tokens of each kind, and per minute of session (GPT-Live). */
export const modelPriceSchema = z
  .partialRecord(z.enum([...TOKEN_KINDS, "session_minute"]), z.number().finite().nonnegative())
  .refine((price) => Object.keys(price).length > 0, "at least one price");
export type ModelPrice = z.infer<typeof modelPriceSchema>;
/** Prices by model name. */
export type ModelPrices = Record<string, ModelPrice>;

/**
 * Public list prices, read on 2026-11-30 (README "Usage and cost" names each source). A deployment
 * changes or adds models with `MODEL_PRICES`; a model listed there is priced by that entry alone.
 */
export const DEFAULT_MODEL_PRICES: ModelPrices = {
  "gpt-realtime": { input_text: 4, cached_input_text: 0.4, input_audio: 32, cached_input_audio: 0.4, output_text: 16, output_audio: 64 },
  "gpt-live-1": { session_minute: 0.05 },
  "gpt-4.1-mini": { input_text: 0.4, cached_input_text: 0.1, output_text: 1.6 },
};

/** `usage` on a notification and in `call.summary`. */
export interface CallUsage {
  engine: VoiceEngineName;
  /** The voice model. */
  model: string;
  /** The model tool calls are delegated to (GPT-Live), whose tokens `tokens` counts; null when the voice model's own tokens are counted. */
  delegation_model: string | null;
  /** Session seconds, for an engine billed by session time; null for one billed by tokens only. */
  model_seconds: number | null;
  /** All input tokens, cached ones included. */
  input_tokens: number;
  output_tokens: number;
  tokens: Record<TokenKind, number>;
  /** Null when a model or a kind used has no price. */
  estimated_cost_usd: number | null;
}

export const NO_ENGINE_USAGE: EngineUsage = {
  sessionSeconds: 0,
  inputTextTokens: 0,
  inputAudioTokens: 0,
  cachedInputTextTokens: 0,
  cachedInputAudioTokens: 0,
  outputTextTokens: 0,
  outputAudioTokens: 0,
};

export function addEngineUsage(a: EngineUsage, b: EngineUsage): EngineUsage {
  return {
    sessionSeconds: a.sessionSeconds + b.sessionSeconds,
    inputTextTokens: a.inputTextTokens + b.inputTextTokens,
    inputAudioTokens: a.inputAudioTokens + b.inputAudioTokens,
    cachedInputTextTokens: a.cachedInputTextTokens + b.cachedInputTextTokens,
    cachedInputAudioTokens: a.cachedInputAudioTokens + b.cachedInputAudioTokens,
    outputTextTokens: a.outputTextTokens + b.outputTextTokens,
    outputAudioTokens: a.outputAudioTokens + b.outputAudioTokens,
  };
}

/** The configured models (OpenAIConfig has them; not imported, as the config validates prices with this module). */
type Models = { realtimeModel: string; liveModel: string; delegationModel: string };

/** Which model bills what on each engine: GPT-Live bills its session by time and its delegated tool calls (Responses) by tokens. */
const ENGINE_BILLING: Record<VoiceEngineName, (models: Models) => { model: string; delegationModel: string | null; billedByTime: boolean }> = {
  "openai-realtime": (models) => ({ model: models.realtimeModel, delegationModel: null, billedByTime: false }),
  "openai-live": (models) => ({ model: models.liveModel, delegationModel: models.delegationModel, billedByTime: true }),
};

/** Dollars to the millionth: finer than any one token's price shows, coarse enough to read. */
const roundUsd = (usd: number) => Math.round(usd * 1e6) / 1e6;
const roundSeconds = (seconds: number) => Math.round(seconds * 1000) / 1000;

/** A call's usage from its engine's counters, priced at `prices`. */
export function callUsage(engine: VoiceEngineName, models: Models, prices: ModelPrices, counters: EngineUsage): CallUsage {
  const { model, delegationModel, billedByTime } = ENGINE_BILLING[engine](models);
  const tokens: Record<TokenKind, number> = {
    input_text: Math.max(0, counters.inputTextTokens - counters.cachedInputTextTokens),
    cached_input_text: counters.cachedInputTextTokens,
    input_audio: Math.max(0, counters.inputAudioTokens - counters.cachedInputAudioTokens),
    cached_input_audio: counters.cachedInputAudioTokens,
    output_text: counters.outputTextTokens,
    output_audio: counters.outputAudioTokens,
  };
  const modelSeconds = billedByTime ? roundSeconds(counters.sessionSeconds) : null;
  const tokenPrice = prices[delegationModel ?? model];
  // Each amount used with its rate; an amount used without one leaves the cost unknown.
  const charges: Array<[amount: number, rate: number | undefined]> = [
    [(modelSeconds ?? 0) / 60, prices[model]?.session_minute],
    ...TOKEN_KINDS.map((kind): [number, number | undefined] => [tokens[kind] / 1e6, tokenPrice?.[kind]]),
  ];
  const priced = charges.every(([amount, price]) => amount === 0 || price !== undefined);
  if (!priced) console.warn(`[echo] no price for part of the usage of ${delegationModel ? `${model} / ${delegationModel}` : model}: estimated_cost_usd is null (MODEL_PRICES)`);
  return {
    engine,
    model,
    delegation_model: delegationModel,
    model_seconds: modelSeconds,
    input_tokens: counters.inputTextTokens + counters.inputAudioTokens,
    output_tokens: counters.outputTextTokens + counters.outputAudioTokens,
    tokens,
    estimated_cost_usd: priced ? roundUsd(charges.reduce((sum, [amount, price]) => sum + amount * (price ?? 0), 0)) : null,
  };
}

/** Nothing used: a simulated call, or one no model session ran for. */
export function noUsage(engine: VoiceEngineName, models: Models): CallUsage {
  return callUsage(engine, models, {}, NO_ENGINE_USAGE);
}

/**
 * A notification's usage over its attempts: each attempt was priced when it ended, so the costs
 * add up; the models named are the latest attempt's.
 */
export function addUsage(earlier: CallUsage, latest: CallUsage): CallUsage {
  const seconds = earlier.model_seconds === null && latest.model_seconds === null ? null : roundSeconds((earlier.model_seconds ?? 0) + (latest.model_seconds ?? 0));
  return {
    ...latest,
    model_seconds: seconds,
    input_tokens: earlier.input_tokens + latest.input_tokens,
    output_tokens: earlier.output_tokens + latest.output_tokens,
    tokens: Object.fromEntries(TOKEN_KINDS.map((kind) => [kind, earlier.tokens[kind] + latest.tokens[kind]])) as Record<TokenKind, number>,
    estimated_cost_usd: earlier.estimated_cost_usd === null || latest.estimated_cost_usd === null ? null : roundUsd(earlier.estimated_cost_usd + latest.estimated_cost_usd),
  };
}
