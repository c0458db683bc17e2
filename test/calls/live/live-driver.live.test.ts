import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { QUICKSTART_VARIABLES, storedEvents } from "../../fixtures";
import { realtimeSessions, sha256Hex } from "../../fakes/realtime-client";
import { MediaStreamPeer, reportCallStatus, reportMachineDetection, twilioCallFor, twilioSignature, type FakeTwilioCall } from "../../fakes/twilio-peer";
import { api, uniqueName } from "../../helpers";
import { DEFAULT_MODEL_PRICES } from "../../../src/calls/usage";
import { getConfig } from "../../../src/env";
import { ANY_HOUR, answer, expectedUsage, getNotification, greeted, placeLiveCall, RESPONSE_USAGE, say, streamUp, twilioUpdates, WAIT, waitUntilEnded, webhooks } from "./support";

/**
 * Live calls end to end, inside workerd: our Worker dials the fake Twilio, the test plays Twilio's
 * side (signed status callbacks and the Media Stream, test/fakes/twilio-peer.ts), the fake OpenAI
 * Realtime holds the conversation as its script says and the fake Chat Completions extracts the
 * result. What is checked is what people and peers see: API bodies, webhooks, and the protocol
 * messages the fakes and the peer recorded.
 */

describe("a live call", () => {
  it("greets first, hears the caller, ends with end_call, hangs up Twilio, and delivers the extracted result", async () => {
    const call = await placeLiveCall({
      responses: ["Hi, is this John? Does Thursday at 2 PM still work?", "Wonderful, see you then. Goodbye!"],
      caller_turns: ["Yes, that works for me."],
      end_call_after_turn: 1,
    });
    expect(call.created.status).toBe(201);
    expect(call.created.body).toMatchObject({ notification: { status: "in_progress", call_status: "queued", simulated: false }, call: { status: "queued" } });

    // What Twilio was asked to do: dial the customer and connect the call to our Media Stream.
    const twilioCall = await twilioCallFor(call.notificationId);
    expect(twilioCall.params).toMatchObject({
      To: "+14155552671",
      From: "+14155550000",
      StatusCallback: `https://echo.test/twilio/status/${call.notificationId}`,
      Timeout: "30",
      TimeLimit: "190",
      // Machine detection in the background, so the stream (and the greeting) starts at the answer;
      // a machine's verdict waits for the end of its greeting (person-called.live.test.ts).
      MachineDetection: "DetectMessageEnd",
      AsyncAmd: "true",
      AsyncAmdStatusCallback: `https://echo.test/twilio/amd/${call.notificationId}`,
      AsyncAmdStatusCallbackMethod: "POST",
    });
    // The leg's CallSid is stored before the trigger answers: the reconciler hangs up a lost leg by it.
    const stored = await env.DB.prepare("SELECT carrier_call_sid FROM notifications WHERE id = ?").bind(call.notificationId).first<{ carrier_call_sid: string | null }>();
    expect(stored?.carrier_call_sid).toBe(twilioCall.sid);
    const twiml = String(twilioCall.params.Twiml);
    expect(twiml).toContain(`<Stream url="wss://echo.test/twilio/media/${call.notificationId}">`);
    expect(twiml).toContain(`<Parameter name="notification_id" value="${call.notificationId}"/>`);
    expect(twiml).toMatch(/<Parameter name="stream_token" value="[0-9a-f]{64}"\/>/);

    await answer(twilioCall);
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", call_status: "in-progress", answered_by: "human" });

    const { peer, line } = await streamUp(twilioCall);
    // The greeting is the first thing on the line, the model's audio untouched; its 60 ms of audio
    // are marked once, at the end of the item.
    await vi.waitFor(() => expect(peer.marks).toHaveLength(1), WAIT);
    const [session] = await realtimeSessions(call.marker);
    expect(peer.received[0]!.event).toBe("media");
    const greeting = peer.received.slice(0, 4);
    expect(greeting.map((message) => message.event)).toEqual(["media", "media", "media", "mark"]);
    expect(peer.marks[0]!.heardMs).toBe(60);
    const outboundHashes = await Promise.all(peer.receivedOf("media").map((message) => sha256Hex(message.media!.payload)));
    expect(outboundHashes).toEqual(session!.sent_audio.map((audio) => audio.sha256));
    expect(peer.receivedOf("media").every((message) => message.streamSid === peer.streamSid)).toBe(true);

    // The caller answers; the model's reply calls end_call, and once the goodbye has played we hang up.
    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({
      status: "completed",
      call_status: "completed",
      ended_reason: "assistant-ended-call",
      answered_by: "human",
      call_result: { confirmed: true, reschedule_request: null },
      error_message: null,
      simulated: false,
    });
    expect(n.transcript.map((turn: { role: string; text: string }) => [turn.role, turn.text])).toEqual([
      ["agent", "Hi, is this John? Does Thursday at 2 PM still work?"],
      ["customer", "Yes, that works for me."],
      ["agent", "Wonderful, see you then. Goodbye!"],
    ]);
    expect(n.duration_seconds).toBeGreaterThan(0);
    // Hung up only after the goodbye played: its mark came back before the stream closed.
    expect(peer.marks).toHaveLength(2);
    expect(peer.marks[1]!.heardMs).toBe(120);
    expect(peer.marks.every((mark) => !mark.cleared)).toBe(true);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);

    // Every caller frame reached the model, in order, untouched.
    const [ended] = await realtimeSessions(call.marker);
    const appended = ended!.client_events.filter((event) => event.type === "input_audio_buffer.append").map((event) => event.sha256);
    const callerHashes = await Promise.all(peer.sent.filter((message) => message.event === "media").map((message) => sha256Hex((message.media as { payload: string }).payload)));
    expect(appended.length).toBeGreaterThan(11);
    expect(appended).toEqual(callerHashes.slice(0, appended.length));
    expect(ended!.closed).toMatchObject({ by: "client" });
    expect(ended!.errors).toEqual([]);

    const [started, endedEvent, summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(started.data).toEqual({ status: "in_progress", attempt: 1, simulated: false });
    expect(endedEvent.data).toEqual({ status: "completed", ended_reason: "assistant-ended-call", attempt: 1, simulated: false });
    expect(summary.data).toMatchObject({
      analysis: { confirmed: true, reschedule_request: null },
      transcript: "AI: Hi, is this John? Does Thursday at 2 PM still work?\nCustomer: Yes, that works for me.\nAI: Wonderful, see you then. Goodbye!",
      ended_reason: "assistant-ended-call",
      duration_seconds: n.duration_seconds,
      simulated: false,
    });

    // Twilio's own end of the call, arriving afterwards, changes nothing.
    expect((await reportCallStatus(twilioCall, "completed", { CallDuration: "4" })).status).toBe(204);
    expect(await getNotification(call)).toEqual(n);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it("barge-in: clears Twilio's buffer and truncates the agent's item to the audio the caller heard", async () => {
    // Five seconds of greeting, all sent at once: the caller talks over it well before its end.
    const call = await placeLiveCall({ responses: ["This is a long greeting that the caller will talk over.", "Sorry, go ahead."], audio_deltas: 250 });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(() => expect(peer.receivedOf("media").length).toBe(250), WAIT);
    await vi.waitFor(() => expect(peer.marks.length).toBeGreaterThanOrEqual(5), WAIT);

    say(peer, line);
    await vi.waitFor(() => expect(peer.receivedOf("clear")).toHaveLength(1), WAIT);
    const [session] = await vi.waitFor(async () => {
      const sessions = await realtimeSessions(call.marker);
      expect(sessions[0]!.client_events.some((event) => event.type === "conversation.item.truncate")).toBe(true);
      return sessions;
    }, WAIT);
    const truncate = session!.client_events.find((event) => event.type === "conversation.item.truncate")!;
    const greetingItem = session!.sent_audio[0]!.item_id;
    expect(truncate).toMatchObject({ item_id: greetingItem, content_index: 0 });
    // Exactly the audio up to a mark the caller had played back (a mark every 100 ms) — never more
    // than they heard when the clear arrived, nor than was sent.
    const playedMarks = peer.marks.filter((mark) => !mark.cleared).map((mark) => mark.heardMs);
    expect(playedMarks.every((heardMs, index) => heardMs === (index + 1) * 100)).toBe(true);
    expect(playedMarks).toContain(truncate.audio_end_ms);
    expect(truncate.audio_end_ms).toBeGreaterThan(0);
    expect(truncate.audio_end_ms).toBeLessThanOrEqual(peer.clears[0]!);
    expect(truncate.audio_end_ms).toBeLessThan(5000);
    expect(session!.errors).toEqual([]);
    // The unplayed audio's marks came back with the clear.
    expect(peer.marks.some((mark) => mark.cleared)).toBe(true);

    peer.stop();
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", answered_by: "human" });
    expect(n.transcript[0]).toMatchObject({ role: "agent" });
  });

  it("barge-in before the first mark: the audio sent so far is cleared and the item truncated to 0 ms heard", async () => {
    // The greeting trickles in (20 ms every 400 ms): the caller cuts in while less than a mark's worth has been sent.
    const call = await placeLiveCall({ responses: ["A slow greeting.", "Sorry, go ahead."], audio_deltas: 10, delta_interval_ms: 400 });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(() => expect(peer.receivedOf("media").length).toBeGreaterThanOrEqual(1), WAIT);

    say(peer, line);
    await vi.waitFor(() => expect(peer.receivedOf("clear")).toHaveLength(1), WAIT);
    const truncate = await vi.waitFor(async () => {
      const [session] = await realtimeSessions(call.marker);
      const sent = session!.client_events.find((event) => event.type === "conversation.item.truncate");
      expect(sent).toBeDefined();
      return { ...sent!, greetingItem: session!.sent_audio[0]!.item_id };
    }, WAIT);
    expect(truncate).toMatchObject({ item_id: truncate.greetingItem, content_index: 0, audio_end_ms: 0 });
    // Before the clear, the greeting's first chunks went out with no mark after them.
    const beforeClear = peer.received.slice(0, peer.received.findIndex((message) => message.event === "clear"));
    expect(beforeClear.filter((message) => message.event === "mark")).toEqual([]);
    expect(beforeClear.filter((message) => message.event === "media").length).toBeGreaterThanOrEqual(1);
    expect(beforeClear.filter((message) => message.event === "media").length).toBeLessThan(5);

    peer.stop();
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "customer-ended-call" });
  });
});

describe("calls that never connect", () => {
  it.each([
    ["busy", {}, { status: "failed", call_status: "busy", ended_reason: "customer-busy", error_message: null }],
    ["no-answer", {}, { status: "failed", call_status: "no-answer", ended_reason: "customer-did-not-answer", error_message: null }],
    ["failed", { SipResponseCode: "404" }, { status: "failed", call_status: "failed", ended_reason: "error", error_message: "Twilio could not connect the call (SIP 404)" }],
    ["canceled", {}, { status: "canceled", call_status: "canceled", ended_reason: "canceled", error_message: null }],
  ])("Twilio reports %s: the notification ends that way with only call.ended", async (twilioStatus, extra, expected) => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", call_status: "ringing" });
    expect((await reportCallStatus(twilioCall, twilioStatus, extra)).status).toBe(204);

    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ ...expected, answered_at: null, answered_by: null, transcript: [], call_result: null, duration_seconds: 0 });
    // The model session opened while it rang made no response: nothing used, nothing to pay.
    expect(n.usage).toEqual(expectedUsage(0));
    expect(n.started_at).not.toBeNull();
    const [ended] = await webhooks(call, ["call.ended"]);
    expect(ended.data).toEqual({ status: expected.status, ended_reason: expected.ended_reason, attempt: 1, simulated: false });
    // The model session opened for the call is closed, and nothing was hung up: Twilio ended it.
    await vi.waitFor(async () => expect((await realtimeSessions(call.marker))[0]!.closed).toMatchObject({ by: "client" }), WAIT);
    expect(await twilioUpdates(call.notificationId)).toEqual([]);
  });

  it.each([
    ["+15005550001", /^Twilio error 21217: Phone number does not appear to be valid$/],
    ["+15005550009", /^Could not reach Twilio \(POST /],
  ])("Twilio refusing the call to %s: a 201 with the notification failed and Twilio's message, never a 500", async (phone, message) => {
    const key = uniqueName("idem");
    const call = await placeLiveCall({}, { phone, idempotencyKey: key });
    expect(call.created.status).toBe(201);
    expect(call.created.body).toMatchObject({
      notification: { status: "failed", call_status: "failed", ended_reason: "error", error_message: expect.stringMatching(message), answered_at: null, transcript: [] },
      call: { status: "failed" },
    });
    expect(await getNotification(call)).toEqual(call.created.body.notification);
    const [ended] = await webhooks(call, ["call.ended"]);
    expect(ended.data).toEqual({ status: "failed", ended_reason: "error", attempt: 1, simulated: false });
    await vi.waitFor(async () => expect((await realtimeSessions(call.marker))[0]?.closed ?? { by: "client" }).toMatchObject({ by: "client" }), WAIT);

    // A replay says the same and dials nothing.
    const replay = await api("POST", "/api/v1/notifications", {
      key: call.account.key,
      headers: { "Idempotency-Key": key },
      body: { customer_id: call.created.body.notification.customer_id, agent_id: call.created.body.notification.agent_id, variables: QUICKSTART_VARIABLES, ...ANY_HOUR },
    });
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(call.created.body);
  });
});

describe("status callbacks out of order", () => {
  it("completed before in-progress: the call ends completed once, and the late callbacks change nothing", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing", { SequenceNumber: "1" })).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "completed", { SequenceNumber: "3", AnsweredBy: "human", CallDuration: "7" })).status).toBe(204);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "customer-ended-call", answered_by: "human" });

    expect((await reportCallStatus(twilioCall, "in-progress", { SequenceNumber: "2", AnsweredBy: "human" })).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "ringing", { SequenceNumber: "1" })).status).toBe(204);
    expect(await getNotification(call)).toEqual(n);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it("duplicates and stale callbacks never move a call backwards", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing", { SequenceNumber: "1" })).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "in-progress", { SequenceNumber: "2", AnsweredBy: "human" })).status).toBe(204);
    const answered = await getNotification(call);
    expect(answered).toMatchObject({ status: "in_progress", call_status: "in-progress", answered_by: "human" });

    // The same callback again, a stale ringing, and an initiated that lost its way.
    expect((await reportCallStatus(twilioCall, "in-progress", { SequenceNumber: "2", AnsweredBy: "machine_start" })).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "ringing", { SequenceNumber: "1" })).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "initiated", { SequenceNumber: "0" })).status).toBe(204);
    // A newer callback with an earlier status is no step back either.
    expect((await reportCallStatus(twilioCall, "ringing", { SequenceNumber: "5" })).status).toBe(204);
    expect(await getNotification(call)).toEqual(answered);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.started"]);

    expect((await reportCallStatus(twilioCall, "completed", { SequenceNumber: "6", CallDuration: "3" })).status).toBe(204);
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", answered_at: answered.answered_at });
  });

  it("a fax (AnsweredBy fax on the answer) counts as a machine, as the detection verdict does", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "in-progress", { AnsweredBy: "fax" })).status).toBe(204);
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", answered_by: "machine_end_beep" });
    expect((await reportCallStatus(twilioCall, "completed", { AnsweredBy: "fax", CallDuration: "2" })).status).toBe(204);
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null });
  });

  it("an answering machine (AnsweredBy machine_*) makes the call a voicemail", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "in-progress", { AnsweredBy: "machine_end_beep" })).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "completed", { AnsweredBy: "machine_end_beep", CallDuration: "9" })).status).toBe(204);
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null });
  });
});

describe("asynchronous answering machine detection", () => {
  /** Answered (the verdict is not known yet), the stream up and the greeting played. */
  async function answeredWithGreeting(twilioCall: FakeTwilioCall) {
    expect((await reportCallStatus(twilioCall, "in-progress")).status).toBe(204);
    return greeted(twilioCall);
  }

  it("without a voicemail_message, a machine verdict hangs up at once: voicemail, nothing left on the machine", async () => {
    const call = await placeLiveCall({ responses: ["Hi, is this John?"] });
    const twilioCall = await twilioCallFor(call.notificationId);
    const { peer } = await answeredWithGreeting(twilioCall);

    expect((await reportMachineDetection(twilioCall, "machine_end_beep")).status).toBe(204);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null });
    expect(n.transcript.map((turn: { role: string; text: string }) => [turn.role, turn.text])).toEqual([["agent", "Hi, is this John?"]]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    const [session] = await realtimeSessions(call.marker);
    expect(session!.closed).not.toBeNull();
  });

  it("a verdict ahead of the in-progress callback and the stream answers the call as a machine and hangs up: no stream to leave a message on", async () => {
    const call = await placeLiveCall({}, { voicemailMessage: "Please call Acme Inc back." });
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    expect((await reportMachineDetection(twilioCall, "machine_end_beep")).status).toBe(204);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "voicemail", answered_by: "machine_end_beep", call_result: null, transcript: [] });
    expect(n.answered_at).not.toBeNull();
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);

    // Twilio's late callbacks change nothing.
    expect((await reportCallStatus(twilioCall, "in-progress")).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "completed", { CallDuration: "20" })).status).toBe(204);
    expect(await getNotification(call)).toEqual(n);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });

  it.each(["human", "unknown"])("a %s verdict changes nothing: the person's call goes on and gets its result", async (answeredBy) => {
    const call = await placeLiveCall({ responses: ["Hi, is this John?", "Great, see you then. Goodbye!"], caller_turns: ["Yes, that works for me."], end_call_after_turn: 1 });
    const twilioCall = await twilioCallFor(call.notificationId);
    const { peer, line } = await answeredWithGreeting(twilioCall);
    const before = await getNotification(call);

    expect((await reportMachineDetection(twilioCall, answeredBy)).status).toBe(204);
    expect(await getNotification(call)).toEqual(before);
    say(peer, line);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", answered_by: "human", call_result: { confirmed: true, reschedule_request: null } });
  });

  it("a verdict for another CallSid changes nothing", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    const { peer } = await answeredWithGreeting(twilioCall);
    const before = await getNotification(call);

    const otherCallSid = `CA${"0".repeat(32)}`;
    expect((await reportMachineDetection(twilioCall, "machine_end_beep", { callSid: otherCallSid })).status).toBe(204);
    expect(await getNotification(call)).toEqual(before);
    peer.stop();
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "customer-ended-call", answered_by: "human" });
  });
});

describe("the media stream", () => {
  it("refuses a stream whose start does not carry the call's stream token", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    const url = `wss://echo.test/twilio/media/${call.notificationId}`;
    const response = await exports.default.fetch(new Request(url.replace(/^wss/, "https"), { headers: { Upgrade: "websocket", "X-Twilio-Signature": await twilioSignature(url) } }));
    expect(response.status).toBe(101);
    const socket = response.webSocket!;
    const closed = new Promise<CloseEvent>((resolve) => socket.addEventListener("close", resolve));
    socket.accept();
    socket.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
    socket.send(
      JSON.stringify({
        event: "start",
        sequenceNumber: "1",
        streamSid: "MZ00000000000000000000000000000000",
        start: { streamSid: "MZ00000000000000000000000000000000", callSid: twilioCall.sid, accountSid: twilioCall.account_sid, tracks: ["inbound"], customParameters: { notification_id: call.notificationId, stream_token: "0".repeat(64) }, mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 } },
      }),
    );
    expect((await closed).code).toBe(1008);
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", call_status: "queued", answered_at: null });
    // The real stream still gets through.
    await answer(twilioCall);
    const peer = await MediaStreamPeer.connect(twilioCall);
    await vi.waitFor(() => expect(peer.receivedOf("media").length).toBeGreaterThan(0), WAIT);
    peer.stop();
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "customer-ended-call" });
  });

  it("the watchdog ends a call whose stream sends no audio: silence-timed-out, and Twilio is hung up", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    // A stream that starts and then carries nothing.
    const url = `wss://echo.test/twilio/media/${call.notificationId}`;
    const response = await exports.default.fetch(new Request(url.replace(/^wss/, "https"), { headers: { Upgrade: "websocket", "X-Twilio-Signature": await twilioSignature(url) } }));
    const socket = response.webSocket!;
    const closed = new Promise<CloseEvent>((resolve) => socket.addEventListener("close", resolve));
    const received: string[] = [];
    socket.addEventListener("message", (event) => {
      received.push(JSON.parse(String(event.data)).event);
    });
    socket.accept();
    const streamToken = /name="stream_token" value="([0-9a-f]+)"/.exec(String(twilioCall.params.Twiml))![1]!;
    socket.send(
      JSON.stringify({
        event: "start",
        sequenceNumber: "1",
        streamSid: "MZ11111111111111111111111111111111",
        start: { streamSid: "MZ11111111111111111111111111111111", callSid: twilioCall.sid, accountSid: twilioCall.account_sid, tracks: ["inbound"], customParameters: { notification_id: call.notificationId, stream_token: streamToken }, mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 } },
      }),
    );
    // The stream is live: the greeting comes.
    await vi.waitFor(() => expect(received).toContain("media"), WAIT);

    const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.notificationId));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", call_status: "completed", ended_reason: "silence-timed-out", answered_by: "human" });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    expect((await closed).code).toBe(1000);
    const [, ended] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(ended.data).toEqual({ status: "completed", ended_reason: "silence-timed-out", attempt: 1, simulated: false });
  });

  it("a caller who keeps talking keeps the watchdog away", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const peer = await MediaStreamPeer.connect(twilioCall);
    // Caller audio has come through the call object (the model got it).
    await vi.waitFor(async () => expect((await realtimeSessions(call.marker))[0]!.client_events.some((event) => event.type === "input_audio_buffer.append")).toBe(true), WAIT);
    const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.notificationId));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await getNotification(call)).toMatchObject({ status: "in_progress", call_status: "in-progress" });
    peer.stop();
    expect(await waitUntilEnded(call)).toMatchObject({ status: "completed", ended_reason: "customer-ended-call" });
  });
});

describe("a crashed call object", () => {
  it("still ends the call from what it stored: the watchdog hangs up and keeps the transcript", async () => {
    const call = await placeLiveCall({ responses: ["Hi John, this is Acme."], caller_turns: ["Yes, that works for me."] });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    say(peer, line);
    // The caller's turn is transcribed and the model has answered it: three turns are stored.
    const stub = () => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.notificationId));
    await vi.waitFor(async () => expect((await runInDurableObject(stub(), (_, state) => state.storage.list({ prefix: "turn:" }))).size).toBe(3), WAIT);

    // The object crashes: its sockets go with it, what it stored stays (a stub from before is broken).
    await abortAllDurableObjects();
    await peer.closed;
    expect(await runDurableObjectAlarm(stub())).toBe(true);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "silence-timed-out", answered_by: "human", call_result: { confirmed: true, reschedule_request: null } });
    expect(n.transcript.map((turn: { role: string; text: string }) => [turn.role, turn.text])).toEqual([
      ["agent", "Hi John, this is Acme."],
      ["customer", "Yes, that works for me."],
      ["agent", "Hi John, this is Acme."],
    ]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
  });
});

describe("the model session", () => {
  it("dropped mid-call, it is reconnected with the conversation so far and the call goes on", async () => {
    // The first session closes (1011) right after the greeting's response.done: its 16th event.
    const call = await placeLiveCall({ responses: ["Hi John, this is Acme."], caller_turns: ["Yes, that works for me."], end_call_after_turn: 1, drop_after_events: 16, drop_sessions: 1, usage: RESPONSE_USAGE });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    const sessions = await vi.waitFor(async () => {
      const all = await realtimeSessions(call.marker);
      expect(all).toHaveLength(2);
      expect(all[1]!.server_events).toContain("session.updated");
      return all;
    }, WAIT);
    expect(sessions[0]!.closed).toMatchObject({ by: "server", code: 1011 });
    // The new session was given the greeting as the assistant's earlier turn.
    expect(sessions[1]!.client_events.filter((event) => event.type === "conversation.item.create").map((event) => event.item)).toEqual([
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "Hi John, this is Acme." }] },
    ]);
    await vi.waitFor(() => expect(peer.marks).toHaveLength(1), WAIT);

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", call_result: { confirmed: true, reschedule_request: null }, error_message: null });
    expect(n.transcript.map((turn: { role: string }) => turn.role)).toEqual(["agent", "customer", "agent"]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    // Each session made one response (the greeting, then the goodbye): the call's usage is both.
    expect((await realtimeSessions(call.marker)).map((session) => session.server_events.filter((type) => type === "response.done").length)).toEqual([1, 1]);
    expect(n.usage).toEqual(expectedUsage(2));
  });

  it("dropped again after the reconnect: Twilio is hung up and the call ends in error with the partial transcript", async () => {
    // Every session drops at its 16th event: the first after the greeting, the second mid-reply.
    const call = await placeLiveCall({ responses: ["Hi John, this is Acme."], caller_turns: ["Yes, that works for me."], drop_after_events: 16 });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await streamUp(twilioCall);
    await vi.waitFor(async () => expect((await realtimeSessions(call.marker))[1]?.server_events).toContain("session.updated"), WAIT);

    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "failed", call_status: "failed", ended_reason: "error", answered_by: "human" });
    expect(n.error_message).toMatch(/^The voice model session was lost and could not be restored: /);
    expect(n.transcript.map((turn: { role: string; text: string }) => [turn.role, turn.text])).toEqual([
      ["agent", "Hi John, this is Acme."],
      ["customer", "Yes, that works for me."],
    ]);
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    const [, ended, summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(ended.data).toEqual({ status: "failed", ended_reason: "error", attempt: 1, simulated: false });
    expect(summary.data.transcript).toBe("AI: Hi John, this is Acme.\nCustomer: Yes, that works for me.");
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.started", "call.ended", "call.summary"]);
  });
});

describe("usage", () => {
  it("a whole call ends with usage on the notification and in call.summary: the model's counters, priced at MODEL_PRICES", async () => {
    const call = await placeLiveCall({ responses: ["Hi, is this John?", "Wonderful. Goodbye!"], caller_turns: ["Yes, that works for me."], end_call_after_turn: 1, usage: RESPONSE_USAGE });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    say(peer, line);
    await peer.closed;
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call" });

    // Two responses reported usage (the greeting and the goodbye), and the last one's came before the close.
    const [session] = await realtimeSessions(call.marker);
    expect(session!.server_events.filter((type) => type === "response.done")).toHaveLength(2);
    expect(n.usage).toEqual(expectedUsage(2));
    const [, , summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(summary.data.usage).toEqual(n.usage);
    // Priced from MODEL_PRICES, not the list prices, which come to $0.019696 for these tokens.
    expect(getConfig(env).modelPrices["gpt-realtime"]).not.toEqual(DEFAULT_MODEL_PRICES["gpt-realtime"]);
    expect(n.usage.estimated_cost_usd).toBe(0.0247);
  });
});

describe("the call result", () => {
  it("an extraction that fails the schema twice: call_result null and error_message says why", async () => {
    const call = await placeLiveCall({ responses: ["Hi John, this is Acme.", "Thanks, goodbye!"], caller_turns: ["Yes. [extract-invalid]"], end_call_after_turn: 1 });
    const twilioCall = await twilioCallFor(call.notificationId);
    await answer(twilioCall);
    const { peer, line } = await greeted(twilioCall);
    say(peer, line);
    const n = await waitUntilEnded(call);
    expect(n).toMatchObject({ status: "completed", ended_reason: "assistant-ended-call", call_result: null });
    expect(n.error_message).toMatch(/does not satisfy the agent's output_schema \(2 attempts\)/);
    const requests = await (await fetch(`https://api.openai.com/_fake/chat/requests?match=${call.marker}`)).json();
    expect(requests).toHaveLength(2);
    const [, , summary] = await webhooks(call, ["call.started", "call.ended", "call.summary"]);
    expect(summary.data.analysis).toBeNull();
  });
});

describe("cancel", () => {
  it("cancels a ringing live call: Twilio is told to hang up and the call is never answered", async () => {
    const call = await placeLiveCall({});
    const twilioCall = await twilioCallFor(call.notificationId);
    expect((await reportCallStatus(twilioCall, "ringing")).status).toBe(204);
    const res = await api("POST", `/api/v1/notifications/${call.notificationId}/cancel`, { key: call.account.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "canceled", call_status: "canceled", ended_reason: "canceled", answered_at: null });
    expect(await twilioUpdates(call.notificationId)).toEqual([{ Status: "completed" }]);
    // Twilio's canceled callback and a late in-progress change nothing.
    expect((await reportCallStatus(twilioCall, "in-progress", { AnsweredBy: "human" })).status).toBe(204);
    expect((await reportCallStatus(twilioCall, "canceled")).status).toBe(204);
    expect(await getNotification(call)).toEqual(res.body);
    expect((await storedEvents(call.notificationId)).map((event) => event.event_name)).toEqual(["call.ended"]);
  });
});
