import { createApp } from "./app";
import type { Bindings } from "./env";
import { handleDeliveryBatch, type DeliveryMessage } from "./webhooks/deliver";

export { CallSession } from "./calls/call-session";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  queue: (batch, env) => handleDeliveryBatch(batch, env),
} satisfies ExportedHandler<Bindings, DeliveryMessage>;
