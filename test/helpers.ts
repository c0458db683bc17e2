import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import worker from "../src/index";

export const BASE = "http://localhost";

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * Calls the Worker like a user would: JSON in, JSON (or a file's bytes) out. With `bindings`, the Worker's fetch
 * handler serves the request with its bindings, those replaced (e.g. ENVIRONMENT, WEBHOOK_QUEUE).
 */
export async function api<T = any>(
  method: string,
  path: string,
  options: { key?: string; token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string>; bindings?: Partial<Cloudflare.Env> } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers["x-api-key"] = options.key;
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers["content-type"] ??= "application/json";
  const request = new Request(`${BASE}${path}`, { method, headers, body });
  const response = options.bindings
    ? await worker.fetch(request as Request<unknown, IncomingRequestCfProperties>, { ...env, ...options.bindings }, createExecutionContext())
    : await exports.default.fetch(request);
  // A file (a call's recording) is its bytes; anything else is read as JSON, else kept as text.
  if (response.headers.get("content-type")?.startsWith("audio/")) return { status: response.status, headers: response.headers, body: new Uint8Array(await response.arrayBuffer()) as T };
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body: parsed as T };
}

/** The body of a response that must answer `status`; a failure shows the body. */
export async function expectStatus<T>(response: Promise<ApiResponse<T>>, status: number): Promise<T> {
  const res = await response;
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  return res.body;
}

let counter = 0;

export interface Account {
  key: string;
  accessToken: string;
  refreshToken: string;
  userId: string;
  businessId: string;
  projectId: string;
  email: string;
}

/** A valid POST /auth/signup body (the quickstart's step 1), with an email no one has used. */
export function signupBody() {
  counter += 1;
  return {
    email: `user${Date.now()}${counter}${Math.random().toString(36).slice(2, 8)}@example.com`,
    password: "YourPassword123!",
    first_name: "Jane",
    last_name: "Doe",
    business_name: "Acme Inc",
    business_summary: "A SaaS platform for project management",
    industry: "Software",
  };
}

/** Signs up a fresh tenant (the quickstart's step 1) and returns its credentials. */
export async function signup(overrides: Record<string, unknown> = {}): Promise<Account> {
  const body = signupBody();
  const email = body.email;
  const response = await api("POST", "/auth/signup", { body: { ...body, ...overrides } });
  if (response.status !== 201) throw new Error(`signup failed: ${response.status} ${JSON.stringify(response.body)}`);
  const b = response.body;
  return {
    key: b.default_project.api_key,
    accessToken: b.access_token,
    refreshToken: b.refresh_token,
    userId: b.user.id,
    businessId: b.business.id,
    projectId: b.default_project.id,
    email,
  };
}

/** Everything a fake webhook receiver inbox got, in arrival order. */
export async function inbox(name: string): Promise<Array<{ method: string; url: string; headers: Record<string, string>; body: string }>> {
  const response = await fetch(`http://receiver.test/_inbox/${name}`);
  return response.json();
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
}
