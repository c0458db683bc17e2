// A tiny local webhook receiver for trying the quickstart: verifies X-Echo-Signature exactly as the
// quickstart's snippet does and prints each event.
//   ECHO_SIGNING_SECRET=whsec_... npm run receiver            (listens on http://localhost:4000)
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.ECHO_SIGNING_SECRET;
const port = Number(process.env.PORT ?? 4000);

createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const received = String(req.headers["x-echo-signature"] ?? "");
    const expected = secret ? `sha256=${createHmac("sha256", secret).update(body).digest("hex")}` : "";
    const valid = Boolean(secret) && received.length === expected.length && timingSafeEqual(Buffer.from(received), Buffer.from(expected));
    let event = {};
    try {
      event = JSON.parse(body.toString("utf8"));
    } catch {
      // not JSON: print as is below
    }
    console.log(`\n${new Date().toISOString()} ${req.method} ${req.url} signature ${secret ? (valid ? "valid" : "INVALID") : "not checked (no ECHO_SIGNING_SECRET)"}`);
    console.log(JSON.stringify(event, null, 2));
    res.writeHead(secret && !valid ? 401 : 200, { "content-type": "text/plain" }).end(secret && !valid ? "Invalid signature" : "ok");
  });
}).listen(port, () => console.log(`webhook receiver on http://localhost:${port}/webhooks/echo`));
