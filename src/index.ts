import { createApp } from "./app";
import type { Bindings } from "./env";
import { handleDeliveryBatch, type DeliveryMessage } from "./webhooks/deliver";
import { sweepOutbox } from "./webhooks/sweep";

export { CallSession } from "./calls/call-session";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  queue: (batch, env) => handleDeliveryBatch(batch, env),
  // The cron trigger (every minute): re-enqueue webhook deliveries that are overdue and not in flight.
  scheduled: async (_controller, env) => {
    await sweepOutbox(env);
  },
} satisfies ExportedHandler<Bindings, DeliveryMessage>;
