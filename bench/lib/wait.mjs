// @ts-check
// Waiting: a plain delay and polling a condition with a deadline.
import { performance } from "node:perf_hooks";

export const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` every `everyMs` until it holds or `timeoutMs` has passed.
 * @param {() => boolean | Promise<boolean>} condition
 * @param {number} timeoutMs
 * @param {number} [everyMs]
 * @returns {Promise<boolean>} whether the condition held before the deadline
 */
export async function waitUntil(condition, timeoutMs, everyMs = 100) {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}
