import ipaddr from "ipaddr.js";
import { z } from "zod";
import { errorText } from "../errors";

/**
 * Resolves a host name to its IPv4 and IPv6 addresses with DNS over HTTPS (the JSON API of
 * Cloudflare's and Google's resolvers). Workers have no other DNS; the fetch that follows resolves
 * the name again on its own, so this tells what the name points at now, not what fetch will reach.
 */

export type Resolution = { ok: true; addresses: string[] } | { ok: false; reason: string };

/** A lookup takes two requests in parallel; a slow resolver must not hold a webhook attempt for long. */
export const DNS_TIMEOUT_MS = 3_000;

const RECORD_TYPES = { A: 1, AAAA: 28 } as const;
type RecordType = keyof typeof RECORD_TYPES;

/** RCODEs (RFC 1035, 4.1.1): NOERROR and NXDOMAIN are answers; anything else means the lookup failed. */
const NOERROR = 0;
const NXDOMAIN = 3;
const RCODE_NAMES: Record<number, string> = { 1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED" };

/** The fields of an answer this code reads; CNAME and other records in `Answer` are skipped by type. */
const DohAnswer = z.object({
  Status: z.number().int(),
  TC: z.boolean().optional(),
  Answer: z.array(z.object({ type: z.number().int(), data: z.string() })).optional(),
});

export async function resolveHost(host: string, resolverUrl: string, timeoutMs: number = DNS_TIMEOUT_MS): Promise<Resolution> {
  const signal = AbortSignal.timeout(timeoutMs);
  const lookups = await Promise.all((Object.keys(RECORD_TYPES) as RecordType[]).map((type) => lookup(host, type, resolverUrl, signal, timeoutMs)));
  const failed = lookups.find((result) => !result.ok);
  // Fail closed: an address the failed lookup would have returned could be a private one.
  if (failed && !failed.ok) return failed;
  return { ok: true, addresses: lookups.flatMap((result) => (result.ok ? result.addresses : [])) };
}

async function lookup(host: string, type: RecordType, resolverUrl: string, signal: AbortSignal, timeoutMs: number): Promise<Resolution> {
  const url = new URL(resolverUrl);
  url.searchParams.set("name", host);
  url.searchParams.set("type", type);
  let body: unknown;
  try {
    const response = await fetch(url, { headers: { accept: "application/dns-json" }, signal });
    if (!response.ok) {
      await response.body?.cancel();
      return { ok: false, reason: `the resolver answered HTTP ${response.status} to the ${type} lookup` };
    }
    body = await response.json();
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    if (timedOut) return { ok: false, reason: `the ${type} lookup timed out after ${timeoutMs} ms` };
    return { ok: false, reason: `the ${type} lookup failed: ${errorText(error)}` };
  }
  const parsed = DohAnswer.safeParse(body);
  if (!parsed.success) return { ok: false, reason: `the resolver's answer to the ${type} lookup is not DNS JSON` };
  const { Status: status, TC: truncated, Answer: records = [] } = parsed.data;
  if (status === NXDOMAIN) return { ok: true, addresses: [] };
  if (status !== NOERROR) return { ok: false, reason: `the resolver answered ${RCODE_NAMES[status] ?? `RCODE ${status}`} to the ${type} lookup` };
  // A truncated answer may leave out the very address that matters.
  if (truncated) return { ok: false, reason: `the resolver's answer to the ${type} lookup was truncated` };
  const addresses = records.filter((record) => record.type === RECORD_TYPES[type]).map((record) => record.data);
  const valid = (address: string) => (type === "A" ? ipaddr.IPv4.isValidFourPartDecimal(address) : ipaddr.IPv6.isValid(address));
  const malformed = addresses.find((address) => !valid(address));
  if (malformed !== undefined) return { ok: false, reason: `the resolver returned ${JSON.stringify(malformed)}, not an ${type === "A" ? "IPv4" : "IPv6"} address` };
  return { ok: true, addresses };
}
