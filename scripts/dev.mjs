// `npm run dev`: migrate the local D1 database, then start `wrangler dev` on port 8787.
// Extra arguments after `--` go to wrangler (`npm run dev -- --port 9000 --var NAME:value`).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { copySwaggerUi } from "./copy-swagger-ui.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const wrangler = join(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin", "wrangler.js");
const userArgs = process.argv.slice(2);

function run(args) {
  const result = spawnSync(process.execPath, [wrangler, ...args], { cwd: root, stdio: "inherit", env: { ...process.env, CI: "true" } });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function configuredNames() {
  const names = new Set();
  const devVars = join(root, ".dev.vars");
  if (existsSync(devVars)) {
    for (const line of readFileSync(devVars, "utf8").split("\n")) {
      const match = /^\s*([A-Z0-9_]+)\s*=\s*\S/.exec(line);
      if (match) names.add(match[1]);
    }
  }
  userArgs.forEach((arg, i) => {
    const value = arg === "--var" ? userArgs[i + 1] : arg.startsWith("--var=") ? arg.slice(6) : undefined;
    const match = value && /^([A-Z0-9_]+):/.exec(value);
    if (match) names.add(match[1]);
  });
  for (const name of Object.keys(process.env)) names.add(name);
  return names;
}

copySwaggerUi();
run(["d1", "migrations", "apply", "DB", "--local"]);

const names = configuredNames();
if (!names.has("JWT_SECRET")) {
  console.warn("\n[echo] WARNING: JWT_SECRET is not set; using a development-only default. Never deploy like this.");
}
// The Worker's rule (src/env.ts): any Twilio credential means live calls, and then all their settings must be there.
const twilio = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_FROM_NUMBER"].some((name) => names.has(name));
console.warn(
  twilio
    ? "[echo] Twilio credentials are set: notifications place real calls (the API answers 503 and says what is missing if a live-call setting is)."
    : "[echo] No Twilio credentials: notifications run on the built-in call simulator (nothing is dialled).",
);

const hasPort = userArgs.some((arg) => arg === "--port" || arg.startsWith("--port="));
const args = ["dev", "--var", "ENVIRONMENT:development", ...(hasPort ? [] : ["--port", "8787"]), ...userArgs];
const child = spawn(process.execPath, [wrangler, ...args], { cwd: root, stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(signal ? 1 : (code ?? 0)));
