import { env } from "cloudflare:workers";

/**
 * Failures of D1 for the chaos tests, made in D1 itself: a trigger refuses the writes it matches,
 * the way an unavailable database refuses them, until it is dropped. Our code runs unchanged.
 */

export interface RefusedWrites {
  /** D1 takes these writes again. */
  heal(): Promise<void>;
}

const REFUSED = "chaos: D1 refused the write";

/**
 * Refuses `event` on notifications (e.g. "UPDATE OF status", "INSERT") for the rows `when` matches
 * (an SQL condition on NEW).
 */
export async function refuseNotificationWrites(event: string, when: string): Promise<RefusedWrites> {
  const name = `chaos_${crypto.randomUUID().replaceAll("-", "")}`;
  await env.DB.prepare(`CREATE TRIGGER ${name} BEFORE ${event} ON notifications WHEN ${when} BEGIN SELECT RAISE(ABORT, '${REFUSED}'); END`).run();
  return { heal: async () => void (await env.DB.prepare(`DROP TRIGGER ${name}`).run()) };
}

/** D1 refuses to end this notification (to give it a final status). */
export function refuseEnding(notificationId: string): Promise<RefusedWrites> {
  return refuseNotificationWrites("UPDATE OF status", `NEW.id = '${notificationId}' AND NEW.status NOT IN ('queued', 'in_progress')`);
}

/** D1 refuses to store the carrier leg's CallSid of calls to `phone`: the object fails right after dialling. */
export function refuseDialledLegs(phone: string): Promise<RefusedWrites> {
  return refuseNotificationWrites("UPDATE OF carrier_call_sid", `NEW.target_phone_e164 = '${phone}'`);
}

/** D1 refuses to end any notification to `phone`. */
export function refuseEndingCallsTo(phone: string): Promise<RefusedWrites> {
  return refuseNotificationWrites("UPDATE OF status", `NEW.target_phone_e164 = '${phone}' AND NEW.status NOT IN ('queued', 'in_progress')`);
}
