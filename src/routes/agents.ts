import { createRouter } from "../lib/openapi";

export const agentRoutes = createRouter();
