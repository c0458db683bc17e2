import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../context";
import { ApiError, ERROR_CODES, type ErrorCode, type ErrorDetail } from "../errors";
import { parseE164 } from "./phone";

/** Turns zod issues into the `details` of a 400. */
export function zodDetails(issues: readonly z.core.$ZodIssue[]): ErrorDetail[] {
  return issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message }));
}

/** Every router: validation failures become the API's 400 error body. */
export function createRouter(options: { getPath?: (request: Request) => string } = {}) {
  return new OpenAPIHono<AppEnv>({
    ...options,
    defaultHook: (result) => {
      if (!result.success) {
        const details = zodDetails(result.error.issues);
        const summary = details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join("; ");
        throw new ApiError("validation_error", `Invalid request: ${summary}`, { details });
      }
    },
  });
}

export const ErrorSchema = z
  .object({
    statusCode: z.number().int(),
    error: z.string(),
    message: z.string(),
    code: z.enum(Object.keys(ERROR_CODES) as ErrorCode[]),
    request_id: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi("Error");

const errorResponse = (description: string) => ({ content: { "application/json": { schema: ErrorSchema } }, description });

const seconds = (description: string) => ({ schema: { type: "integer" as const, minimum: 1 }, description });

/** Every route that documents its errors is rate limited (API.md "Limits"). */
const rateLimitedResponse = {
  ...errorResponse("Rate limited (code rate_limited). Every response of the route carries the X-RateLimit-* headers"),
  headers: {
    "Retry-After": seconds("Seconds until a request is counted again"),
    "X-RateLimit-Limit": { schema: { type: "integer" as const }, description: "Requests allowed in the window" },
    "X-RateLimit-Remaining": { schema: { type: "integer" as const }, description: "Requests left in the window" },
    "X-RateLimit-Reset": seconds("Seconds until the window ends and the count starts again"),
  },
};

/** The error responses a route may return, for the OpenAPI document; 429 is always one of them. */
export function errorResponses(...statuses: Array<400 | 401 | 403 | 404 | 409 | 422>) {
  const descriptions = {
    400: "Invalid request",
    401: "Missing or invalid credentials",
    403: "Not allowed",
    404: "Not found in your project",
    409: "Conflict",
    422: "Well-formed but cannot be processed",
  } as const;
  const responses: Record<number, ReturnType<typeof errorResponse>> = Object.fromEntries(statuses.map((s) => [s, errorResponse(descriptions[s])]));
  return { ...responses, 429: rateLimitedResponse };
}

export function jsonContent<T extends z.ZodType>(schema: T, description: string) {
  return { content: { "application/json": { schema } }, description };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** A PATCH body's refinement: `.refine(atLeastOneField, "provide at least one field")`. */
export const atLeastOneField = (body: Record<string, unknown>) => Object.values(body).some((value) => value !== undefined);

export const apiKeySecurity: Array<Record<string, string[]>> = [{ ApiKey: [] }, { Bearer: [] }];

export function IdParam<Name extends string>(name: Name) {
  const shape = { [name]: z.string().openapi({ param: { name, in: "path" }, example: "0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10" }) } as Record<Name, z.ZodString>;
  return z.object(shape);
}

/** A phone number in a request: strict E.164, valid for its country. */
export const E164Field = z
  .string()
  .superRefine((value, ctx) => {
    const parsed = parseE164(value);
    if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.message });
  })
  .openapi({ description: "E.164: + and 8–15 digits, valid for its country", example: "+14155552671" });
