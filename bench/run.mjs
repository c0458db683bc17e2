// @ts-check
// `npm run bench [-- <suite>… [--option=value…]]`: runs benchmark suites, each a module
// `bench/<suite>.mjs` exporting `description` and `run(context)`. Without a suite name every suite
// runs; `--strict` exits non-zero when a target is missed. Child processes are registered for cleanup, which also happens on Ctrl-C and on errors.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * What a suite's `run(context)` gets; it returns `{ passed }`.
 * @typedef {object} SuiteContext
 * @property {string} root the project directory
 * @property {string} benchDir
 * @property {Record<string, string>} options `--name=value` arguments
 * @property {(cleanup: () => Promise<void> | void) => void} onCleanup runs at the end, or on Ctrl-C / error, latest first
 * @property {(kill: () => void) => void} onExitKill synchronous kill for when the process is exiting
 * @property {(line: string) => void} log
 */

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, "..");

/** @type {Array<() => Promise<void> | void>} */
const cleanups = [];
/** @type {Array<() => void>} */
const emergencyKills = [];
let cleaningUp = false;

async function cleanUp() {
  if (cleaningUp) return;
  cleaningUp = true;
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      console.error("[bench] cleanup failed:", error);
    }
  }
}

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM", "SIGHUP"])) {
  process.on(signal, async () => {
    console.error(`\n[bench] ${signal}: stopping`);
    const forced = setTimeout(() => {
      for (const kill of emergencyKills) kill();
      process.exit(130);
    }, 8000);
    await cleanUp();
    clearTimeout(forced);
    process.exit(130);
  });
}
// Whatever happens, never leave a dev server behind.
process.on("exit", () => {
  for (const kill of emergencyKills) kill();
});

const suites = readdirSync(benchDir)
  .filter((name) => name.endsWith(".mjs") && name !== "run.mjs")
  .map((name) => name.slice(0, -4))
  .sort();

const argv = process.argv.slice(2);
const requested = argv.filter((arg) => !arg.startsWith("--"));
/** @type {Record<string, string>} */
const options = Object.fromEntries(
  argv
    .filter((arg) => arg.startsWith("--"))
    .map((arg) => {
      const [name, ...value] = arg.slice(2).split("=");
      return [name, value.length ? value.join("=") : "true"];
    }),
);

if (options.help) {
  console.log(`usage: npm run bench [-- <suite>… [--option=value…]]\nsuites: ${suites.join(", ")}\nsee bench/README.md for each suite's options`);
  process.exit(0);
}
const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  console.error(`[bench] Node ${process.versions.node}: run it as \`npm run bench\` (the project's Node 22 comes from node_modules).`);
  process.exit(1);
}
for (const name of requested) {
  if (!suites.includes(name)) {
    console.error(`[bench] unknown suite "${name}"; suites: ${suites.join(", ")}`);
    process.exit(1);
  }
}

let failed = false;
try {
  for (const name of requested.length ? requested : suites) {
    const suite = await import(pathToFileURL(join(benchDir, `${name}.mjs`)).href);
    console.log(`\n# bench: ${name} — ${suite.description}\n`);
    const outcome = await suite.run({
      root,
      benchDir,
      options,
      onCleanup: (/** @type {() => Promise<void> | void} */ cleanup) => cleanups.push(cleanup),
      onExitKill: (/** @type {() => void} */ kill) => emergencyKills.push(kill),
      log: (/** @type {string} */ line) => console.log(`[${name}] ${line}`),
    });
    await cleanUp();
    cleaningUp = false;
    cleanups.length = 0;
    // A missed target fails the run only with --strict: the numbers are the point, not the exit code.
    if (outcome?.passed === false && options.strict) failed = true;
  }
} catch (error) {
  console.error("[bench] failed:", error);
  failed = true;
} finally {
  await cleanUp();
}
process.exit(failed ? 1 : 0);
