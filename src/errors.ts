import type { ContentfulStatusCode } from "hono/utils/http-status";

export interface ErrorDetail {
  path: string;
  message: string;
}

const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

function reasonPhrase(status: number): string {
  return REASON_PHRASES[status] ?? "Error";
}

/** The one error type of the API; the app's error handler renders it as the one error body. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly extra: { details?: ErrorDetail[]; [key: string]: unknown } = {},
  ) {
    super(message);
  }

  static badRequest(message: string, details?: ErrorDetail[], code = "validation_error"): ApiError {
    return new ApiError(400, code, message, details ? { details } : {});
  }
  static unauthorized(message = "Missing or invalid credentials", code = "unauthorized"): ApiError {
    return new ApiError(401, code, message);
  }
  static forbidden(message: string, code = "forbidden"): ApiError {
    return new ApiError(403, code, message);
  }
  /** `resource` is the human name, e.g. "Customer" → "Customer not found", code customer_not_found. */
  static notFound(resource: string): ApiError {
    return new ApiError(404, `${resource.toLowerCase().replace(/\s+/g, "_")}_not_found`, `${resource} not found`);
  }
  static conflict(message: string, code: string): ApiError {
    return new ApiError(409, code, message);
  }
  static unprocessable(message: string, code: string, extra: Record<string, unknown> = {}): ApiError {
    return new ApiError(422, code, message, extra);
  }
}

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  code: string;
  request_id: string;
  details?: ErrorDetail[];
  [key: string]: unknown;
}

export function errorBody(error: ApiError, requestId: string): ErrorBody {
  return {
    statusCode: error.status,
    error: reasonPhrase(error.status),
    message: error.message,
    code: error.code,
    request_id: requestId,
    ...error.extra,
  };
}
