import { describe, expect, it } from "vitest";
import { validTwilioSignature } from "../../../src/calls/live/twilio-signature";

// The worked example of Twilio's "Webhooks security" guide: auth token 12345, this URL and form.
const TOKEN = "12345";
const DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2";
const PARAMS = { CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212" };
const SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

/** The signature computed from the documented algorithm, independently of src/. */
async function sign(url: string, params: Record<string, string>, token = TOKEN): Promise<string> {
  const encoder = new TextEncoder();
  const data = url + Object.keys(params).sort().map((name) => name + params[name]).join("");
  const key = await crypto.subtle.importKey("raw", encoder.encode(token), { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  return btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(data)))));
}

describe("validTwilioSignature", () => {
  it("accepts Twilio's documented example, whatever order the form arrived in", async () => {
    expect(await validTwilioSignature(TOKEN, SIGNATURE, DOC_URL, PARAMS)).toBe(true);
    const reversed = Object.fromEntries(Object.entries(PARAMS).reverse());
    expect(await validTwilioSignature(TOKEN, SIGNATURE, DOC_URL, reversed)).toBe(true);
  });

  it("refuses a tampered parameter, an added or missing one, another DOC_URL, another token, or no signature", async () => {
    expect(await validTwilioSignature(TOKEN, SIGNATURE, DOC_URL, { ...PARAMS, Digits: "9999" })).toBe(false);
    expect(await validTwilioSignature(TOKEN, SIGNATURE, DOC_URL, { ...PARAMS, CallStatus: "completed" })).toBe(false);
    const { Digits: _digits, ...withoutDigits } = PARAMS;
    expect(await validTwilioSignature(TOKEN, SIGNATURE, DOC_URL, withoutDigits)).toBe(false);
    expect(await validTwilioSignature(TOKEN, SIGNATURE, "https://mycompany.com/myapp.php?foo=1&bar=3", PARAMS)).toBe(false);
    expect(await validTwilioSignature(TOKEN, SIGNATURE, "http://mycompany.com/myapp.php?foo=1&bar=2", PARAMS)).toBe(false);
    expect(await validTwilioSignature("54321", SIGNATURE, DOC_URL, PARAMS)).toBe(false);
    expect(await validTwilioSignature(TOKEN, SIGNATURE.slice(0, -1), DOC_URL, PARAMS)).toBe(false);
    expect(await validTwilioSignature(TOKEN, "", DOC_URL, PARAMS)).toBe(false);
    expect(await validTwilioSignature(TOKEN, null, DOC_URL, PARAMS)).toBe(false);
    expect(await validTwilioSignature(TOKEN, undefined, DOC_URL, PARAMS)).toBe(false);
  });

  it("accepts the DOC_URL signed with or without its default port, as Twilio's own validator does", async () => {
    const withPort = await sign("https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS);
    expect(await validTwilioSignature(TOKEN, withPort, DOC_URL, PARAMS)).toBe(true);
    expect(await validTwilioSignature(TOKEN, SIGNATURE, "https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS)).toBe(true);
    // Another port is another server.
    expect(await validTwilioSignature(TOKEN, await sign("https://mycompany.com:8443/myapp.php?foo=1&bar=2", PARAMS), DOC_URL, PARAMS)).toBe(false);
  });

  it("checks a Media Stream upgrade: the wss:// DOC_URL alone, with or without :443 (ws:// with :80)", async () => {
    const stream = "wss://echo.example.com/twilio/media/abc";
    expect(await validTwilioSignature(TOKEN, await sign(stream, {}), stream, {})).toBe(true);
    expect(await validTwilioSignature(TOKEN, await sign("wss://echo.example.com:443/twilio/media/abc", {}), stream, {})).toBe(true);
    expect(await validTwilioSignature(TOKEN, await sign("ws://localhost:80/twilio/media/abc", {}), "ws://localhost/twilio/media/abc", {})).toBe(true);
    expect(await validTwilioSignature(TOKEN, await sign("https://echo.example.com/twilio/media/abc", {}), stream, {})).toBe(false);
    expect(await validTwilioSignature(TOKEN, await sign("wss://echo.example.com/twilio/media/other", {}), stream, {})).toBe(false);
  });
});
