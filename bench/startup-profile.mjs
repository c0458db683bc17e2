#!/usr/bin/env node
// Where a Worker's startup CPU goes: summarizes `wrangler check startup` profiles of an unminified
// bundle by the module each sample's code comes from.
//
//   npx wrangler deploy --dry-run --minify=false --outdir /tmp/u                 # /tmp/u/index.js
//   npx wrangler deploy --dry-run --minify=false --outfile /tmp/u.bundle
//   for i in 1 2 3; do npx wrangler check startup --worker /tmp/u.bundle --outfile /tmp/p$i.cpuprofile; done
//   node bench/startup-profile.mjs /tmp/u/index.js /tmp/p*.cpuprofile
//
// "leaf": the package or source file of the function running when sampled. "top": the function the
// bundle's top level was calling. esbuild flattens modules into one top level, whose own samples
// (module code outside any function) have no position: they show as "(top level)". Per profile,
// averaged over the profiles given.
import fs from "node:fs";

const [bundlePath, ...profiles] = process.argv.slice(2);
if (!bundlePath || profiles.length === 0) {
  console.error("usage: node bench/startup-profile.mjs <unminified bundle .js> <profile.cpuprofile>...");
  process.exit(2);
}
const bundleName = bundlePath.split("/").pop();
const lines = fs.readFileSync(bundlePath, "utf8").split("\n");
const moduleAt = [];
let current = "(bundle prelude)";
for (let i = 0; i < lines.length; i++) {
  const header = lines[i].match(/^\/\/ ((?:node_modules|src|build)\/\S+)$/);
  if (header) current = header[1];
  moduleAt[i] = current;
}
const packageOf = (module = "(outside the bundle given)") => module.replace(/^node_modules\/((?:@[^/]+\/)?[^/]+).*/, "$1");

const leaf = new Map();
const top = new Map();
const add = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
let nonIdle = 0;
for (const file of profiles) {
  const profile = JSON.parse(fs.readFileSync(file, "utf8"));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inBundle = (frame) => frame.url.endsWith(bundleName);
  for (const id of profile.samples) {
    const frame = nodes.get(id).callFrame;
    if (frame.functionName === "(idle)") continue;
    nonIdle++;
    add(leaf, !inBundle(frame) ? frame.functionName || frame.url : frame.lineNumber >= 0 ? packageOf(moduleAt[frame.lineNumber]) : "(top level)");
    let at = id;
    let below;
    while (at !== undefined && !(inBundle(nodes.get(at).callFrame) && nodes.get(at).callFrame.lineNumber === -1)) [below, at] = [at, parent.get(at)];
    if (at === undefined) add(top, "(not under the top level)");
    else if (below === undefined) add(top, "(top level)");
    else {
      const called = nodes.get(below).callFrame;
      add(top, `${called.functionName || "(anonymous)"} in ${called.lineNumber >= 0 && inBundle(called) ? moduleAt[called.lineNumber] : called.url}`);
    }
  }
}
const print = (title, map, limit) => {
  console.log(`--- ${title}`);
  for (const [key, count] of [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)) console.log((count / profiles.length).toFixed(1).padStart(6), key);
};
console.log(`non-idle samples per profile: ${(nonIdle / profiles.length).toFixed(1)}`);
print("by leaf", leaf, 25);
print("by top", top, 30);
