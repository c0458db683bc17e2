// @ts-check
// `npm run dev` (or `wrangler dev` of another config) on a free port with a throwaway state
// directory, its CPU accounting, and the HTTP API client.
import { spawnSync } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ChildGroup, cpuSecondsByPid, freePort, listeningPorts, processTree } from "./proc.mjs";

/**
 * `npm run dev` — or, with `config`, plain `wrangler dev -c <config>` (the benchmark's floor Worker).
 * @param {{ root: string; runDir: string; persistDir?: string; config?: string; expectName?: string; vars: Record<string, string>; log: (line: string) => void; onCleanup: import("../run.mjs").SuiteContext["onCleanup"]; onExitKill: import("../run.mjs").SuiteContext["onExitKill"] }} options
 *   `runDir` is this run's own directory (its log; the local database and Durable Object storage
 *   in `persistDir`, by default `runDir/persist`, removed when the server stops). `expectName` is
 *   the `name` the Worker's `GET /` answers with once it is up. The server is stopped through the
 *   suite's `onCleanup` (and killed through `onExitKill` if the process exits first).
 * @returns {Promise<DevServer>}
 */
export async function startDevServer({ root, runDir, persistDir, config, expectName = "echo-edge", vars, log, onCleanup, onExitKill }) {
  const stateDir = persistDir ?? join(runDir, "persist");
  // The run directory holds the log even when the state is elsewhere (--tmpfs).
  mkdirSync(runDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const wrangler = join(dirname(createRequire(join(root, "package.json")).resolve("wrangler/package.json")), "bin", "wrangler.js");
  if (!config) {
    // `npm run dev` migrates the default local database; ours lives in stateDir, so migrate it too.
    const migrate = spawnSync(process.execPath, [wrangler, "d1", "migrations", "apply", "DB", "--local", "--persist-to", stateDir], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" },
    });
    if (migrate.status !== 0) throw new Error(`migrating ${stateDir} failed:\n${migrate.stdout}\n${migrate.stderr}`);
  }

  const port = await freePort();
  const inspectorPort = await freePort();
  const devArgs = ["--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort), "--persist-to", stateDir, "--show-interactive-dev-session=false"];
  for (const [name, value] of Object.entries(vars)) devArgs.push("--var", `${name}:${value.replaceAll("{PORT}", String(port))}`);
  const npm = process.env.npm_execpath;
  const [command, args] = config
    ? [process.execPath, [wrangler, "dev", "-c", config, ...devArgs]]
    : npm
      ? [process.execPath, [npm, "run", "dev", "--", ...devArgs]]
      : ["npm", ["run", "dev", "--", ...devArgs]];
  const logPath = join(runDir, "dev.log");
  // wrangler dev's local observability (on by default) tails every invocation of the Worker into a
  // trace store (a SQLite object on disk, in the same workerd): dev tooling that a deployment does
  // not run unless `[observability]` turns it on, which ours' and the references' configurations
  // do not. Off for every dev server the benchmarks start; X_LOCAL_OBSERVABILITY=true turns it back on.
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", X_LOCAL_OBSERVABILITY: process.env.X_LOCAL_OBSERVABILITY ?? "false" };
  const group = new ChildGroup(command, args, { cwd: root, env, logFile: createWriteStream(logPath) });
  const server = new DevServer(group, `http://127.0.0.1:${port}`, logPath, stateDir, expectName);
  /** wrangler's inspector (the Worker's isolate, DevTools protocol): CPU profiles under load. */
  server.inspectorPort = inspectorPort;
  // Registered before waiting, so that a failed or interrupted start-up still stops it.
  onCleanup(() => server.stop());
  onExitKill(() => server.group.killNow());
  log(`${config ? `wrangler dev -c ${config}` : "npm run dev"} on port ${port} (log: ${logPath})`);
  await server.waitReady();
  return server;
}

class DevServer {
  /** @param {ChildGroup} group @param {string} baseUrl @param {string} logPath @param {string} stateDir @param {string} expectName */
  constructor(group, baseUrl, logPath, stateDir, expectName) {
    this.stateDir = stateDir;
    this.expectName = expectName;
    this.group = group;
    this.baseUrl = baseUrl;
    this.logPath = logPath;
    /** wrangler rebuilds and restarts the Worker when a source file changes: every call in flight dies. */
    this.reloads = 0;
    /** @type {number | undefined} wrangler's inspector port */
    this.inspectorPort = undefined;
    /** @type {number | undefined} the workerd process of wrangler's dev proxy */
    this.proxyPid = undefined;
    group.child.stdout?.on("data", (/** @type {string} */ text) => {
      if (text.includes("Reloading local server")) this.reloads++;
    });
  }

  async waitReady(timeoutMs = 180_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.group.running) throw new Error(`the dev server exited early:\n${this.group.tail.join("\n")}`);
      try {
        const response = await fetch(`${this.baseUrl}/`, { signal: AbortSignal.timeout(2000) });
        const body = await response.json().catch(() => null);
        if (response.ok && body?.name === this.expectName) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    throw new Error(`the dev server was not ready within ${timeoutMs / 1000} s:\n${this.group.tail.join("\n")}`);
  }

  /**
   * The port of the workerd process that runs our Worker itself. `wrangler dev`'s public port is
   * served by a separate proxy worker (in its own workerd process) that forwards every request and
   * WebSocket; connecting here skips that hop, which production does not have.
   */
  async innerPort() {
    const publicPort = Number(new URL(this.baseUrl).port);
    for (const info of processTree(this.group.pid)) {
      if (info.comm !== "workerd") continue;
      const ports = listeningPorts(info.pid);
      if (ports.includes(publicPort)) continue;
      for (const port of ports) {
        try {
          const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
          const body = await response.json().catch(() => null);
          if (body?.name === this.expectName) return port;
        } catch {
          // Not an HTTP entry point.
        }
      }
    }
    throw new Error("could not find the port of the Worker's own workerd process");
  }

  /**
   * CPU seconds used so far by the workerd processes (`proxy`: the one serving the public port,
   * wrangler's dev proxy) and, apart, by everything else of the dev server (npm, node, wrangler).
   */
  cpu() {
    const publicPort = Number(new URL(this.baseUrl).port);
    let workerd = 0;
    let proxy = 0;
    let other = 0;
    const workerdPids = [];
    for (const [pid, { comm, seconds }] of cpuSecondsByPid(this.group.pid)) {
      if (comm === "workerd") {
        workerd += seconds;
        workerdPids.push(pid);
        this.proxyPid ??= listeningPorts(pid).includes(publicPort) ? pid : undefined;
        if (pid === this.proxyPid) proxy += seconds;
      } else other += seconds;
    }
    return { workerd, proxy, other, workerdPids };
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{ key?: string; token?: string; body?: unknown }} [options]
   * @returns {Promise<{ status: number; body: any }>}
   */
  async api(method, path, { key, token, body } = {}) {
    /** @type {Record<string, string>} */
    const headers = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (key) headers["x-api-key"] = key;
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(this.baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return { status: response.status, body: parsed };
  }

  async stop() {
    await this.group.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
