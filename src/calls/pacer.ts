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

/** What a project's pacer stores, mirrored in memory. */
interface Slots {
  /** The project's max_concurrent_calls, as its last call asked. */
  limit: number;
  /** notificationId → until when its slot is held (the lease). */
  holders: Map<string, number>;
  /** notificationId → its stored waiting key (which sorts in due order). */
  waiting: Map<string, string>;
}

export class CallPacer extends DurableObject<Bindings> {
  /** The deployment's next free start; in memory, since an idle object has no recent start to space from. */
  private nextStartMs = 0;
  /**
   * The stored slots, read once in the object's life and written through on every change: the
   * single writer never needs to list its storage again (a call's acquire and release cost a put
   * and a delete, not lists of every holder).
   */
  private mirror: Slots | null = null;
  /** The alarm as last set or read; undefined until read. */
  private alarmAtMs: number | null | undefined;

  /**
   * A slot for the call of `notificationId`, due at `dueAtMs`: true when it holds one (now or
   * already), else it waits in due order until one frees. The slot is held until `release`, or
   * until `leaseMs` from now if its call vanishes.
   */
  async acquire(notificationId: string, dueAtMs: number, limit: number, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    const slots = this.slots();
    if (slots.limit !== limit) {
      slots.limit = limit;
      this.ctx.storage.kv.put(LIMIT, limit);
    }
    this.reclaimExpired(slots, now);
    const own = slots.waiting.get(notificationId) ?? waitingKey(dueAtMs, notificationId);
    const ahead = [...slots.waiting.values()].filter((key) => key < own).length;
    if (slots.holders.has(notificationId) || slots.holders.size + ahead < limit) {
      this.stopWaiting(slots, notificationId);
      await this.hold(slots, notificationId, now + leaseMs);
      return true;
    }
    slots.waiting.set(notificationId, own);
    this.ctx.storage.kv.put(own, notificationId);
    return false;
  }

  /** The call ended (or will not be placed): its slot, or its place in the line, goes to the next. */
  async release(notificationId: string): Promise<void> {
    const slots = this.slots();
    if (slots.holders.delete(notificationId)) this.ctx.storage.kv.delete(HOLDER + notificationId);
    this.stopWaiting(slots, notificationId);
    await this.grantFreedSlots(slots);
  }

  /** When the deployment may start its next call: now, or the next free start a second allows. */
  async startAt(callsPerSecond: number): Promise<number> {
    const slot = Math.max(Date.now(), this.nextStartMs);
    this.nextStartMs = slot + 1000 / callsPerSecond;
    return slot;
  }

  /** Reclaims slots whose calls vanished (their leases ran out) and hands them on. */
  override async alarm(): Promise<void> {
    // A fired alarm is no longer set.
    this.alarmAtMs = null;
    const slots = this.slots();
    this.reclaimExpired(slots, Date.now());
    await this.grantFreedSlots(slots);
    const earliest = Math.min(...slots.holders.values());
    if (Number.isFinite(earliest)) await this.alarmBy(earliest);
  }

  private slots(): Slots {
    if (this.mirror) return this.mirror;
    const kv = this.ctx.storage.kv;
    this.mirror = {
      limit: kv.get<number>(LIMIT) ?? 0,
      holders: new Map([...kv.list<number>({ prefix: HOLDER })].map(([key, leaseUntilMs]) => [key.slice(HOLDER.length), leaseUntilMs])),
      waiting: new Map([...kv.list<string>({ prefix: WAITING })].map(([key, notificationId]) => [notificationId, key])),
    };
    return this.mirror;
  }

  private async hold(slots: Slots, notificationId: string, leaseUntilMs: number): Promise<void> {
    slots.holders.set(notificationId, leaseUntilMs);
    this.ctx.storage.kv.put(HOLDER + notificationId, leaseUntilMs);
    await this.alarmBy(leaseUntilMs);
  }

  private stopWaiting(slots: Slots, notificationId: string): void {
    const key = slots.waiting.get(notificationId);
    if (key === undefined) return;
    slots.waiting.delete(notificationId);
    this.ctx.storage.kv.delete(key);
  }

  /** The alarm fires by `atMs`: set only when there is none or it is later (a write a lease, at most). */
  private async alarmBy(atMs: number): Promise<void> {
    if (this.alarmAtMs === undefined) this.alarmAtMs = await this.ctx.storage.getAlarm();
    if (this.alarmAtMs !== null && this.alarmAtMs <= atMs) return;
    await this.ctx.storage.setAlarm(atMs);
    this.alarmAtMs = atMs;
  }

  private reclaimExpired(slots: Slots, now: number): void {
    for (const [notificationId, leaseUntilMs] of slots.holders) {
      if (leaseUntilMs > now) continue;
      slots.holders.delete(notificationId);
      this.ctx.storage.kv.delete(HOLDER + notificationId);
    }
  }

  /** Gives free slots to the calls waiting longest, in due order, and tells their call objects. */
  private async grantFreedSlots(slots: Slots): Promise<void> {
    const free = Math.max(0, slots.limit - slots.holders.size);
    const next = [...slots.waiting].sort(([, a], [, b]) => (a < b ? -1 : 1)).slice(0, free);
    for (const [notificationId] of next) {
      this.stopWaiting(slots, notificationId);
      // Held until the call object takes it (its own lease comes with its acquire) or a minute passes.
      await this.hold(slots, notificationId, Date.now() + 60_000);
      const callObject = this.env.CALL_SESSION.get(this.env.CALL_SESSION.idFromName(notificationId));
      // Not awaited: the call that freed the slot does not wait for the next one to be placed. A call
      // object that cannot be told asks again at its own alarm; the short lease frees the slot meanwhile.
      void callObject.slotFreed().catch((error: unknown) => console.error(`[echo] could not hand a call slot to notification ${notificationId}`, error));
    }
  }
}
