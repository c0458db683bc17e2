import { createRouter } from "../lib/openapi";

export const customerRoutes = createRouter();
