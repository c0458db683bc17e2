import { createRouter } from "../lib/openapi";

export const notificationRoutes = createRouter();
