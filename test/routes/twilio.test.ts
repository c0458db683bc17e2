import { describe, expect, it } from "vitest";
import { api } from "../helpers";

describe("Twilio routes on the call simulator", () => {
  it("do not exist without live calls configured", async () => {
    const status = await api("POST", "/twilio/status/some-notification", { rawBody: "CallSid=CA1&CallStatus=ringing", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(status.status).toBe(404);
    expect(status.body).toMatchObject({ statusCode: 404, code: "route_not_found" });
    const amd = await api("POST", "/twilio/amd/some-notification", { rawBody: "CallSid=CA1&AnsweredBy=human", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(amd.status).toBe(404);
    expect(amd.body).toMatchObject({ statusCode: 404, code: "route_not_found" });
    const media = await api("GET", "/twilio/media/some-notification", { headers: { Upgrade: "websocket" } });
    expect(media.status).toBe(404);
    expect(media.body).toMatchObject({ statusCode: 404, code: "route_not_found" });
  });
});
