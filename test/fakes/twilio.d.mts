/** Types of test/fakes/twilio.mjs for TypeScript importers (vitest.config.ts reads the fake account from it). */

/** The fake account's SID and auth token: the live project's TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN. */
export declare const ACCOUNT_SID: string;
export declare const AUTH_TOKEN: string;
/** The one number the fake account owns: the live project's TWILIO_FROM_NUMBER. */
export declare const OWNED_NUMBER: string;

export declare function twilio(request: Request): Promise<Response>;
