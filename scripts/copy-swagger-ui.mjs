// Copies Swagger UI's assets into the Worker's static assets so /docs works offline.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);

export function copySwaggerUi() {
  let source;
  try {
    source = dirname(require.resolve("swagger-ui-dist/package.json"));
  } catch {
    console.warn("[echo] swagger-ui-dist is not installed; /docs will have no assets");
    return;
  }
  const target = join(root, "public", "swagger-ui");
  mkdirSync(target, { recursive: true });
  for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
    if (!existsSync(join(target, file))) copyFileSync(join(source, file), join(target, file));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) copySwaggerUi();
