// Types of build/zod/index.mjs: zod's, less `locales` (and `core.locales`).
export * from "zod";
export { z, z as default } from "zod";
