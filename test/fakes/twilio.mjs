// @ts-check
/**
 * A fake Twilio REST API (host api.twilio.com): the 2010-04-01 Call resource as documented.
 *
 *   POST /2010-04-01/Accounts/{AccountSid}/Calls.json            create → 201, the call resource, status "queued"
 *   GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json  fetch → 200
 *   POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json  update; Status=completed hangs up
 *                                                                (a queued or ringing call ends "canceled", a live
 *                                                                one "completed"; a call already over stays as it was);
 *                                                                Twiml replaces the TwiML the call runs (its Media
 *                                                                Stream ends: the peer sees it and stops), and
 *                                                                TimeLimit its time limit — on a call that is over,
 *                                                                400 code 21220 (not in progress, cannot redirect)
 *
 * Requests need HTTP Basic auth with the live test project's account SID and auth token (below),
 * else 401 with Twilio's error body {code: 20003, message, more_info, status}. Form-encoded bodies;
 * a parameter given more than once (StatusCallbackEvent) is a list. Errors are Twilio's JSON body:
 * no To → 21201, no From → 21213, To not E.164 → 21211, From not the account's number → 21210,
 * an unknown StatusCallbackEvent → 21626, an unknown call → 404 20404.
 *
 * Answering machine detection: MachineDetection Enable|DetectMessageEnd, AsyncAmd true|false,
 * AsyncAmdStatusCallbackMethod GET|POST; any other value → 400 21234 (invalid Machine Detection
 * configuration value). AsyncAmd=true without an AsyncAmdStatusCallback is no error: Twilio creates the
 * call and logs warning 21262 (no AMD status callback URL; the verdict is only on the call resource),
 * which the fake records in the call's `warnings`.
 *
 * Magic `To` numbers (Twilio's own test-credential numbers, valid E.164 the API accepts for customers):
 *   +15005550001  400, code 21217: the number does not appear to be valid
 *   +15005550002  400, code 21214: the number cannot be reached
 *   +15005550009  no answer at all: the connection drops (a network failure)
 * Any other E.164 number: 201, a new call "queued". The fake never calls back: status callbacks and
 * the Media Stream are played by the test-side peer (test/fakes/twilio-peer.ts).
 *
 * For tests, on the same host:
 *   GET  /_fake/calls            every call created, in order: {sid, account_sid, status, params (the form
 *                                as sent, Twiml, StatusCallback and AsyncAmdStatusCallback included),
 *                                twiml (what the call runs now), time_limit, warnings: [{code, message}],
 *                                updates: [{params, received_at}] (every update our Worker sent, refused ones too)}
 *   GET  /_fake/calls/{CallSid}  one of them
 *   POST /_fake/calls/{CallSid}  form CallStatus (and CallDuration, AnsweredBy): the call progresses the way
 *                                the status callback the peer sends says, so fetching it agrees; a call
 *                                that is over stays over. AnsweredBy alone (the AMD verdict the peer sends)
 *                                only sets the call's answered_by.
 */

export const ACCOUNT_SID = "AC00000000000000000000000000000000";
export const AUTH_TOKEN = "fake-twilio-auth-token-0000000000";
/** The one number the fake account owns, so the only valid From. */
export const OWNED_NUMBER = "+14155550000";

const FINAL = new Set(["completed", "busy", "no-answer", "failed", "canceled"]);
const CALLBACK_EVENTS = new Set(["initiated", "ringing", "answered", "completed"]);
/** Allowed values of the answering machine detection parameters (absent is allowed too). */
const AMD_VALUES = {
  MachineDetection: new Set(["Enable", "DetectMessageEnd"]),
  AsyncAmd: new Set(["true", "false"]),
  AsyncAmdStatusCallbackMethod: new Set(["GET", "POST"]),
};

/**
 * @typedef {Record<string, string | string[]>} FormParams
 * @typedef {{
 *   sid: string, account_sid: string, status: string, params: FormParams,
 *   warnings: Array<{ code: number, message: string }>,
 *   answered_by: string | null, duration: string | null, twiml: string | null, time_limit: string | null,
 *   created_at: number, start_time: number | null, end_time: number | null,
 *   updates: Array<{ params: FormParams, received_at: number }>,
 * }} FakeCall
 */

/** @type {Map<string, FakeCall>} */
const calls = new Map();

/** @param {Request} request */
export async function twilio(request) {
  const url = new URL(request.url);
  if (url.pathname === "/_fake/calls" && request.method === "GET") return Response.json([...calls.values()]);
  const progress = /^\/_fake\/calls\/(CA[0-9a-f]{32})$/.exec(url.pathname);
  if (progress && request.method === "POST") return progressCall(progress[1] ?? "", await readForm(request));
  if (progress && request.method === "GET") {
    const call = calls.get(progress[1] ?? "");
    return call ? Response.json(call) : twilioError(404, 20404, `No fake call ${progress[1]}`);
  }

  const route = /^\/2010-04-01\/Accounts\/([^/]+)\/Calls(?:\/([^/]+))?\.json$/.exec(url.pathname);
  if (!authenticated(request, route?.[1])) {
    return twilioError(401, 20003, "Authenticate", { "WWW-Authenticate": 'Basic realm="Twilio API"' });
  }
  const sid = route?.[2];
  if (route && sid === undefined && request.method === "POST") return createCall(await readForm(request));
  const call = sid === undefined ? undefined : calls.get(sid);
  if (!route || !call || !["GET", "POST"].includes(request.method)) {
    return twilioError(404, 20404, `The requested resource ${url.pathname} was not found`);
  }
  if (request.method === "POST") {
    const params = await readForm(request);
    call.updates.push({ params, received_at: Date.now() });
    const replacesTwiml = single(params, "Twiml") !== undefined || single(params, "Url") !== undefined;
    if (replacesTwiml && FINAL.has(call.status)) return twilioError(400, 21220, "Call is not in-progress. Cannot redirect.");
    updateCall(call, params);
  }
  return Response.json(callResource(call));
}

/**
 * @param {Request} request
 * @param {string | undefined} pathAccount
 */
function authenticated(request, pathAccount) {
  const header = request.headers.get("authorization") ?? "";
  const [scheme, encoded] = header.split(" ");
  if (scheme !== "Basic" || !encoded) return false;
  let credentials = "";
  try {
    credentials = atob(encoded);
  } catch {
    return false;
  }
  return credentials === `${ACCOUNT_SID}:${AUTH_TOKEN}` && pathAccount === ACCOUNT_SID;
}

/** @param {Request} request @returns {Promise<FormParams>} */
async function readForm(request) {
  /** @type {FormParams} */
  const params = {};
  for (const [name, value] of new URLSearchParams(new TextDecoder().decode(await request.arrayBuffer()))) {
    const existing = params[name];
    params[name] = existing === undefined ? value : [...[existing].flat(), value];
  }
  return params;
}

/** @param {FormParams} params @param {string} name */
const single = (params, name) => {
  const value = params[name];
  return Array.isArray(value) ? value[0] : value;
};

/** @param {FormParams} params */
function createCall(params) {
  const to = single(params, "To");
  const from = single(params, "From");
  if (!to) return twilioError(400, 21201, "No 'To' number is specified");
  if (!from) return twilioError(400, 21213, "No 'From' number is specified");
  if (!/^\+[1-9]\d{1,14}$/.test(to)) return twilioError(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
  if (from !== OWNED_NUMBER) {
    return twilioError(400, 21210, `The source phone number provided, ${from}, is not yet verified for your account. You may only make calls from phone numbers that you've verified or purchased from Twilio.`);
  }
  const events = [params.StatusCallbackEvent ?? []].flat();
  if (events.some((event) => !CALLBACK_EVENTS.has(event))) return twilioError(400, 21626, "Invalid 'StatusCallbackEvent'");
  for (const [name, allowed] of Object.entries(AMD_VALUES)) {
    const value = single(params, name);
    if (value !== undefined && !allowed.has(value)) return twilioError(400, 21234, `Invalid Machine Detection configuration value: ${name}=${value}`);
  }
  const warnings = [];
  if (single(params, "AsyncAmd") === "true" && !single(params, "AsyncAmdStatusCallback")) {
    warnings.push({ code: 21262, message: "No AMD status callback URL provided" });
  }
  if (to === "+15005550001") return twilioError(400, 21217, "Phone number does not appear to be valid");
  if (to === "+15005550002") return twilioError(400, 21214, "'To' phone number cannot be reached");
  if (to === "+15005550009") throw new Error("fake Twilio: the connection dropped (magic To +15005550009)");

  const sid = `CA${randomHex(16)}`;
  /** @type {FakeCall} */
  const call = {
    sid,
    account_sid: ACCOUNT_SID,
    status: "queued",
    params,
    warnings,
    answered_by: null,
    duration: null,
    twiml: single(params, "Twiml") ?? null,
    time_limit: single(params, "TimeLimit") ?? null,
    created_at: Date.now(),
    start_time: null,
    end_time: null,
    updates: [],
  };
  calls.set(sid, call);
  return Response.json(callResource(call), { status: 201 });
}

/** @param {FakeCall} call @param {FormParams} params */
function updateCall(call, params) {
  call.twiml = single(params, "Twiml") ?? call.twiml;
  call.time_limit = single(params, "TimeLimit") ?? call.time_limit;
  const status = single(params, "Status");
  if (FINAL.has(call.status) || (status !== "completed" && status !== "canceled")) return;
  if (call.status !== "in-progress") end(call, "canceled");
  else if (status === "completed") end(call, "completed");
}

/** @param {string} sid @param {FormParams} params */
function progressCall(sid, params) {
  const call = calls.get(sid);
  if (!call) return twilioError(404, 20404, `No fake call ${sid}`);
  const status = single(params, "CallStatus");
  if (FINAL.has(call.status)) return Response.json(callResource(call));
  call.answered_by = single(params, "AnsweredBy") ?? call.answered_by;
  if (status === undefined) return Response.json(callResource(call));
  if (FINAL.has(status)) end(call, status, single(params, "CallDuration"));
  else {
    call.status = status;
    if (status === "in-progress") call.start_time = Date.now();
  }
  return Response.json(callResource(call));
}

/**
 * @param {FakeCall} call
 * @param {string} status
 * @param {string} [duration] seconds, as Twilio reports it; else the time since the answer
 */
function end(call, status, duration) {
  call.end_time = Date.now();
  const talked = call.start_time === null ? 0 : Math.round((call.end_time - call.start_time) / 1000);
  call.duration = duration ?? String(talked);
  call.status = status;
}

/** The Call resource as Twilio's JSON represents it. @param {FakeCall} call */
function callResource(call) {
  const uri = `/2010-04-01/Accounts/${call.account_sid}/Calls/${call.sid}.json`;
  const subresource = (/** @type {string} */ name) => `/2010-04-01/Accounts/${call.account_sid}/Calls/${call.sid}/${name}.json`;
  return {
    sid: call.sid,
    account_sid: call.account_sid,
    annotation: null,
    answered_by: call.answered_by,
    api_version: "2010-04-01",
    caller_name: null,
    date_created: rfc2822(call.created_at),
    date_updated: rfc2822(call.updates.at(-1)?.received_at ?? call.end_time ?? call.start_time ?? call.created_at),
    direction: "outbound-api",
    duration: call.duration,
    end_time: call.end_time === null ? null : rfc2822(call.end_time),
    forwarded_from: null,
    from: single(call.params, "From"),
    group_sid: null,
    parent_call_sid: null,
    phone_number_sid: null,
    price: null,
    price_unit: "USD",
    queue_time: "0",
    start_time: call.start_time === null ? null : rfc2822(call.start_time),
    status: call.status,
    to: single(call.params, "To"),
    trunk_sid: null,
    uri,
    subresource_uris: { notifications: subresource("Notifications"), recordings: subresource("Recordings"), streams: subresource("Streams") },
  };
}

/**
 * @param {number} status
 * @param {number} code
 * @param {string} message
 * @param {Record<string, string>} [headers]
 */
function twilioError(status, code, message, headers = {}) {
  return Response.json({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }, { status, headers });
}

/** Twilio's dates: RFC 2822, e.g. "Tue, 31 Aug 2010 20:36:28 +0000". @param {number} ms */
const rfc2822 = (ms) => new Date(ms).toUTCString().replace("GMT", "+0000");

/** @param {number} bytes */
function randomHex(bytes) {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}
