import { describe, expect, it } from "vitest";
import { ApiError, ERROR_CODES, errorBody, type ErrorCode } from "../src/errors";
import { api } from "./helpers";

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

describe("the error catalogue", () => {
  it.each(CODES)("sends %s with its catalogue status, a 4xx or 5xx with a reason phrase", (code) => {
    const body = errorBody(new ApiError(code, "message"), "req_1");
    expect(body.statusCode).toBe(ERROR_CODES[code].status);
    expect(body.statusCode).toBeGreaterThanOrEqual(400);
    expect(body.statusCode).toBeLessThan(600);
    expect(body.error).toMatch(/^[A-Z][A-Za-z ]+$/);
    expect(body).toEqual({ statusCode: body.statusCode, error: body.error, message: "message", code, request_id: "req_1" });
  });

  it("is listed as the Error schema's code enum in /openapi.json", async () => {
    const res = await api("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.components.schemas.Error.properties.code.enum).toEqual(CODES);
  });
});
