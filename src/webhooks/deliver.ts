import type { Bindings } from "../env";

export interface DeliveryMessage {
  deliveryId: string;
}

export async function handleDeliveryBatch(batch: MessageBatch<DeliveryMessage>, _env: Bindings): Promise<void> {
  batch.ackAll();
}
