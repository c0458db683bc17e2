import { describe, expect, it } from "vitest";
import { mediaPayload } from "../../../src/calls/live/media-bridge";

const PAYLOAD = "//7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/w==";

describe("mediaPayload", () => {
  it("reads the payload of a media message as Twilio sends it", () => {
    const message = JSON.stringify({
      event: "media",
      sequenceNumber: "3",
      media: { track: "inbound", chunk: "1", timestamp: "5", payload: PAYLOAD },
      streamSid: "MZ18ad3ab5a668481ce02b83e7395059f0",
    });
    expect(mediaPayload(message)).toBe(PAYLOAD);
  });

  it("leaves every other message to the JSON parser", () => {
    const others = [
      // Another event, even one that carries a payload field further on.
      JSON.stringify({ event: "mark", sequenceNumber: "4", streamSid: "MZ1", mark: { name: "1" }, payload: "x" }),
      JSON.stringify({ event: "start", start: { streamSid: "MZ1", callSid: "CA1", customParameters: { payload: "x" } } }),
      // The same message spelled otherwise: spaces, another order.
      `{ "event": "media", "media": { "payload": "${PAYLOAD}" } }`,
      JSON.stringify({ sequenceNumber: "3", event: "media", media: { payload: PAYLOAD } }),
      // An escaped payload, or none, or one cut off.
      `{"event":"media","media":{"payload":"\\/\\/7+"}}`,
      JSON.stringify({ event: "media", media: { track: "inbound" } }),
      `{"event":"media","media":{"payload":"//7+`,
    ];
    for (const message of others) expect(mediaPayload(message), message).toBeNull();
  });
});
