import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env";

/**
 * Pacing (API.md "Pacing"), single-writer: one `CallPacer` per project hands out its call slots
 * (at most `max_concurrent_calls` calls at once, waiting calls served in due-time order), and one
 * for the deployment hands out start times (at most `TWILIO_CPS` dials a second). A call over a
 * limit is not refused: its call object waits and is told when its slot is free (`slotFreed`), or
 * asks again at its next alarm. A slot whose call vanished is reclaimed when its lease runs out.
 */

/** The pacer of a project's call slots. */
export const projectPacerName = (projectId: string) => `project:${projectId}`;
/** The pacer of the deployment's starts per second. */
export const DEPLOYMENT_PACER = "deployment";

const HOLDER = "holder:";
const WAITING = "waiting:";
const LIMIT = "limit";

/** Waiting calls sort by due time, then by notification id (UUID v7: creation order). */
const waitingKey = (dueAtMs: number, notificationId: string) => `${WAITING}${String(dueAtMs).padStart(15, "0")}:${notificationId}`;

export class CallPacer extends DurableObject<Bindings> {
  /** The deployment's next free start; in memory, since an idle object has no recent start to space from. */
  private nextStartMs = 0;

  /**
   * A slot for the call of `notificationId`, due at `dueAtMs`: true when it holds one (now or
   * already), else it waits in due order until one frees. The slot is held until `release`, or
   * until `leaseMs` from now if its call vanishes.
   */
  async acquire(notificationId: string, dueAtMs: number, limit: number, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    await this.ctx.storage.put(LIMIT, limit);
    await this.reclaimExpired(now);
    const holders = await this.ctx.storage.list<number>({ prefix: HOLDER });
    const waiting = await this.ctx.storage.list<string>({ prefix: WAITING });
    const own = [...waiting].find(([, id]) => id === notificationId)?.[0] ?? waitingKey(dueAtMs, notificationId);
    const ahead = [...waiting.keys()].filter((key) => key < own).length;
    if (holders.has(HOLDER + notificationId) || holders.size + ahead < limit) {
      await this.ctx.storage.delete(own);
      await this.hold(notificationId, now + leaseMs);
      return true;
    }
    await this.ctx.storage.put(own, notificationId);
    return false;
  }

  /** The call ended (or will not be placed): its slot, or its place in the line, goes to the next. */
  async release(notificationId: string): Promise<void> {
    await this.ctx.storage.delete(HOLDER + notificationId);
    const waiting = await this.ctx.storage.list<string>({ prefix: WAITING });
    const own = [...waiting].find(([, id]) => id === notificationId)?.[0];
    if (own) await this.ctx.storage.delete(own);
    await this.grantFreedSlots();
  }

  /** When the deployment may start its next call: now, or the next free start a second allows. */
  async startAt(callsPerSecond: number): Promise<number> {
    const slot = Math.max(Date.now(), this.nextStartMs);
    this.nextStartMs = slot + 1000 / callsPerSecond;
    return slot;
  }

  /** Reclaims slots whose calls vanished (their leases ran out) and hands them on. */
  override async alarm(): Promise<void> {
    await this.reclaimExpired(Date.now());
    await this.grantFreedSlots();
  }

  private async hold(notificationId: string, leaseUntilMs: number): Promise<void> {
    await this.ctx.storage.put(HOLDER + notificationId, leaseUntilMs);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || leaseUntilMs < current) await this.ctx.storage.setAlarm(leaseUntilMs);
  }

  private async reclaimExpired(now: number): Promise<void> {
    const holders = await this.ctx.storage.list<number>({ prefix: HOLDER });
    const expired = [...holders].filter(([, leaseUntilMs]) => leaseUntilMs <= now).map(([key]) => key);
    if (expired.length > 0) await this.ctx.storage.delete(expired);
    const remaining = [...holders.values()].filter((leaseUntilMs) => leaseUntilMs > now);
    if (remaining.length > 0) await this.ctx.storage.setAlarm(Math.min(...remaining));
  }

  /** Gives free slots to the calls waiting longest, in due order, and tells their call objects. */
  private async grantFreedSlots(): Promise<void> {
    const limit = (await this.ctx.storage.get<number>(LIMIT)) ?? 0;
    const holders = await this.ctx.storage.list<number>({ prefix: HOLDER });
    const waiting = [...(await this.ctx.storage.list<string>({ prefix: WAITING }))].slice(0, Math.max(0, limit - holders.size));
    for (const [key, notificationId] of waiting) {
      await this.ctx.storage.delete(key);
      // Held until the call object takes it (its own lease comes with its acquire) or a minute passes.
      await this.hold(notificationId, Date.now() + 60_000);
      const callObject = this.env.CALL_SESSION.get(this.env.CALL_SESSION.idFromName(notificationId));
      // Not awaited: the call that freed the slot does not wait for the next one to be placed. A call
      // object that cannot be told asks again at its own alarm; the short lease frees the slot meanwhile.
      void callObject.slotFreed().catch((error: unknown) => console.error(`[echo] could not hand a call slot to notification ${notificationId}`, error));
    }
  }
}
