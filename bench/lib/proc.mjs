// @ts-check
// Child processes, free ports and CPU accounting from /proc (Linux).
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createServer } from "node:net";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux we run on). */
const CLOCK_TICKS_PER_SECOND = 100;

/** @returns {Promise<number>} a TCP port that was free on 127.0.0.1 a moment ago */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * @typedef {{ pid: number; ppid: number; comm: string; cpuTicks: number }} ProcInfo
 * @param {number} pid
 * @returns {ProcInfo | null}
 */
function readProc(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // "pid (comm) state ppid …": comm may contain spaces or parentheses, so split after the last ")".
  const open = stat.indexOf("(");
  const close = stat.lastIndexOf(")");
  const comm = stat.slice(open + 1, close);
  const fields = stat.slice(close + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return { pid, ppid: Number(fields[1]), comm, cpuTicks: Number(fields[11]) + Number(fields[12]) };
}

/** @param {number} rootPid @returns {ProcInfo[]} the root and every live descendant */
export function processTree(rootPid) {
  /** @type {Map<number, ProcInfo[]>} */
  const children = new Map();
  /** @type {ProcInfo | null} */
  let root = null;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readProc(Number(entry));
    if (!info) continue;
    if (info.pid === rootPid) root = info;
    const siblings = children.get(info.ppid) ?? [];
    siblings.push(info);
    children.set(info.ppid, siblings);
  }
  if (!root) return [];
  const result = [root];
  for (let i = 0; i < result.length; i++) result.push(...(children.get(result[i].pid) ?? []));
  return result;
}

/** CPU seconds (user + system) used so far by each process of the tree, by pid. */
export function cpuSecondsByPid(/** @type {number} */ rootPid) {
  return new Map(processTree(rootPid).map((info) => [info.pid, { comm: info.comm, seconds: info.cpuTicks / CLOCK_TICKS_PER_SECOND }]));
}

/** TCP ports a process listens on (IPv4), from its socket inodes and /proc/net/tcp. */
export function listeningPorts(/** @type {number} */ pid) {
  const inodes = new Set();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match) inodes.add(match[1]);
      } catch {
        // The descriptor closed meanwhile.
      }
    }
  } catch {
    return [];
  }
  const ports = [];
  for (const line of readFileSync(`/proc/${pid}/net/tcp`, "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    // local_address rem_address st … inode: state 0A is LISTEN.
    if (fields.length > 9 && fields[3] === "0A" && inodes.has(fields[9])) ports.push(parseInt(fields[1].split(":")[1], 16));
  }
  return ports;
}

/** Busy and I/O-wait CPU seconds of the whole machine so far. */
export function machineCpu() {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …: busy is everything but idle and iowait.
  const busy = fields.slice(0, 8).reduce((sum, value) => sum + value, 0) - fields[3] - fields[4];
  return { busy: busy / CLOCK_TICKS_PER_SECOND, iowait: fields[4] / CLOCK_TICKS_PER_SECOND };
}

/**
 * Waits until the machine is quiet: less than `maxCores` of CPU busy over a 2-second sample, beyond
 * `ownSeconds()` (what this benchmark's own processes use). Gives up after `timeoutMs`.
 * @param {{ maxCores: number; timeoutMs: number; ownSeconds: () => number; log: (line: string) => void }} options
 * @returns {Promise<number>} the busy cores of the last sample
 */
export async function waitForQuietMachine({ maxCores, timeoutMs, ownSeconds, log }) {
  const deadline = Date.now() + timeoutMs;
  let warned = false;
  for (;;) {
    const busyBefore = machineCpu().busy;
    const ownBefore = ownSeconds();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const cores = Math.max(0, machineCpu().busy - busyBefore - (ownSeconds() - ownBefore)) / 2;
    if (cores <= maxCores) return cores;
    if (Date.now() > deadline) {
      log(`the machine is still busy (${cores.toFixed(2)} cores used by other processes); measuring anyway`);
      return cores;
    }
    if (!warned) log(`waiting for other processes to quieten (${cores.toFixed(2)} cores busy; up to ${Math.round(timeoutMs / 1000)} s)`);
    warned = true;
  }
}

/**
 * A child process in its own process group, so that it and everything it starts (npm → node →
 * wrangler → workerd) can be ended together by the group id, and only them.
 */
export class ChildGroup {
  /**
   * @param {string} command
   * @param {string[]} args
   * @param {{ cwd: string; env?: NodeJS.ProcessEnv; logFile?: import("node:fs").WriteStream }} options
   */
  constructor(command, args, options) {
    this.child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    /** @type {string[]} the last lines of output, for error messages */
    this.tail = [];
    /** @type {Promise<{ code: number | null; signal: NodeJS.Signals | null }>} */
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
    this.running = true;
    this.exited.then(() => (this.running = false));
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", (/** @type {string} */ text) => {
        options.logFile?.write(text);
        for (const line of text.split("\n")) if (line.trim()) this.tail.push(line);
        if (this.tail.length > 60) this.tail.splice(0, this.tail.length - 60);
      });
    }
  }

  get pid() {
    return /** @type {number} */ (this.child.pid);
  }

  /** SIGTERM to the whole group, SIGKILL after `graceMs`; resolves when the group leader is gone. */
  async stop(graceMs = 5000) {
    const group = this.pid;
    const signalGroup = (/** @type {NodeJS.Signals} */ signal) => {
      try {
        process.kill(-group, signal);
      } catch {
        // The group is already gone.
      }
    };
    signalGroup("SIGTERM");
    const timer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
    // Grandchildren (workerd) may outlive the leader for a moment; make sure none stays.
    await new Promise((resolve) => setTimeout(resolve, 200));
    signalGroup("SIGKILL");
  }

  /** Synchronous last resort for process exit handlers. */
  killNow() {
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}
