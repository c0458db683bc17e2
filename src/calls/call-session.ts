import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env";

export class CallSession extends DurableObject<Bindings> {}
