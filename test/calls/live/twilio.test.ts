import { describe, expect, it } from "vitest";
import {
  dialTwiml,
  isFinalTwilioStatus,
  parseTwilioMachineDetectionCallback,
  parseTwilioStatusCallback,
  streamTwiml,
  twilioMachineDetectionCallbackUrl,
  twilioStatusCallbackUrl,
  twilioStatusRank,
  twilioStreamUrl,
  type TwilioCallStatus,
} from "../../../src/calls/live/twilio";

const CALL_SID = "CA0123456789abcdef0123456789abcdef";

describe("streamTwiml", () => {
  it("connects the call to a bidirectional stream carrying the parameters, XML-escaped", () => {
    const twiml = streamTwiml("wss://echo.example.com/twilio/media/n1?a=1&b=2", { notification_id: "n1", stream_token: `<"tok'&>` });
    expect(twiml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>' +
        '<Stream url="wss://echo.example.com/twilio/media/n1?a=1&amp;b=2">' +
        '<Parameter name="notification_id" value="n1"/>' +
        '<Parameter name="stream_token" value="&lt;&quot;tok&apos;&amp;&gt;"/>' +
        "</Stream></Connect></Response>",
    );
  });
});

describe("dialTwiml", () => {
  it("dials the number with the given caller ID, XML-escaped", () => {
    expect(dialTwiml("+14155550199", { callerId: "+14155552671" })).toBe('<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+14155552671">+14155550199</Dial></Response>');
    expect(dialTwiml("<1&2>", { callerId: '"3"' })).toContain('<Dial callerId="&quot;3&quot;">&lt;1&amp;2&gt;</Dial>');
  });
});

describe("callback and stream URLs", () => {
  it("follow the public origin; the stream's scheme is its WebSocket counterpart", () => {
    expect(twilioStatusCallbackUrl("https://echo.example.com", "n1")).toBe("https://echo.example.com/twilio/status/n1");
    expect(twilioMachineDetectionCallbackUrl("https://echo.example.com", "n1")).toBe("https://echo.example.com/twilio/amd/n1");
    expect(twilioStreamUrl("https://echo.example.com", "n1")).toBe("wss://echo.example.com/twilio/media/n1");
    expect(twilioStreamUrl("http://127.0.0.1:8787", "n1")).toBe("ws://127.0.0.1:8787/twilio/media/n1");
  });
});

describe("parseTwilioStatusCallback", () => {
  it("reads the fields of Twilio's form, ignoring the ones it does not use", () => {
    const update = parseTwilioStatusCallback({
      AccountSid: "AC00000000000000000000000000000000",
      ApiVersion: "2010-04-01",
      CallSid: CALL_SID,
      CallStatus: "completed",
      CallbackSource: "call-progress-events",
      SequenceNumber: "3",
      AnsweredBy: "human",
      CallDuration: "42",
      Direction: "outbound-api",
      Timestamp: "Tue, 31 Aug 2010 20:36:28 +0000",
    });
    expect(update).toEqual({ callSid: CALL_SID, callStatus: "completed", sequenceNumber: 3, answeredBy: "human", durationSeconds: 42, sipResponseCode: null });
  });

  it("keeps why a call attempt failed, and leaves absent fields null", () => {
    expect(parseTwilioStatusCallback({ CallSid: CALL_SID, CallStatus: "busy", SipResponseCode: "486" })).toEqual({
      callSid: CALL_SID,
      callStatus: "busy",
      sequenceNumber: null,
      answeredBy: null,
      durationSeconds: null,
      sipResponseCode: 486,
    });
  });

  it("throws on anything that is not a call status callback", () => {
    expect(() => parseTwilioStatusCallback({})).toThrow();
    expect(() => parseTwilioStatusCallback({ CallSid: CALL_SID, CallStatus: "exploded" })).toThrow();
    expect(() => parseTwilioStatusCallback({ CallSid: "not-a-sid", CallStatus: "ringing" })).toThrow();
    expect(() => parseTwilioStatusCallback({ CallSid: CALL_SID, CallStatus: "ringing", SequenceNumber: "two" })).toThrow();
  });
});

describe("parseTwilioMachineDetectionCallback", () => {
  it("reads the verdict and how long detection took, ignoring AccountSid", () => {
    expect(parseTwilioMachineDetectionCallback({ AccountSid: "AC00000000000000000000000000000000", CallSid: CALL_SID, AnsweredBy: "machine_end_beep", MachineDetectionDuration: "2400" })).toEqual({
      callSid: CALL_SID,
      answeredBy: "machine_end_beep",
      detectionDurationMs: 2400,
    });
    expect(parseTwilioMachineDetectionCallback({ CallSid: CALL_SID, AnsweredBy: "unknown" })).toEqual({ callSid: CALL_SID, answeredBy: "unknown", detectionDurationMs: null });
  });

  it("accepts every AnsweredBy Twilio documents", () => {
    for (const answeredBy of ["human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"]) {
      expect(parseTwilioMachineDetectionCallback({ CallSid: CALL_SID, AnsweredBy: answeredBy }).answeredBy).toBe(answeredBy);
    }
  });

  it("throws on anything that is not a detection verdict", () => {
    expect(() => parseTwilioMachineDetectionCallback({ CallSid: CALL_SID })).toThrow();
    expect(() => parseTwilioMachineDetectionCallback({ CallSid: CALL_SID, AnsweredBy: "robot" })).toThrow();
    expect(() => parseTwilioMachineDetectionCallback({ CallSid: CALL_SID, CallStatus: "ringing" })).toThrow();
    expect(() => parseTwilioMachineDetectionCallback({ CallSid: "not-a-sid", AnsweredBy: "human" })).toThrow();
    expect(() => parseTwilioMachineDetectionCallback({ CallSid: CALL_SID, AnsweredBy: "human", MachineDetectionDuration: "fast" })).toThrow();
  });
});

describe("status order", () => {
  it("ranks queued/initiated < ringing < in-progress < every final status", () => {
    const order: TwilioCallStatus[][] = [["queued", "initiated"], ["ringing"], ["in-progress"], ["completed", "busy", "no-answer", "failed", "canceled"]];
    order.forEach((statuses, rank) => {
      for (const status of statuses) {
        expect(twilioStatusRank(status)).toBe(rank);
        expect(isFinalTwilioStatus(status)).toBe(rank === 3);
      }
    });
  });
});
