// @ts-check
// Local servers: listening on a free port of 127.0.0.1 and closing.

/**
 * Listens on a free port of 127.0.0.1.
 * @param {import("node:net").Server} server
 * @returns {Promise<number>} the port
 */
export async function listenLocal(server) {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("the server has no port");
  return address.port;
}

/**
 * Stops accepting connections; resolves once the open ones have ended.
 * @param {import("node:net").Server} server
 * @returns {Promise<void>}
 */
export function closeServer(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}
