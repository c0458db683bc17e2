import { swaggerUI } from "@hono/swagger-ui";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { secureHeaders } from "hono/secure-headers";
import { requireAuth } from "./auth/middleware";
import { createDb } from "./db/client";
import { ConfigError, getConfig } from "./env";
import { ApiError, errorBody, type ErrorCode } from "./errors";
import { createRouter } from "./lib/openapi";
import { uuidv7 } from "./lib/ids";
import { limitPerCaller, limitPerClientIp } from "./limits/rate-limit";
import { agentRoutes } from "./routes/agents";
import { apiKeyRoutes } from "./routes/api-keys";
import { authRoutes } from "./routes/auth";
import { batchRoutes } from "./routes/batches";
import { blockedNumberRoutes } from "./routes/blocked-numbers";
import { customerRoutes } from "./routes/customers";
import { notificationRoutes } from "./routes/notifications";
import { projectRoutes } from "./routes/projects";
import { twilioRoutes } from "./routes/twilio";
import { webhookRoutes } from "./routes/webhooks";

const REQUEST_ID_PATTERN = /^[\w.:-]{1,128}$/;

/** The largest body a JSON route reads; every legitimate one is far smaller. */
export const JSON_BODY_MAX_BYTES = 1024 * 1024;
/** Twilio's callbacks are a few form fields; the media stream is a WebSocket upgrade with no body. */
export const TWILIO_BODY_MAX_BYTES = 64 * 1024;

/** Refuses a body over `maxSize` bytes by its Content-Length, or by counting it as it streams, before anything parses it. */
const limitBody = (maxSize: number, label: string) =>
  bodyLimit({
    maxSize,
    onError: () => {
      throw new ApiError("payload_too_large", `The request body is over ${label}`);
    },
  });

/**
 * Hono's own 4xx: its body parsers reject malformed JSON with a 400, and the validator a body of
 * another Content-Type with a 415. Any other is answered as a 400 bad_request.
 */
const HTTP_EXCEPTION_CODES: Partial<Record<number, ErrorCode>> = { 400: "invalid_json", 413: "payload_too_large", 415: "unsupported_media_type" };

export function createApp() {
  // The public reference serves auth under both /auth/* and /api/auth/*.
  const app = createRouter({
    getPath: (request) => {
      const path = new URL(request.url).pathname;
      return path.startsWith("/api/auth/") ? path.slice("/api".length) : path;
    },
  });

  app.use("*", async (c, next) => {
    const inbound = c.req.header("x-request-id");
    const requestId = inbound && REQUEST_ID_PATTERN.test(inbound) ? inbound : uuidv7();
    c.set("requestId", requestId);
    c.header("X-Request-Id", requestId);
    c.set("config", getConfig(c.env));
    c.set("db", createDb(c.env.DB));
    await next();
  });
  app.use("*", secureHeaders({ crossOriginResourcePolicy: false }));
  app.use("/auth/*", limitBody(JSON_BODY_MAX_BYTES, "1 MB"));
  app.use("/api/v1/*", limitBody(JSON_BODY_MAX_BYTES, "1 MB"));
  app.use("/twilio/*", limitBody(TWILIO_BODY_MAX_BYTES, "64 KB"));

  app.onError((err, c) => {
    const requestId = c.get("requestId") ?? uuidv7();
    c.header("X-Request-Id", requestId);
    let apiError: ApiError;
    if (err instanceof ApiError) {
      apiError = err;
    } else if (err instanceof HTTPException && err.status < 500) {
      apiError = new ApiError(HTTP_EXCEPTION_CODES[err.status] ?? "bad_request", err.message || "Malformed request");
    } else if (err instanceof ConfigError) {
      console.error(`[echo] ${err.message}`);
      apiError = new ApiError("server_misconfigured", err.message);
    } else {
      console.error(`[echo] unhandled error (request ${requestId})`, err);
      apiError = new ApiError("internal_error", "Internal server error");
    }
    return c.json(errorBody(apiError, requestId), apiError.status);
  });

  app.notFound((c) => {
    const requestId = c.get("requestId") ?? uuidv7();
    const error = new ApiError("route_not_found", `No route for ${c.req.method} ${c.req.path}`);
    return c.json(errorBody(error, requestId), error.status);
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "ApiKey", { type: "apiKey", in: "header", name: "x-api-key" });
  app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", { type: "http", scheme: "bearer", bearerFormat: "JWT" });

  // /api/auth/* is routed as /auth/* (getPath above), so one limit covers both.
  app.use("/auth/*", limitPerClientIp);
  app.route("/auth", authRoutes);
  app.use("/api/v1/*", requireAuth, limitPerCaller);
  app.route("/api/v1", projectRoutes);
  app.route("/api/v1", apiKeyRoutes);
  app.route("/api/v1", agentRoutes);
  app.route("/api/v1", customerRoutes);
  app.route("/api/v1", blockedNumberRoutes);
  // Before the notifications' routes: /notifications/batch is not a notification id.
  app.route("/api/v1", batchRoutes);
  app.route("/api/v1", notificationRoutes);
  app.route("/api/v1", webhookRoutes);
  app.route("/twilio", twilioRoutes);

  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Echo-compatible voice notification API",
      version: "1.0.0",
      description: "Agents, customers and notifications that place AI voice calls, with signed webhooks. Auth: `x-api-key` or `Authorization: Bearer <access_token>`.",
    },
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json", manuallySwaggerUIHtml: swaggerHtml }));
  app.get("/", (c) => c.json({ name: "echo-edge", docs: "/docs", openapi: "/openapi.json" }));

  return app;
}

/** Swagger UI from our own static assets (copied from swagger-ui-dist at install), so /docs works offline. */
function swaggerHtml(): string {
  return `<link rel="stylesheet" href="/swagger-ui/swagger-ui.css" />
<div id="swagger-ui"></div>
<script src="/swagger-ui/swagger-ui-bundle.js" crossorigin></script>
<script>window.onload = () => { window.ui = SwaggerUIBundle({ dom_id: "#swagger-ui", url: "/openapi.json" }); };</script>`;
}
