import { describe, expect, it } from "vitest";
import { createAgent, QUICKSTART_AGENT, QUICKSTART_VARIABLES, quickstartCustomer } from "../fixtures";
import { fakeTwilioCalls } from "../fakes/twilio-peer";
import { api, expectStatus, signup, type Account } from "../helpers";

/**
 * Live calls wait for the calling hours on the callee's clocks (API.md "Scheduling, calling hours and
 * retries"): the default window 08:00–21:00 every day, or the project's. Each case fixes the time
 * with `scheduled_at` on a date a few days ahead (December: no daylight-saving change in these zones),
 * so the expected opening is known without reading the clock.
 */

const DAY_MS = 86_400_000;

/** `YYYY-MM-DD` of the day `days` from now (UTC), and of the day after. */
function dayAhead(days: number) {
  const day = new Date(Date.now() + days * DAY_MS);
  const iso = (d: Date) => d.toISOString().slice(0, 10);
  return { day: iso(day), next: iso(new Date(day.getTime() + DAY_MS)), previous: iso(new Date(day.getTime() - DAY_MS)) };
}

async function trigger(account: Account, customer: { phone: string; timezone?: string }, extra: Record<string, unknown>) {
  const agent = await createAgent(account, QUICKSTART_AGENT);
  const created = await expectStatus(api("POST", "/api/v1/customers", { key: account.key, body: { ...quickstartCustomer(customer.phone), ...(customer.timezone ? { timezone: customer.timezone } : {}) } }), 201);
  return api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: created.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...extra } });
}

async function dialled(notificationId: string) {
  return (await fakeTwilioCalls()).filter((call) => String(call.params.StatusCallback).endsWith(`/${notificationId}`));
}

describe("calling hours, live calls", () => {
  it("a call due at 22:30 callee time waits for 08:00 the next day in that zone", async () => {
    const account = await signup();
    const { day, next } = dayAhead(3);
    const res = await trigger(account, { phone: "+12125550142", timezone: "America/New_York" }, { scheduled_at: `${day}T22:30:00-05:00` });
    expect(res.status).toBe(201);
    expect(res.body.notification).toMatchObject({ status: "queued", queued_reason: "calling_hours", scheduled_for: `${next}T13:00:00.000Z`, ignore_calling_hours: false });
    expect(await dialled(res.body.notification.id)).toEqual([]);
  });

  it("the project's window decides: Friday 22:30 waits for Monday 08:00 when it allows Monday to Friday", async () => {
    const account = await signup();
    await expectStatus(api("PATCH", `/api/v1/projects/${account.projectId}`, { key: account.key, body: { calling_hours: { start: "08:00", end: "21:00", days: [1, 2, 3, 4, 5] } } }), 200);
    const now = new Date();
    const toFriday = ((5 - now.getUTCDay() + 7) % 7) + 7;
    const friday = dayAhead(toFriday).day;
    const monday = dayAhead(toFriday + 3).day;
    const res = await trigger(account, { phone: "+12125550142", timezone: "America/New_York" }, { scheduled_at: `${friday}T22:30:00-05:00` });
    expect(res.body.notification).toMatchObject({ status: "queued", queued_reason: "calling_hours", scheduled_for: `${monday}T13:00:00.000Z` });
  });

  it("a number in two zones waits until the window is open in both", async () => {
    // +1 775 is Pacific (Los Angeles) and Mountain (Boise) time: both open from 08:00 Pacific to 21:00 Mountain.
    const account = await signup();
    const { day, next } = dayAhead(4);
    const early = await trigger(account, { phone: "+17755550142" }, { scheduled_at: `${day}T07:30:00-08:00` });
    expect(early.body.notification).toMatchObject({ queued_reason: "calling_hours", scheduled_for: `${day}T16:00:00.000Z` });
    const late = await trigger(account, { phone: "+17755550143" }, { scheduled_at: `${day}T20:30:00-08:00` });
    expect(late.body.notification).toMatchObject({ queued_reason: "calling_hours", scheduled_for: `${next}T16:00:00.000Z` });
  });

  it("the customer's timezone wins over the number's", async () => {
    // A Los Angeles number whose customer lives in Tokyo: 06:00 there waits for 08:00 there.
    const account = await signup();
    const { day, previous } = dayAhead(5);
    const res = await trigger(account, { phone: "+14155550142", timezone: "Asia/Tokyo" }, { scheduled_at: `${day}T06:00:00+09:00` });
    expect(res.body.notification).toMatchObject({ queued_reason: "calling_hours", scheduled_for: `${previous}T23:00:00.000Z` });
  });

  it("ignore_calling_hours places the call when it is due, whatever the hour", async () => {
    const account = await signup();
    const { day } = dayAhead(3);
    const res = await trigger(account, { phone: "+12125550142", timezone: "America/New_York" }, { scheduled_at: `${day}T23:30:00-05:00`, ignore_calling_hours: true });
    expect(res.body.notification).toMatchObject({ status: "queued", queued_reason: "scheduled", scheduled_for: new Date(`${day}T23:30:00-05:00`).toISOString(), ignore_calling_hours: true });
  });

  it("a number of no known time zone is refused unless the customer has one (422), nothing written", async () => {
    const account = await signup();
    const res = await trigger(account, { phone: "+80012345678" }, {});
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ code: "callee_time_zone_unknown" });
    expect((await api("GET", "/api/v1/notifications", { key: account.key })).body).toEqual([]);
    const withZone = await trigger(account, { phone: "+80012345679", timezone: "Europe/Paris" }, { scheduled_at: new Date(Date.now() + DAY_MS).toISOString() });
    expect(withZone.status).toBe(201);
  });
});
