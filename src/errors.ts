import type { ClientErrorStatusCode, ServerErrorStatusCode } from "hono/utils/http-status";

/**
 * Every code the API answers with, and the one HTTP status each is sent with. `ApiError` takes
 * its status from here, so a code cannot go out with another status and no code exists elsewhere.
 */
export const ERROR_CODES = {
  validation_error: { status: 400 },
  invalid_json: { status: 400 },
  // A client error raised by Hono's own request handling, other than malformed JSON.
  bad_request: { status: 400 },
  websocket_upgrade_required: { status: 400 },

  missing_credentials: { status: 401 },
  invalid_api_key: { status: 401 },
  // The Bearer access token is invalid or expired, or its user no longer exists.
  invalid_token: { status: 401 },
  invalid_credentials: { status: 401 },
  invalid_refresh_token: { status: 401 },
  // A refresh token was presented twice; every token of that login is revoked.
  refresh_token_reused: { status: 401 },

  // Listing and creating projects needs a user's Bearer token; an API key acts for one project.
  user_token_required: { status: 403 },
  invalid_twilio_signature: { status: 403 },

  route_not_found: { status: 404 },
  project_not_found: { status: 404 },
  api_key_not_found: { status: 404 },
  agent_not_found: { status: 404 },
  customer_not_found: { status: 404 },
  phone_not_found: { status: 404 },
  // The caller's business row is gone while a notification is planned.
  business_not_found: { status: 404 },
  notification_not_found: { status: 404 },
  batch_not_found: { status: 404 },
  webhook_not_found: { status: 404 },
  webhook_delivery_not_found: { status: 404 },
  blocked_number_not_found: { status: 404 },
  // The notification has no recording: its agent did not record, it is not ready yet, or it was deleted after the retention.
  recording_not_found: { status: 404 },

  email_taken: { status: 409 },
  // The customer's external_id is already used in the project.
  customer_exists: { status: 409 },
  phone_exists: { status: 409 },
  // The number is already on the project's blocked list.
  blocked_number_exists: { status: 409 },
  // The Idempotency-Key was first used with a different request body.
  idempotency_key_reused: { status: 409 },
  notification_already_ended: { status: 409 },
  // An attempt of the delivery is running; a retry waits until that attempt is recorded.
  webhook_delivery_in_flight: { status: 409 },

  // The body is over the route's limit (README, "Limits"); refused before it is read further.
  payload_too_large: { status: 413 },
  // A JSON route got a body of another Content-Type.
  unsupported_media_type: { status: 415 },

  primary_phone_required: { status: 422 },
  agent_disabled: { status: 422 },
  // The customer's primary phone is missing or marked invalid.
  no_active_phone: { status: 422 },
  phone_opted_out: { status: 422 },
  // The number is on the project's blocked list.
  number_blocked: { status: 422 },
  // Calling hours apply but the phone number maps to no time zone and the customer has none.
  callee_time_zone_unknown: { status: 422 },
  // The calling hours never open in all of the callee's time zones at once (within 8 days).
  calling_hours_never_open: { status: 422 },
  // The prompt uses variables the request gave no value; the body lists them in missing_variables.
  missing_variables: { status: 422 },
  // The URL guard refused the webhook URL (e.g. a private address); the message says why.
  webhook_url_not_allowed: { status: 422 },
  webhook_disabled: { status: 422 },

  // A Range that starts past the end of the file (a recording); Content-Range gives its size.
  range_not_satisfiable: { status: 416 },

  // Over a rate limit; Retry-After and X-RateLimit-Reset say when to try again.
  rate_limited: { status: 429 },

  internal_error: { status: 500 },
  // The call's Durable Object could not start the call; the notification is marked failed.
  call_start_failed: { status: 502 },
  // The Worker's configuration is invalid or lacks a secret production needs.
  server_misconfigured: { status: 503 },
} as const satisfies Record<string, { status: ClientErrorStatusCode | ServerErrorStatusCode }>;

export type ErrorCode = keyof typeof ERROR_CODES;
export type ErrorStatus = (typeof ERROR_CODES)[ErrorCode]["status"];

// Typed by the catalogue's statuses, so a new status without a phrase does not compile.
const REASON_PHRASES: Record<ErrorStatus, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

export interface ErrorDetail {
  path: string;
  message: string;
}

/** What a caught value says, for logs and stored error messages. */
export const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The one error type of the API; the app's error handler renders it as the one error body. */
export class ApiError extends Error {
  override name = "ApiError";
  readonly status: ErrorStatus;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: { details?: ErrorDetail[]; [key: string]: unknown } = {},
  ) {
    super(message);
    this.status = ERROR_CODES[code].status;
  }
}

export interface ErrorBody {
  statusCode: ErrorStatus;
  error: string;
  message: string;
  code: ErrorCode;
  request_id: string;
  details?: ErrorDetail[];
  [key: string]: unknown;
}

export function errorBody(error: ApiError, requestId: string): ErrorBody {
  return {
    statusCode: error.status,
    error: REASON_PHRASES[error.status],
    message: error.message,
    code: error.code,
    request_id: requestId,
    ...error.extra,
  };
}
