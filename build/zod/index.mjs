// The bundle's `zod` (wrangler.toml [alias]): zod's own index (node_modules/zod/index.js and
// v4/classic/external.js) without `z.locales` and `z.core.locales`, its 40 error-message
// translations (≈ 260 KiB minified). @hono/zod-openapi extends and re-exports the whole `z`
// namespace as a value, so the bundler must keep every member of it, the locales included; here
// they are not members. The English messages zod registers itself (v4/classic/schemas.js imports
// locales/en.js) are unchanged. test/zod-bundle.test.ts checks that every other export is here.
// zod is pinned (package.json): on an upgrade, compare with its index.js and external.js.
import * as z from "./classic.mjs";
export * from "./classic.mjs";
export { z, z as default };
