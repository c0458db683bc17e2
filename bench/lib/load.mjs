// @ts-check
// HTTP load with autocannon, in a child process of its own (`runLoad`), so that the harness's event
// loop is not what is measured. The child is this file run directly: it gets its job as JSON in
// argv, runs autocannon and sends its result back over IPC.
import { fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";

/**
 * @typedef {object} LoadJob
 * @property {string} url
 * @property {number} connections
 * @property {number} durationSeconds
 * @property {Record<string, string>} headers
 * @property {Array<Record<string, unknown>>} bodies request bodies, used round-robin
 * @property {boolean} idempotencyKeys a fresh Idempotency-Key on every request
 *
 * @typedef {object} LoadResult
 * @property {number} requests completed requests (any status)
 * @property {number} ok 2xx responses
 * @property {number} non2xx
 * @property {number} errors connection errors
 * @property {number} timeouts
 * @property {number} seconds the load's own duration
 * @property {number} rps 2xx responses per second
 * @property {number} p50 latency, ms
 * @property {number} p99 latency, ms
 * @property {Record<string, number>} statusCodes
 * @property {string[]} sampleErrors the first few non-2xx bodies
 */

/**
 * Runs one load in a child process.
 * @param {LoadJob} job
 * @returns {Promise<LoadResult>}
 */
export function runLoad(job) {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(job)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let result = /** @type {LoadResult | null} */ (null);
    child.on("message", (message) => (result = /** @type {LoadResult} */ (message)));
    child.on("error", reject);
    child.on("exit", (code) => (result ? resolve(result) : reject(new Error(`the load process exited with ${code} and no result`))));
  });
}

async function child() {
  const { default: autocannon } = await import("autocannon");
  /** @type {LoadJob} */
  const job = JSON.parse(process.argv[2] ?? "{}");
  let next = 0;
  /** @type {string[]} */
  const sampleErrors = [];
  const instance = autocannon({
    url: job.url,
    connections: job.connections,
    duration: job.durationSeconds,
    timeout: 30,
    requests: [
      {
        method: "POST",
        setupRequest: (request) => {
          const body = job.bodies[next++ % job.bodies.length];
          /** @type {Record<string, string>} */
          const headers = { ...job.headers, "content-type": "application/json" };
          if (job.idempotencyKeys) headers["idempotency-key"] = randomUUID();
          return { ...request, headers, body: JSON.stringify(body) };
        },
        onResponse: (status, body) => {
          if ((status < 200 || status > 299) && sampleErrors.length < 5) sampleErrors.push(`${status} ${String(body).slice(0, 300)}`);
        },
      },
    ],
  });
  const result = await instance;
  /** @type {Record<string, number>} */
  const statusCodes = {};
  for (const [code, count] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = /** @type {{ count: number }} */ (count).count;
  const ok = result["2xx"];
  const seconds = result.duration;
  /** @type {LoadResult} */
  const out = {
    requests: result.requests.total,
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds,
    rps: ok / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    statusCodes,
    sampleErrors,
  };
  process.send?.(out);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await child();
