import { createApp } from "./app";
import { reconcileCalls } from "./calls/reconcile";
import { deleteExpiredRecordings } from "./calls/recording-retention";
import { CALL_START_QUEUE, handleCallStarts, type CallStartMessage } from "./notifications/start";
import type { Bindings } from "./env";
import { handleDeliveryBatch, type DeliveryMessage } from "./webhooks/deliver";
import { sweepOutbox } from "./webhooks/sweep";

export { CallSession } from "./calls/call-session";
export { CallPacer } from "./calls/pacer";
export { RateLimiter } from "./limits/rate-limiter";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  queue: (batch, env) =>
    batch.queue === CALL_START_QUEUE ? handleCallStarts(batch as MessageBatch<CallStartMessage>, env) : handleDeliveryBatch(batch as MessageBatch<DeliveryMessage>, env),
  // The cron trigger (every minute): re-enqueue webhook deliveries that are overdue and not in
  // flight, end the calls that were lost, and delete recordings past their retention; one failing
  // does not hold up the others.
  scheduled: async (_controller, env) => {
    const failed = (await Promise.allSettled([sweepOutbox(env), reconcileCalls(env), deleteExpiredRecordings(env)])).filter((run) => run.status === "rejected");
    if (failed.length > 0) throw new AggregateError(failed.map((run) => run.reason), "A scheduled run failed");
  },
} satisfies ExportedHandler<Bindings, DeliveryMessage | CallStartMessage>;
