// @ts-check
// One clock for every thread of the harness. `performance.now()` counts from each thread's own
// `timeOrigin` (a worker thread's starts when the thread does), so two threads' readings cannot be
// subtracted; `process.hrtime.bigint()` reads CLOCK_MONOTONIC, which is one clock for the whole
// machine: a frame stamped when sent in the fake Twilio's thread and when received in the fake
// OpenAI's thread is compared on the same time line.

/** Milliseconds on CLOCK_MONOTONIC (since boot), to the nanosecond: a double holds ≈ 10⁴ days of it exactly enough. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;
