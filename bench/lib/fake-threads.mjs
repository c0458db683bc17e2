// @ts-check
// The main thread's handle on a fake running in its own worker thread (fakes/thread.mjs).
import { Worker } from "node:worker_threads";

/**
 * @param {"twilio" | "openai"} kind
 * @param {{ runId: string; config: Record<string, unknown>; onEnded?: (index: number) => void }} options
 */
export async function startFakeThread(kind, { runId, config, onEnded }) {
  const worker = new Worker(new URL("../fakes/thread.mjs", import.meta.url), { workerData: { kind, runId, config }, name: `fake-${kind}` });
  let nextId = 0;
  /** @type {Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>} */
  const waiting = new Map();
  let exited = false;
  /** @type {(port: number) => void} */
  let ready = () => {};
  /** @type {(error: Error) => void} */
  let failed = () => {};
  const portReady = new Promise((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });
  const failAll = (/** @type {Error} */ error) => {
    failed(error);
    for (const { reject } of waiting.values()) reject(error);
    waiting.clear();
  };
  worker.on("message", (/** @type {any} */ message) => {
    if (message.type === "ready") return ready(message.port);
    if (message.type === "ended") return onEnded?.(message.index);
    const request = waiting.get(message.id);
    if (!request) return;
    waiting.delete(message.id);
    if (message.error) request.reject(new Error(`fake ${kind}: ${message.error}`));
    else request.resolve(message);
  });
  worker.on("error", (error) => failAll(error));
  worker.on("exit", (code) => {
    exited = true;
    failAll(new Error(`the fake ${kind} thread exited (${code})`));
  });
  /** @param {Record<string, unknown>} message @returns {Promise<any>} */
  const request = (message) => {
    if (exited) return Promise.reject(new Error(`the fake ${kind} thread has exited`));
    const id = ++nextId;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...message, id });
    });
  };
  const port = /** @type {number} */ (await portReady);
  return {
    port,
    threadId: worker.threadId,
    /** Starts a round: the fake forgets the last one's calls and measures its event loop afresh. */
    begin: () => request({ type: "begin" }),
    /** Ends a round: everything the fake saw of its calls, its stray traffic and its event-loop delay. */
    end: () => request({ type: "end" }),
    /** Where the fake Twilio really connects for URLs that start with `from` (null: where it is told). */
    connectTo: (/** @type {string | null} */ from, /** @type {string | null} */ to) => request({ type: "connectTo", from, to }),
    async close() {
      if (exited) return;
      await Promise.race([request({ type: "close" }).catch(() => {}), new Promise((resolve) => setTimeout(resolve, 3000))]);
      await worker.terminate();
    },
  };
}
