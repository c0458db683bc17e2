import type { VoiceEngineName } from "../src/calls/call";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { createDb } from "../src/db/client";
import { customers } from "../src/db/schema";
import { nowIso, uuidv7 } from "../src/lib/ids";
import { api, expectStatus, signup, type Account } from "./helpers";

/**
 * Agents and customers for notification tests, made through the API like a user would. The one
 * state the API cannot reach — a customer without any phone — is written straight to D1.
 */

export interface AgentInput {
  name: string;
  system_prompt: string;
  output_schema?: Record<string, unknown> | null;
  first_message?: string | null;
  voicemail_message?: string | null;
  max_duration_seconds?: number;
  retry?: { max_attempts: number; delay_minutes: number; on?: string[] } | null;
  transfer_to?: string | null;
  record?: boolean;
  recording_disclosure?: string | null;
  engine?: VoiceEngineName;
}

export async function createAgent(account: Account, input: AgentInput): Promise<{ id: string }> {
  return expectStatus(api("POST", "/api/v1/agents", { key: account.key, body: input }), 201);
}

/** DELETE /api/v1/agents/{id}: the agent stays, disabled. */
export async function disableAgent(account: Account, agentId: string): Promise<void> {
  await expectStatus(api("DELETE", `/api/v1/agents/${agentId}`, { key: account.key }), 200);
}

export interface CustomerInput {
  external_id: string;
  first_name: string;
  last_name: string;
  /** Null: a customer without any phone (the API always gives one a primary phone). */
  phone: string | null;
}

export interface CreatedCustomer {
  id: string;
  phones: Array<{ id: string; value: string }>;
}

export async function createCustomer(account: Account, input: CustomerInput): Promise<CreatedCustomer> {
  if (input.phone !== null) return expectStatus(api("POST", "/api/v1/customers", { key: account.key, body: input }), 201);
  const now = nowIso();
  const id = uuidv7();
  await createDb(env.DB)
    .insert(customers)
    .values({ id, projectId: account.projectId, externalId: input.external_id, firstName: input.first_name, lastName: input.last_name, metadata: {}, createdAt: now, updatedAt: now });
  return { id, phones: [] };
}

/** PATCH /api/v1/customers/{id}/phones/{phoneId} with {status}. */
export async function setPhoneStatus(account: Account, customerId: string, phoneId: string, status: "active" | "opted_out" | "invalid"): Promise<void> {
  await expectStatus(api("PATCH", `/api/v1/customers/${customerId}/phones/${phoneId}`, { key: account.key, body: { status } }), 200);
}

/** The quickstart's agent (step 2), its prompt exactly as the shell's quoting yields it. */
export const QUICKSTART_AGENT: AgentInput = {
  name: "Appointment Reminder",
  system_prompt:
    'You are a friendly assistant calling {{recipient_first_name}} on behalf of {{business_name}}. Start the call by saying: "Hi, is this {{recipient_first_name}}? Great — I\'m calling from {{business_name}} to confirm your appointment on {{appointment_time}} with {{doctor_name}}. Does that time still work for you?" If they need to reschedule, collect a preferred time and end the call warmly. Do not discuss anything else.',
  output_schema: {
    type: "object",
    required: ["confirmed"],
    properties: {
      confirmed: { type: "boolean", description: "Whether the patient confirmed the appointment" },
      reschedule_request: { type: "string", description: "Preferred reschedule time if they want to change it" },
    },
  },
};

export const QUICKSTART_VARIABLES = { appointment_time: "Thursday March 20th at 2:00 PM", doctor_name: "Dr. Patel" };

/** What the quickstart agent says first to John Smith of Acme Inc. */
export const QUICKSTART_OPENING =
  "Hi, is this John? Great — I'm calling from Acme Inc to confirm your appointment on Thursday March 20th at 2:00 PM with Dr. Patel. Does that time still work for you?";

/** The quickstart customer (step 3), with another phone number when a test needs one. */
export function quickstartCustomer(phone: string | null = "+14155552671"): CustomerInput {
  return { external_id: `user_${uuidv7()}`, first_name: "John", last_name: "Smith", phone };
}

/** The rows of `table` matching `where` (an SQL condition with `?` for each of `params`): all of them by default. */
export async function count(table: string, where = "1 = 1", ...params: unknown[]): Promise<number> {
  const row = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE ${where}`)
    .bind(...params)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

/** Rows of a table for one notification or project, to show that a refusal wrote nothing. */
export function countRows(table: "notifications" | "idempotency_keys" | "events", projectId: string): Promise<number> {
  return count(table, "project_id = ?", projectId);
}

export interface StoredEvent {
  event_name: string;
  payload: string;
}

/** The outbox rows of a notification, in the order they were written. */
export async function storedEvents(notificationId: string): Promise<StoredEvent[]> {
  const { results } = await env.DB.prepare("SELECT event_name, payload FROM events WHERE notification_id = ? ORDER BY rowid").bind(notificationId).all<StoredEvent>();
  return results;
}

/** GET /api/v1/notifications/{id}, which must answer 200: the notification's body. */
export async function getNotification(account: Account, id: string) {
  const res = await api("GET", `/api/v1/notifications/${id}`, { key: account.key });
  expect(res.status).toBe(200);
  return res.body;
}

/** The notification once it is no longer in_progress, polled every `wait.interval` ms for up to `wait.timeout` ms. */
export function waitUntilEnded(account: Account, id: string, wait: { timeout: number; interval: number } = { timeout: 10_000, interval: 20 }) {
  return vi.waitFor(async () => {
    const body = await getNotification(account, id);
    expect(body.status).not.toBe("in_progress");
    return body;
  }, wait);
}

/** Places the quickstart call (or another agent's) to `phone` through the API, on the simulator, and waits for its end. */
export async function placeSimulatedCall(phone: string, agentInput: AgentInput = QUICKSTART_AGENT) {
  const account = await signup();
  const agent = await createAgent(account, agentInput);
  const customer = await createCustomer(account, quickstartCustomer(phone));
  const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES } });
  expect(created.status).toBe(201);
  const notification = await waitUntilEnded(account, created.body.notification.id);
  return { account, agent, customer, notification, events: await storedEvents(notification.id) };
}
