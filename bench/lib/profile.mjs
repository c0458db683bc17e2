// @ts-check
// A CPU profile of a Worker under `wrangler dev` through its inspector (DevTools protocol), and the
// self time it spent by function, heaviest first.
import { createRequire } from "node:module";
import { join } from "node:path";

/**
 * Starts the V8 profiler of the Worker behind `inspectorPort`; the returned function stops it and
 * resolves to the profile (`.cpuprofile` JSON).
 * @param {string} root the project (for the `ws` package)
 * @param {number} inspectorPort
 * @returns {Promise<() => Promise<any>>}
 */
export async function startProfile(root, inspectorPort) {
  const { default: WebSocket } = await import(createRequire(join(root, "package.json")).resolve("ws"));
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = targets.find((/** @type {{ webSocketDebuggerUrl?: string }} */ t) => t.webSocketDebuggerUrl) ?? targets[0];
  const url = target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${inspectorPort}/${target.id}`;
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  let nextId = 1;
  /** @type {Map<number, (result: any) => void>} */
  const pending = new Map();
  socket.on("message", (/** @type {Buffer} */ data) => {
    const message = JSON.parse(data.toString("utf8"));
    if (message.id && pending.has(message.id)) {
      pending.get(message.id)?.(message.result);
      pending.delete(message.id);
    }
  });
  const send = (/** @type {string} */ method, /** @type {object} */ params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 200 });
  await send("Profiler.start");
  return async () => {
    const result = /** @type {{ profile: any }} */ (await send("Profiler.stop"));
    socket.close();
    return result.profile;
  };
}

/**
 * Self time by function (and by script), heaviest first.
 * @param {any} profile
 * @param {number} top
 */
export function profileSummary(profile, top = 25) {
  /** @type {Map<number, any>} */
  const nodes = new Map(profile.nodes.map((/** @type {any} */ node) => [node.id, node]));
  /** @type {Map<number, number>} */
  const hits = new Map();
  const deltas = profile.timeDeltas ?? [];
  profile.samples.forEach((/** @type {number} */ id, /** @type {number} */ i) => hits.set(id, (hits.get(id) ?? 0) + (deltas[i] ?? 0)));
  /** @type {Map<string, number>} */
  const byFunction = new Map();
  /** @type {Map<string, number>} */
  const byScript = new Map();
  let total = 0;
  for (const [id, micros] of hits) {
    const frame = nodes.get(id)?.callFrame ?? {};
    if (frame.functionName === "(idle)" || frame.functionName === "(program)") continue;
    total += micros;
    const script = frame.url ? frame.url.replace(/^.*\//, "") : "(native)";
    const name = `${frame.functionName || "(anonymous)"} ${script}:${(frame.lineNumber ?? 0) + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
    byScript.set(script, (byScript.get(script) ?? 0) + micros);
  }
  const sorted = (/** @type {Map<string, number>} */ map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return { totalMs: total / 1000, functions: sorted(byFunction), scripts: sorted(byScript) };
}
