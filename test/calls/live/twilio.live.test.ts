import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TwilioApiError, TwilioClient, type CreateCallInput } from "../../../src/calls/live/twilio";
import { getConfig, type TwilioConfig } from "../../../src/env";
import { fakeTwilioCalls, type FakeTwilioCall } from "../../fakes/twilio-peer";

const config = getConfig(env).live!.twilio;
const client = new TwilioClient(config);

function callInput(to: string): CreateCallInput {
  return {
    to,
    twiml: "<Response><Hangup/></Response>",
    statusCallbackUrl: "https://echo.test/twilio/status/n1",
    machineDetectionCallbackUrl: "https://echo.test/twilio/amd/n1",
    timeoutSeconds: 30,
    timeLimitSeconds: 300,
  };
}

async function fakeCall(sid: string): Promise<FakeTwilioCall> {
  const call = (await fakeTwilioCalls()).find((c) => c.sid === sid);
  if (!call) throw new Error(`the fake has no call ${sid}`);
  return call;
}

async function twilioError(promise: Promise<unknown>): Promise<TwilioApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TwilioApiError);
  return error as TwilioApiError;
}

describe("TwilioClient against the fake Twilio", () => {
  it("creates a call from the configured number with the TwiML, status callbacks, limits and asynchronous machine detection", async () => {
    const created = await client.createCall(callInput("+14155552671"));
    expect(created).toEqual({ sid: expect.stringMatching(/^CA[0-9a-f]{32}$/), status: "queued" });
    const call = await fakeCall(created.sid);
    expect(call.account_sid).toBe("AC00000000000000000000000000000000");
    expect(call.params).toEqual({
      To: "+14155552671",
      From: "+14155550000",
      Twiml: "<Response><Hangup/></Response>",
      StatusCallback: "https://echo.test/twilio/status/n1",
      StatusCallbackMethod: "POST",
      StatusCallbackEvent: ["ringing", "answered", "completed"],
      Timeout: "30",
      TimeLimit: "300",
      // Asynchronous: the TwiML runs at the answer, the verdict is posted to its own callback once
      // the greeting of a machine has ended.
      MachineDetection: "DetectMessageEnd",
      AsyncAmd: "true",
      AsyncAmdStatusCallback: "https://echo.test/twilio/amd/n1",
      AsyncAmdStatusCallbackMethod: "POST",
    });
    expect(call.warnings).toEqual([]);
  });

  it("the fake holds the machine detection parameters to Twilio's values, and AsyncAmd without a callback URL is only a warning", async () => {
    const createCall = (form: Record<string, string>) =>
      fetch(`https://api.twilio.com/2010-04-01/Accounts/${config.accountSid}/Calls.json`, {
        method: "POST",
        headers: { Authorization: `Basic ${btoa(`${config.authUser}:${config.authSecret}`)}` },
        body: new URLSearchParams({ To: "+14155552671", From: "+14155550000", Twiml: "<Response><Hangup/></Response>", ...form }),
      });
    const invalidForms: Record<string, string>[] = [
      { MachineDetection: "Yes" },
      { MachineDetection: "Enable", AsyncAmd: "yes" },
      { MachineDetection: "Enable", AsyncAmd: "true", AsyncAmdStatusCallback: "https://echo.test/twilio/amd/n1", AsyncAmdStatusCallbackMethod: "PUT" },
    ];
    for (const invalid of invalidForms) {
      const refused = await createCall(invalid);
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ code: 21234 });
    }
    const withoutCallback = await createCall({ MachineDetection: "Enable", AsyncAmd: "true" });
    expect(withoutCallback.status).toBe(201);
    const call = await fakeCall(((await withoutCallback.json()) as { sid: string }).sid);
    expect(call.warnings).toEqual([{ code: 21262, message: "No AMD status callback URL provided" }]);
  });

  it("turns Twilio's error body into a TwilioApiError with its code, message and link", async () => {
    const invalid = await twilioError(client.createCall(callInput("12345")));
    expect(invalid).toMatchObject({ status: 400, code: 21211, moreInfo: "https://www.twilio.com/docs/errors/21211" });
    expect(invalid.message).toBe("Twilio error 21211: The 'To' number 12345 is not a valid phone number.");

    const unreachable = await twilioError(client.createCall(callInput("+15005550002")));
    expect(unreachable).toMatchObject({ status: 400, code: 21214 });
  });

  it("refuses wrong credentials with Twilio's 401", async () => {
    const wrong: TwilioConfig = { ...config, authSecret: "not-the-token" };
    const error = await twilioError(new TwilioClient(wrong).createCall(callInput("+14155552671")));
    expect(error).toMatchObject({ status: 401, code: 20003 });
  });

  it("reports a request that got no answer as a TwilioApiError with status 0", async () => {
    const error = await twilioError(client.createCall(callInput("+15005550009")));
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/^Could not reach Twilio \(POST https:\/\/api\.twilio\.com\/2010-04-01\/Accounts\/AC0+\/Calls\.json\): /);
  });

  it("hangs up with Status=completed; a call that is already over is no error", async () => {
    const { sid } = await client.createCall(callInput("+14155552671"));
    await client.hangUp(sid);
    await client.hangUp(sid);
    const call = await fakeCall(sid);
    expect(call.updates.map((update) => update.params)).toEqual([{ Status: "completed" }, { Status: "completed" }]);
    expect(await client.fetchCall(sid)).toEqual({ sid, status: "canceled", duration: 0, answeredBy: null });
  });

  it("replaces a live call's TwiML and time limit; a call that is over cannot be redirected (21220)", async () => {
    const { sid } = await client.createCall(callInput("+14155552671"));
    await fetch(`https://api.twilio.com/_fake/calls/${sid}`, { method: "POST", body: new URLSearchParams({ CallStatus: "in-progress" }) });
    const dial = '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+14155550199</Dial></Response>';
    await client.updateCallTwiml(sid, dial, 14400);
    expect(await fakeCall(sid)).toMatchObject({ status: "in-progress", twiml: dial, time_limit: "14400", updates: [{ params: { Twiml: dial, TimeLimit: "14400" } }] });

    await client.hangUp(sid);
    const refused = await twilioError(client.updateCallTwiml(sid, dial, 14400));
    expect(refused).toMatchObject({ status: 400, code: 21220 });
    expect(refused.message).toBe("Twilio error 21220: Call is not in-progress. Cannot redirect.");
  });

  it("reads a call: its status, who answered, and the duration once it has ended", async () => {
    const { sid } = await client.createCall(callInput("+14155552671"));
    expect(await client.fetchCall(sid)).toEqual({ sid, status: "queued", duration: null, answeredBy: null });
    await fetch(`https://api.twilio.com/_fake/calls/${sid}`, { method: "POST", body: new URLSearchParams({ CallStatus: "in-progress", AnsweredBy: "machine_start" }) });
    expect(await client.fetchCall(sid)).toMatchObject({ status: "in-progress", duration: null, answeredBy: "machine_start" });
    await fetch(`https://api.twilio.com/_fake/calls/${sid}`, { method: "POST", body: new URLSearchParams({ CallStatus: "completed", CallDuration: "12" }) });
    expect(await client.fetchCall(sid)).toEqual({ sid, status: "completed", duration: 12, answeredBy: "machine_start" });

    const missing = await twilioError(client.fetchCall("CA00000000000000000000000000000000"));
    expect(missing).toMatchObject({ status: 404, code: 20404 });
  });
});
