import { Hono, type Context } from "hono";
import { z } from "zod";
import {
  parseTwilioMachineDetectionCallback,
  parseTwilioStatusCallback,
  twilioMachineDetectionCallbackUrl,
  twilioStatusCallbackUrl,
  twilioStreamUrl,
} from "../calls/live/twilio";
import { validTwilioSignature } from "../calls/live/twilio-signature";
import type { AppEnv } from "../context";
import type { LiveCallConfig } from "../env";
import { ApiError } from "../errors";
import { zodDetails } from "../lib/openapi";

/**
 * What Twilio calls on this server during a live call: the status callbacks, the answering machine
 * detection verdict and the Media Stream's WebSocket. Twilio is the only caller, so these stay out of
 * the OpenAPI document; every request must carry Twilio's X-Twilio-Signature for the URL we gave it,
 * or it is refused and changes nothing.
 */
export const twilioRoutes = new Hono<AppEnv>();

/** Without live calls configured, these routes do not exist. */
function liveConfig(c: Context<AppEnv>): LiveCallConfig {
  const live = c.get("config").live;
  if (!live) throw new ApiError("route_not_found", `No route for ${c.req.method} ${c.req.path}`);
  return live;
}

/**
 * Twilio posts application/x-www-form-urlencoded; these are the exact strings it signed. Decoded by
 * hand: workerd warns on every `.text()` of a body whose content type is not text.
 */
async function twilioForm(c: Context<AppEnv>): Promise<Record<string, string>> {
  return Object.fromEntries(new URLSearchParams(new TextDecoder().decode(await c.req.arrayBuffer())));
}

async function requireTwilioSignature(c: Context<AppEnv>, live: LiveCallConfig, signedUrl: string, params: Record<string, string>): Promise<void> {
  if (!(await validTwilioSignature(live.twilio.authToken, c.req.header("x-twilio-signature"), signedUrl, params))) {
    throw new ApiError("invalid_twilio_signature", "Missing or invalid X-Twilio-Signature");
  }
}

type CallSessionStub = ReturnType<AppEnv["Bindings"]["CALL_SESSION"]["get"]>;

/**
 * A form Twilio posts about a call: signed for `signedUrl`, parsed by `parse` (which throws a ZodError
 * on a form that is not `what`: a 400), then handed to the call's Durable Object.
 */
function formCallback<T>(
  signedUrl: (publicBaseUrl: string, notificationId: string) => string,
  parse: (form: Record<string, string>) => T,
  what: string,
  deliver: (session: CallSessionStub, value: T, notificationId: string) => Promise<unknown>,
) {
  return async (c: Context<AppEnv, "/:notificationId">) => {
    const live = liveConfig(c);
    const notificationId = c.req.param("notificationId");
    const form = await twilioForm(c);
    await requireTwilioSignature(c, live, signedUrl(live.publicBaseUrl, notificationId), form);
    let value: T;
    try {
      value = parse(form);
    } catch (error) {
      if (!(error instanceof z.ZodError)) throw error;
      throw new ApiError("validation_error", `Not a Twilio ${what}`, { details: zodDetails(error.issues) });
    }
    await deliver(c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(notificationId)), value, notificationId);
    return c.body(null, 204);
  };
}

twilioRoutes.post(
  "/status/:notificationId",
  formCallback(twilioStatusCallbackUrl, parseTwilioStatusCallback, "call status callback", (session, update, notificationId) =>
    session.twilioStatus(notificationId, update),
  ),
);

twilioRoutes.post(
  "/amd/:notificationId",
  formCallback(twilioMachineDetectionCallbackUrl, parseTwilioMachineDetectionCallback, "answering machine detection callback", (session, detection) =>
    session.twilioMachineDetection(detection),
  ),
);

twilioRoutes.get("/media/:notificationId", async (c) => {
  const live = liveConfig(c);
  const notificationId = c.req.param("notificationId");
  // Twilio signs the wss:// URL it connected to; an upgrade has no form parameters.
  await requireTwilioSignature(c, live, twilioStreamUrl(live.publicBaseUrl, notificationId), {});
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new ApiError("websocket_upgrade_required", "Expected a WebSocket upgrade");
  // The call's Durable Object accepts the socket and holds it for the rest of the call. Its response
  // is copied because the app's middleware adds headers and the original's headers are immutable.
  const response = await c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(notificationId)).fetch(c.req.raw);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers: response.headers, webSocket: response.webSocket });
});
