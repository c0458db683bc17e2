import { createScheduledController, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { CallSession } from "../../src/calls/call-session";
import { deleteExpiredRecordings } from "../../src/calls/recording-retention";
import worker from "../../src/index";
import { createAgent, createCustomer, getNotification, QUICKSTART_AGENT, QUICKSTART_OPENING, QUICKSTART_VARIABLES, quickstartCustomer, storedEvents, waitUntilEnded, type AgentInput } from "../fixtures";
import { api, BASE, signup, type Account } from "../helpers";
import { readWav, RECORDING_FORMAT } from "../recordings";

/**
 * Recorded calls on the simulator (API.md, The person called): the disclosure is spoken first, the
 * recording is the call's talk time of silence in the live layout, only the notification's project
 * can download it, and the cron deletes it after the retention.
 */

const RECORDED_AGENT: AgentInput = { ...QUICKSTART_AGENT, record: true };
const DAY_MS = 24 * 60 * 60 * 1000;

async function placeCall(agentInput: AgentInput, { phone = "+14155552671", body = {} }: { phone?: string; body?: Record<string, unknown> } = {}) {
  const account = await signup();
  const agent = await createAgent(account, agentInput);
  const customer = await createCustomer(account, quickstartCustomer(phone));
  const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES, ...body } });
  expect(created.status).toBe(201);
  return { account, id: created.body.notification.id as string };
}

async function recordedCall(agentInput: AgentInput = RECORDED_AGENT, phone?: string) {
  const { account, id } = await placeCall(agentInput, { phone });
  const notification = await waitUntilEnded(account, id);
  return { account, notification, events: await storedEvents(id) };
}

/** GET the recording, as bytes. */
async function download(account: Account, id: string, headers: Record<string, string> = {}) {
  const res = await exports.default.fetch(new Request(`${BASE}/api/v1/notifications/${id}/recording`, { headers: { "x-api-key": account.key, ...headers } }));
  return { status: res.status, headers: res.headers, bytes: new Uint8Array(await res.arrayBuffer()) };
}

const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const summaryOf = (events: Array<{ event_name: string; payload: string }>) => JSON.parse(events.find((event) => event.event_name === "call.summary")!.payload).data;
const recordingRow = (id: string) =>
  env.DB.prepare("SELECT recording_key, recording_expires_at, ended_at FROM notifications WHERE id = ?").bind(id).first<{ recording_key: string | null; recording_expires_at: string | null; ended_at: string }>();

/** The cron trigger firing: the Worker's own `scheduled` handler. */
const runCron = () => worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), env);

describe("a recorded simulated call", () => {
  it("speaks the disclosure first, stores its talk time of silence as a two-channel μ-law WAV, and serves it to its project", async () => {
    const { account, notification: n, events } = await recordedCall();
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", recording_available: true });
    expect(n.transcript[0]).toMatchObject({ role: "agent", text: `This call is recorded. ${QUICKSTART_OPENING}` });
    expect(summaryOf(events)).toMatchObject({ recording_available: true, duration_seconds: n.duration_seconds });

    const res = await download(account, n.id);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("audio/wav");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-length")).toBe(String(res.bytes.length));
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    const wav = readWav(res.bytes);
    expect(wav.format).toEqual(RECORDING_FORMAT);
    // The talk time, answer to hang-up, at 8000 sample frames a second: silence on both channels.
    expect(wav.sampleFrames).toBe(Math.round(n.duration_seconds * 8000));
    expect(wav.sampleFrames).toBeGreaterThan(0);
    expect(wav.data.length).toBe(wav.sampleFrames * 2);
    expect(wav.data.every((byte) => byte === 0xff)).toBe(true);

    // The row names it until the retention (30 days by default) from the call's end.
    const row = await recordingRow(n.id);
    expect(row!.recording_key).toBe(`${account.projectId}/${n.id}/${n.call_id}.wav`);
    expect(Date.parse(row!.recording_expires_at!) - Date.parse(row!.ended_at)).toBe(30 * DAY_MS);
  });

  it("speaks the agent's own disclosure", async () => {
    const { notification: n } = await recordedCall({ ...RECORDED_AGENT, recording_disclosure: "Heads up: we record calls for training." });
    expect(n.transcript[0].text).toBe(`Heads up: we record calls for training. ${QUICKSTART_OPENING}`);
    expect(n.recording_available).toBe(true);
  });

  it("is 404 for another project, for a notification whose agent does not record, and for a call never answered", async () => {
    const { account, notification: n } = await recordedCall();
    const other = await signup();
    const stranger = await download(other, n.id);
    expect(stranger.status).toBe(404);
    expect(json(stranger.bytes)).toMatchObject({ code: "notification_not_found" });
    expect(stranger.headers.get("content-type")).toMatch(/^application\/json/);

    const plain = await recordedCall(QUICKSTART_AGENT);
    expect(plain.notification.recording_available).toBe(false);
    expect(summaryOf(plain.events)).toMatchObject({ recording_available: false });
    const none = await download(plain.account, plain.notification.id);
    expect(none.status).toBe(404);
    expect(json(none.bytes)).toMatchObject({ code: "recording_not_found" });

    // Busy: nothing was said, nothing is recorded.
    const busy = await recordedCall(RECORDED_AGENT, "+14155550101");
    expect(busy.notification).toMatchObject({ status: "failed", ended_reason: "customer-busy", recording_available: false });
    expect((await download(busy.account, busy.notification.id)).status).toBe(404);
    // The owner still gets theirs.
    expect((await download(account, n.id)).status).toBe(200);
  });

  it("answers a byte range with 206, and a range past the end with 416", async () => {
    const { account, notification: n } = await recordedCall();
    const whole = (await download(account, n.id)).bytes;
    const header = await download(account, n.id, { Range: "bytes=0-57" });
    expect(header.status).toBe(206);
    expect(header.bytes).toEqual(whole.subarray(0, 58));
    expect(header.headers.get("content-range")).toBe(`bytes 0-57/${whole.length}`);
    expect(header.headers.get("content-length")).toBe("58");
    const tail = await download(account, n.id, { Range: "bytes=-10" });
    expect(tail.status).toBe(206);
    expect(tail.bytes).toEqual(whole.subarray(whole.length - 10));
    const open = await download(account, n.id, { Range: "bytes=100-" });
    expect(open.bytes).toEqual(whole.subarray(100));
    const past = await download(account, n.id, { Range: `bytes=${whole.length}-` });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${whole.length}`);
    expect(json(past.bytes)).toMatchObject({ code: "range_not_satisfiable" });
    // Several ranges are not served as such: the whole file.
    const several = await download(account, n.id, { Range: "bytes=0-1,5-6" });
    expect(several.status).toBe(200);
    expect(several.bytes).toEqual(whole);
  });

  it("keeps only the last call's recording when an attempt is tried again", async () => {
    // 5550103 is always a voicemail: two attempts, each recorded while it runs.
    const { account, id } = await placeCall(RECORDED_AGENT, { phone: "+14155550103", body: { retry: { max_attempts: 2, delay_minutes: 1, on: ["voicemail"] } } });
    await vi.waitFor(async () => expect(await getNotification(account, id)).toMatchObject({ status: "queued", queued_reason: "retry", recording_available: false }), { timeout: 10_000, interval: 20 });
    expect(await runDurableObjectAlarm(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(id)))).toBe(true);
    const n = await waitUntilEnded(account, id);
    expect(n).toMatchObject({ status: "completed", ended_reason: "voicemail", recording_available: true });
    expect(n.attempts).toHaveLength(2);
    const stored = await env.RECORDINGS.list({ prefix: `${account.projectId}/${id}/` });
    expect(stored.objects.map((object) => object.key)).toEqual([`${account.projectId}/${id}/${n.call_id}.wav`]);
  });

  it("a recording that cannot be stored: the call still ends, without it, and says so in the log", async () => {
    const { account, id } = await placeCall(RECORDED_AGENT, { body: { scheduled_at: new Date(Date.now() + 60 * 60_000).toISOString(), ignore_calling_hours: true } });
    const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      // R2 refuses the write: the object's bucket is swapped for one whose put fails, and the waiting call made due.
      await runInDurableObject(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(id)), async (instance: CallSession, state) => {
        const lifecycle = (instance as unknown as { lifecycle: { env: Cloudflare.Env } }).lifecycle;
        const refusing = Object.create(env.RECORDINGS, { put: { value: () => Promise.reject(new Error("chaos: R2 refused the write")) } }) as R2Bucket;
        lifecycle.env = { ...env, RECORDINGS: refusing };
        await state.storage.setAlarm(Date.now());
      });
      const n = await vi.waitFor(async () => {
        const current = await getNotification(account, id);
        expect(current.status).toBe("completed");
        return current;
      }, { timeout: 10_000, interval: 20 });
      expect(n).toMatchObject({ ended_reason: "customer-ended-call", recording_available: false, call_result: { confirmed: true } });
      expect(summaryOf(await storedEvents(id))).toMatchObject({ recording_available: false });
      expect(errors.mock.calls.some(([message]) => String(message).includes("could not be stored; the call ends without it"))).toBe(true);
    } finally {
      errors.mockRestore();
    }
    expect((await download(account, id)).status).toBe(404);
  });
});

describe("recording retention", () => {
  it("the cron deletes recordings past their retention, from R2 and the notification, and keeps the others", async () => {
    const expired = await recordedCall();
    const kept = await recordedCall();
    const key = (await recordingRow(expired.notification.id))!.recording_key!;
    expect(await env.RECORDINGS.head(key)).not.toBeNull();
    // The retention is 30 days: a day before it ends nothing goes; then the clock is moved past it for one of them.
    expect(await deleteExpiredRecordings(env, { now: Date.parse(expired.notification.ended_at) + 29 * DAY_MS })).toBe(0);
    await env.DB.prepare("UPDATE notifications SET recording_expires_at = ? WHERE id = ?").bind(new Date(Date.now() - 1000).toISOString(), expired.notification.id).run();

    await runCron();
    expect(await env.RECORDINGS.head(key)).toBeNull();
    expect(await recordingRow(expired.notification.id)).toMatchObject({ recording_key: null, recording_expires_at: null });
    expect(await getNotification(expired.account, expired.notification.id)).toMatchObject({ recording_available: false });
    const gone = await download(expired.account, expired.notification.id);
    expect(gone.status).toBe(404);
    expect(json(gone.bytes)).toMatchObject({ code: "recording_not_found" });

    expect(await getNotification(kept.account, kept.notification.id)).toMatchObject({ recording_available: true });
    expect((await download(kept.account, kept.notification.id)).status).toBe(200);
  });
});
