// @ts-check
// A CPU profile of the Worker under `wrangler dev`, through its inspector (the Chrome DevTools
// protocol that `--inspector-port` serves), and a summary of where the samples went.
import { writeFileSync } from "node:fs";
// Node's own WebSocket is refused by wrangler's inspector proxy; `ws` is what DevTools clients use.
import WebSocket from "ws";

/**
 * Starts sampling the Worker's isolate; the returned function stops it and gives the profile.
 * @param {number} inspectorPort
 * @param {number} [intervalUs] sampling interval
 * @returns {Promise<() => Promise<any>>}
 */
export async function startCpuProfile(inspectorPort, intervalUs = 200) {
  const socket = new WebSocket(`ws://127.0.0.1:${inspectorPort}/ws`);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  // wrangler's proxy renumbers requests and forwards answers to its own, so the profile is known by its shape.
  /** @type {(profile: any) => void} */
  let onProfile = () => {};
  socket.on("message", (data) => {
    const message = JSON.parse(String(data));
    if (message.result?.profile) onProfile(message.result.profile);
  });
  let nextId = 0;
  const send = (/** @type {string} */ method, /** @type {object} */ params = {}) => socket.send(JSON.stringify({ id: ++nextId, method, params }));
  send("Profiler.enable");
  send("Profiler.setSamplingInterval", { interval: intervalUs });
  send("Profiler.start");
  return async () => {
    const profile = await new Promise((resolve) => {
      onProfile = resolve;
      send("Profiler.stop");
    });
    socket.close();
    return profile;
  };
}

/**
 * Self time by function (and by script), largest first, as text lines; the raw profile is written
 * to `path` for DevTools.
 * @param {any} profile @param {string} path @param {number} [top]
 */
export function summarizeCpuProfile(profile, path, top = 40) {
  writeFileSync(path, JSON.stringify(profile));
  /** @type {Map<number, any>} */
  const nodes = new Map(profile.nodes.map((/** @type {any} */ node) => [node.id, node]));
  /** @type {Map<number, number>} */
  const hits = new Map();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const total = profile.samples.length;
  /** @type {Map<string, number>} */
  const byFunction = new Map();
  /** @type {Map<string, number>} */
  const byScript = new Map();
  for (const [id, count] of hits) {
    const frame = nodes.get(id).callFrame;
    const script = (frame.url || "(native)").split("/").slice(-2).join("/");
    const name = `${frame.functionName || "(anonymous)"} ${script}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + count);
    byScript.set(script, (byScript.get(script) ?? 0) + count);
  }
  const lines = [`${total} samples`];
  const pct = (/** @type {number} */ count) => `${((count / total) * 100).toFixed(1).padStart(5)} %`;
  for (const [name, count] of [...byScript].sort((a, b) => b[1] - a[1]).slice(0, 10)) lines.push(`${pct(count)}  [script] ${name}`);
  for (const [name, count] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(count)}  ${name}`);
  return lines;
}
