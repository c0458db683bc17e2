import { describe, expect, it } from "vitest";
import { api, signup } from "../helpers";

/**
 * `limit` is decimal digits only, 1–200. Number() would also read hex, exponents, signs and
 * whitespace (`0x10` → 16, `1e1` → 10, ` 5` → 5), so a page size could be spelled many ways.
 */
describe("the limit of a list", () => {
  it.each(["0x10", "1e1", " 5", "5 ", "+5", "-5", "5.0", "1_0", "0b11", "Infinity", "", "0", "201", "99999999999999999999"])(
    "refuses limit=%j with 400 validation_error on limit",
    async (limit) => {
      const account = await signup();
      for (const path of ["/api/v1/customers", `/api/v1/projects/${account.projectId}/webhooks`]) {
        const res = await api("GET", `${path}?limit=${encodeURIComponent(limit)}`, { key: account.key });
        expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(400);
        expect(res.body).toMatchObject({ code: "validation_error", details: expect.arrayContaining([expect.objectContaining({ path: "limit" })]) });
      }
    },
  );

  it.each([
    ["1", 1],
    ["200", 200],
    // Leading zeros are still plain decimal.
    ["05", 5],
  ])("reads limit=%s as %i", async (limit, size) => {
    const account = await signup();
    for (let i = 0; i < 6; i += 1) {
      const created = await api("POST", "/api/v1/customers", { key: account.key, body: { external_id: `c${i}`, first_name: `C${i}`, last_name: "Doe", phone: `+141555526${70 + i}` } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
    }
    const res = await api("GET", `/api/v1/customers?limit=${limit}`, { key: account.key });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toHaveLength(Math.min(size, 6));
  });

  it("defaults to 50 when absent", async () => {
    const account = await signup();
    expect((await api("GET", "/api/v1/customers", { key: account.key })).status).toBe(200);
  });
});
