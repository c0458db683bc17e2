/** BSON files are bundled as Data modules (wrangler.toml `rules`): their bytes. */
declare module "*.bson" {
  const bytes: ArrayBuffer;
  export default bytes;
}
