import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { reconcileCalls } from "../../../src/calls/reconcile";
import { QUICKSTART_VARIABLES, storedEvents } from "../../fixtures";
import { realtimeSessions, sha256Hex } from "../../fakes/realtime-client";
import { fakeTwilioCall, reportCallStatus, reportMachineDetection, twilioCallFor } from "../../fakes/twilio-peer";
import { api } from "../../helpers";
import { ANY_HOUR, answer, getNotification, greeted, placeLiveCall, say, streamUp, twilioUpdates, WAIT, waitUntilEnded, webhooks, type LiveCall } from "./support";

/**
 * How a live call treats the person called (API.md "The person called"), against the fakes: a
 * voicemail's message left after the beep, the opt_out and transfer_call tools, and what the model
 * is told about call screeners. Twilio's side is played by the test (twilio-peer.ts), the model by
 * the fake Realtime server's script.
 */

const VOICEMAIL_MESSAGE = "Hi John, this is Acme Inc about your appointment on Thursday. Please call us back.";
const TRANSFER_TO = "+14155550199";
/** The quickstart agent's screener reply for John Smith of Acme Inc. */
const SCREENER_REPLY = "Hi, this is Appointment Reminder, an automated assistant calling from Acme Inc for John Smith.";

const turns = (n: { transcript: Array<{ role: string; text: string }> }) => n.transcript.map((turn) => [turn.role, turn.text]);

/** The fake Chat Completions requests of a call: its extractions. */
async function extractions(call: LiveCall): Promise<unknown[]> {
  return (await fetch(`https://api.openai.com/_fake/chat/requests?match=${call.marker}`)).json();
}

describe("voicemail: detection waits for the greeting's end, the message is left after the beep", () => {
  it("the verdict at the beep cuts off what the agent says over the greeting, the message is spoken after it, then the call hangs up once it has played", async () => {
    // The greeting (20 s of audio, coming at twice the pace it plays) is still being spoken, and some
    // of it waits at Twilio, at the beep; the message is 1 s of audio.
    const call = await placeLiveCall({ responses: ["Hi, is this John?", VOICEMAIL_MESSAGE], audio_deltas: [1000, 50], delta_interval_ms: 10 }, { voicemailMessage: VOICEMAIL_MESSAGE });
    const twilioCall = await twilioCallFor(call.notificationId);
    expect(twilioCall.params).toMatchObject({ MachineDetection: "DetectMessageEnd", AsyncAmd: "true", AsyncAmdStatusCallback: `https://echo.test/twilio/amd/${call.notificationId}` });
    // Answered with the verdict still to come: the greeting starts at once.
    expect((await reportCallStatus(twilioCall, "in-progress")).status).toBe(204);
    const { peer } = await streamUp(twilioCall);
    await vi.waitFor(() => expect(peer.marks.length).toBeGreaterThanOrEqual(2), WAIT);

    expect((await reportMachineDetection(twilioCall, "machine_end_beep")).status).toBe(204);
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", answered_by: "machine_end_beep" });
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null, error_message: null });
    expect(turns(n)).toEqual([
      ["agent", "Hi, is this John?"],
      ["agent", VOICEMAIL_MESSAGE],
    ]);

    // The model was cut off, told to say the message word for word, and its greeting truncated to what was heard.
    const [session] = await realtimeSessions(call.marker);
    const control = session!.client_events.filter((event) => event.type !== "input_audio_buffer.append");
    expect(control.map((event) => event.type)).toEqual(["session.update", "response.create", "response.cancel", "conversation.item.create", "conversation.item.truncate", "response.create"]);
    expect(control[3]!.item).toEqual({ type: "message", role: "system", content: [{ type: "input_text", text: expect.stringContaining(`word for word, and nothing else: "${VOICEMAIL_MESSAGE}"`) }] });
    expect(session!.errors).toEqual([]);

    // On the line: the greeting's unplayed audio cleared, then the whole message, then the hang-up.
    const [greetingItem, messageItem] = [...new Set(session!.sent_audio.map((audio) => audio.item_id))];
    const messageHashes = session!.sent_audio.filter((audio) => audio.item_id === messageItem).map((audio) => audio.sha256);
    expect(messageHashes).toHaveLength(50);
    const media = await Promise.all(peer.received.map(async (message) => (message.event === "media" ? sha256Hex(message.media!.payload) : message.event)));
    const clearAt = media.indexOf("clear");
    expect(clearAt).toBeGreaterThan(0);
    expect(media.slice(clearAt + 1).filter((entry) => entry !== "mark")).toEqual(messageHashes);
    expect(session!.sent_audio.filter((audio) => audio.item_id === greetingItem).length).toBeLessThan(1000);
    expect(control[4]).toMatchObject({ item_id: greetingItem, audio_end_ms: expect.any(Number) });
    expect(control[4]!.audio_end_ms).toBeLessThanOrEqual(peer.clears[0]!);
    const lastMark = peer.marks.at(-1)!;
    expect(lastMark.cleared).toBe(false);
    expect(lastMark.heardMs).toBe(peer.clears[0]! + 1000);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    expect(await extractions(call)).toEqual([]);

    const [, ended, summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(ended.data).toEqual({ status: "completed", ended_reason: "voicemail", attempt: 1, simulated: false });
    expect(summary.data).toMatchObject({ analysis: null, ended_reason: "voicemail", transcript: `AI: Hi, is this John?\nAI: ${VOICEMAIL_MESSAGE}` });
  });

  it("a fax: the call hangs up at the verdict, no message left even with a voicemail_message", async () => {
    const call = await placeLiveCall({ responses: ["Hi, is this John?"] }, { voicemailMessage: VOICEMAIL_MESSAGE });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer } = await greeted(twilioCall);

    expect((await reportMachineDetection(twilioCall, "fax")).status).toBe(204);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null });
    expect(turns(n)).toEqual([["agent", "Hi, is this John?"]]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    const [session] = await realtimeSessions(call.marker);
    expect(session!.client_events.filter((event) => event.type === "conversation.item.create")).toEqual([]);
  });

  it("a voicemail is tried again when retry.on names it: the next attempt is a new Twilio call", async () => {
    const call = await placeLiveCall({ responses: ["Hi, is this John?"] }, { agent: { retry: { max_attempts: 2, delay_minutes: 5, on: ["voicemail"] } } });
    const first = await twilioCallFor(call.notificationId);
    await answer(first);
    const { peer } = await greeted(first);
    expect((await reportMachineDetection(first, "machine_end_silence")).status).toBe(204);
    await peer.closed;

    const waiting = await vi.waitFor(async () => {
      const body = await getNotification(call);
      expect(body).toMatchObject({ status: "queued", queued_reason: "retry" });
      return body;
    }, WAIT);
    expect(waiting.attempts).toEqual([expect.objectContaining({ number: 1, status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep" })]);
    expect(await runDurableObjectAlarm(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.notificationId)))).toBe(true);
    const second = await twilioCallFor(call.notificationId, { attempt: 2 });
    expect(second.sid).not.toBe(first.sid);
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", attempts: [expect.objectContaining({ ended_reason: "voicemail" })] });
    // The last attempt is busy: the notification fails with both attempts.
    expect((await reportCallStatus(second, "busy")).status).toBe(204);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "failed", ended_reason: "customer-busy" });
    expect(n.attempts.map((attempt: { ended_reason: string }) => attempt.ended_reason)).toEqual(["voicemail", "customer-busy"]);
  });
});

describe("opt-out: the opt_out tool", () => {
  it("asked not to be called again mid-call: the phone is opted out at once, the agent acknowledges and ends the call, and later triggers are refused", async () => {
    const call = await placeLiveCall(
      {
        // The model calls opt_out without a word, then confirms once told it is done.
        responses: ["Hi, is this John?", "", "Understood, you won't be called again. Goodbye."],
        caller_turns: ["Please don't call me again."],
        tool_call_after_turn: 1,
        tool_name: "opt_out",
      },
      { events: ["call.started", "call.ended", "call.summary", "customer.opted_out"] },
    );
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    const [configured] = await realtimeSessions(call.marker);
    expect(configured!.instructions).toContain("don't call me again");
    expect(configured!.instructions).toContain("call opt_out at once");

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "assistant-ended-call", answered_by: "human", opted_out: true });
    expect(turns(n)).toEqual([
      ["agent", "Hi, is this John?"],
      ["customer", "Please don't call me again."],
      ["agent", "Understood, you won't be called again. Goodbye."],
    ]);

    // The tool was answered (after the phone was opted out), then the acknowledgement asked for.
    const [session] = await realtimeSessions(call.marker);
    const control = session!.client_events.filter((event) => event.type !== "input_audio_buffer.append");
    expect(control.map((event) => event.type)).toEqual(["session.update", "response.create", "conversation.item.create", "response.create"]);
    expect(JSON.parse(control[2]!.item.output)).toMatchObject({ opted_out: true });
    expect(session!.errors).toEqual([]);
    // Hung up once the acknowledgement had played: its mark came back before the stream closed.
    expect(peer.marks.at(-1)).toMatchObject({ heardMs: 120, cleared: false });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);

    // In D1 the phone opted out before the call ended: its event was stored before call.ended.
    const customer = await api("GET", `/api/v1/customers/${call.customerId}`, { key: call.account.key });
    expect(customer.body.phones).toEqual([expect.objectContaining({ value: "+14155552671", status: "opted_out" })]);
    expect(Date.parse(customer.body.phones[0].updated_at)).toBeLessThanOrEqual(Date.parse(n.ended_at));
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.started", "customer.opted_out", "call.ended", "call.summary"]);
    const [optedOut, , ended, summary] = await webhooks(call, ["customer.opted_out", "call.started", "call.ended", "call.summary"]);
    expect(optedOut.data).toEqual({ customer_id: call.customerId, phone: "+14155552671", simulated: false });
    expect(ended.data).toEqual({ status: "completed", ended_reason: "assistant-ended-call", attempt: 1, simulated: false });
    expect(summary.data).toMatchObject({ opted_out: true, ended_reason: "assistant-ended-call" });

    const again = await api("POST", "/api/v1/notifications", {
      key: call.account.key,
      body: { customer_id: call.customerId, agent_id: n.agent_id, variables: QUICKSTART_VARIABLES, ...ANY_HOUR },
    });
    expect(again.status).toBe(422);
    expect(again.body).toMatchObject({ code: "phone_opted_out" });
  });
});

describe("transfer: the transfer_call tool", () => {
  const askForHuman = { caller_turns: ["Can I talk to a real person?"], tool_call_after_turn: 1, tool_name: "transfer_call" };

  it("asked for a human with transfer_to: the hand-over line plays, then Twilio dials transfer_to on the live call; transferred, and later callbacks never hang it up", async () => {
    const call = await placeLiveCall({ responses: ["Hi, is this John?", "", "Please hold while I connect you."], ...askForHuman }, { agent: { transfer_to: TRANSFER_TO } });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    const [configured] = await realtimeSessions(call.marker);
    expect(configured!.client_events[0]!.session.tools.map((tool: { name: string }) => tool.name)).toEqual(["end_call", "opt_out", "transfer_call"]);
    expect(configured!.instructions).toContain("call transfer_call at once");

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "transferred", answered_by: "human", error_message: null });
    expect(turns(n)).toEqual([
      ["agent", "Hi, is this John?"],
      ["customer", "Can I talk to a real person?"],
      ["agent", "Please hold while I connect you."],
    ]);
    // The hand-over line played to its end, then the call's TwiML was replaced by a <Dial>: no hang-up.
    expect(peer.marks.at(-1)).toMatchObject({ heardMs: 120, cleared: false });
    const dial = `<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+14155552671">${TRANSFER_TO}</Dial></Response>`;
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Twiml: dial, TimeLimit: "14400" }]);
    expect(await fakeTwilioCall(twilioCall.sid)).toMatchObject({ status: "in-progress", twiml: dial, time_limit: "14400" });
    // A call the person spoke in is extracted as any other.
    expect(await extractions(call)).toHaveLength(1);
    const [, ended, summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(ended.data).toEqual({ status: "completed", ended_reason: "transferred", attempt: 1, simulated: false });
    expect(summary.data).toMatchObject({ ended_reason: "transferred", transcript: "AI: Hi, is this John?\nCustomer: Can I talk to a real person?\nAI: Please hold while I connect you." });

    // The person goes on talking to whoever answered: Twilio's callbacks for that leg, the
    // reconciler and the call object's alarm never hang it up, nor change the notification.
    expect((await reportCallStatus(twilioCall, "in-progress")).status).toBe(204);
    await reconcileCalls(env, { now: Date.now() + 60 * 60_000 });
    expect(await runDurableObjectAlarm(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.notificationId)))).toBe(false);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Twiml: dial, TimeLimit: "14400" }]);
    expect((await reportCallStatus(twilioCall, "completed", { CallDuration: "300" })).status).toBe(204);
    expect(await getNotification(call)).toEqual(n);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it("a transfer Twilio refuses (the leg ended meanwhile): the call ends in error saying why", async () => {
    const call = await placeLiveCall({ responses: ["Hi, is this John?", "", "Please hold while I connect you."], ...askForHuman }, { agent: { transfer_to: TRANSFER_TO } });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    // The leg ends on Twilio, its callback lost: the update that would transfer it is refused.
    expect((await fetch(`https://api.twilio.com/_fake/calls/${twilioCall.sid}`, { method: "POST", body: new URLSearchParams({ CallStatus: "completed" }) })).ok).toBe(true);

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "failed", call_status: "failed", ended_reason: "error", answered_by: "human" });
    expect(n.error_message).toMatch(/^The call could not be transferred: Twilio error 21220: Call is not in-progress/);
    const updates = await twilioUpdates(call.notificationId);
    expect(updates.map((update) => Object.keys(update))).toEqual([["Twiml", "TimeLimit"], ["Status"]]);
  });

  it("without transfer_to the model has no transfer_call: asked for a human, the agent says no one is available and ends the call", async () => {
    // The script would transfer, but the model cannot: it ends the call instead (its end_call for that turn).
    const call = await placeLiveCall({ responses: ["Hi, is this John?", "I'm sorry, no one is available right now. Goodbye."], ...askForHuman, end_call_after_turn: 1 });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    const [configured] = await realtimeSessions(call.marker);
    expect(configured!.client_events[0]!.session.tools.map((tool: { name: string }) => tool.name)).toEqual(["end_call", "opt_out"]);
    expect(configured!.instructions).toContain("no one is available to take the call right now");
    expect(configured!.instructions).not.toContain("transfer_call");

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", answered_by: "human" });
    expect(turns(n).at(-1)).toEqual(["agent", "I'm sorry, no one is available right now. Goodbye."]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
  });
});

describe("call screeners", () => {
  it("the model is always told how to answer one: the screener reply in one sentence, the purpose if it lacks it, then wait for the person", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer } = await greeted(twilioCall);
    const [session] = await realtimeSessions(call.marker);
    expect(session!.instructions).toContain(`call screener answers instead of the person (a phone's assistant asking who is calling and why), answer it in one sentence: "${SCREENER_REPLY}"`);
    expect(session!.instructions).toContain("add the purpose in a few words");
    expect(session!.instructions).toContain("when the person picks up, carry on with the call");
    peer.stop();
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "customer-ended-call" });
  });
});
