import { describe, expect, it } from "vitest";
import * as zod from "../node_modules/zod/index.js";
import * as bundled from "zod";

/**
 * The deployed bundle's `zod` is build/zod/index.mjs (wrangler.toml [alias], and vitest.config.ts
 * for the tests): zod less its error-message translations. These tests compare it with zod's own
 * index, so an upgrade of zod that adds an export, or a use of `z.locales`, shows here.
 */
describe("the bundle's zod", () => {
  const names = (ns: object) => Object.keys(ns).sort();

  it("exports everything zod exports but the locales", () => {
    expect(names(bundled)).toEqual(names(zod).filter((name) => name !== "locales"));
    expect(names(bundled.z)).toEqual(names(zod.z).filter((name) => name !== "locales"));
    expect(names(bundled.z.core)).toEqual(names(zod.z.core).filter((name) => name !== "locales"));
    expect(bundled.default).toBe(bundled.z);
  });

  it("is zod's own code: the same classes and functions", () => {
    for (const name of names(bundled.z)) {
      if (name === "core" || name === "iso" || name === "coerce" || name === "util" || name === "regexes") continue;
      expect((bundled.z as Record<string, unknown>)[name], name).toBe((zod.z as Record<string, unknown>)[name]);
    }
  });

  it("gives zod's English messages", () => {
    const schema = bundled.z.object({ phone: bundled.z.string().min(3), count: bundled.z.number().int() });
    const result = schema.safeParse({ phone: "1", count: 1.5 });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([
      "Too small: expected string to have >=3 characters",
      "Invalid input: expected int, received number",
    ]);
  });
});
