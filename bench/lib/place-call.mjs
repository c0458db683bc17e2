// @ts-check
// Placing a call on the (fake) Twilio REST API the way our Worker does, for the stand-ins that replace
// it — the Node reference relay and the floor Worker's `/trigger` — so that each side answers the
// same status callbacks. Web APIs only (`fetch`, `btoa`): it runs in Node and in workerd alike.

/** Twilio's REST API version, in every Calls path. */
export const API_VERSION = "2010-04-01";

/**
 * The status callback events our Worker asks Twilio for (src/calls/live/twilio.ts): the stand-ins ask
 * for the same ones, so that each side answers the same callbacks (the harness checks ours' calls).
 */
export const STREAM_CALL_STATUS_EVENTS = ["ringing", "answered", "completed"];

/**
 * Places a call whose TwiML connects a bidirectional Media Stream to `streamUrl`, with status
 * callbacks to `statusCallback`; resolves to its CallSid.
 * @param {{ baseUrl: string; accountSid: string; authToken: string; from: string; to: string; streamUrl: string; statusCallback: string }} input
 */
export async function placeStreamCall({ baseUrl, accountSid, authToken, from, to, streamUrl, statusCallback }) {
  const form = new URLSearchParams({
    To: to,
    From: from,
    Twiml: `<Response><Connect><Stream url="${streamUrl}"/></Connect></Response>`,
    StatusCallback: statusCallback,
    StatusCallbackEvent: STREAM_CALL_STATUS_EVENTS.join(" "),
  });
  const response = await fetch(`${baseUrl}/${API_VERSION}/Accounts/${accountSid}/Calls.json`, {
    method: "POST",
    headers: { authorization: `Basic ${btoa(`${accountSid}:${authToken}`)}`, "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
  });
  const body = await response.text();
  if (response.status !== 201) throw new Error(`Calls.json → ${response.status} ${body}`);
  return /** @type {string} */ (JSON.parse(body).sid);
}
