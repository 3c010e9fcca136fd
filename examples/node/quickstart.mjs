// paynorm from Node.js (18+), built-in fetch and crypto only.
//
// Runs against `go run ./cmd/paynorm run` (the sandbox): creates a payment
// with an Idempotency-Key, retries a 503/429 after Retry-After with the same
// key, handles a decline by error.code, captures, and verifies a webhook.
//
//   PAYNORM_URL=http://localhost:8080 node examples/node/quickstart.mjs
//
// Optional: PAYNORM_SANDBOX_URL makes the sandbox fail once so the retry path
// runs; PAYNORM_WEBHOOK_PORT and PAYNORM_NOTIFY_SECRET (notify_url pointing at
// that port) receive and verify a real event.
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const BASE = process.env.PAYNORM_URL ?? "http://localhost:8080";
// The app's page the card holder's browser returns to after 3-D Secure
// (tok_visa is not enrolled on the sandbox, so no browser is needed here).
const RETURN_URL = "https://shop.example.jp/checkout/return";

// PaynormError carries the normalized error: branch on type and code, never on the message.
class PaynormError extends Error {
  constructor(status, body) {
    super(`${status} ${body.error?.type}/${body.error?.code}`);
    Object.assign(this, { status, type: body.error?.type, code: body.error?.code, payment: body.error?.payment });
  }
}

// call retries 429 and 503 after Retry-After with the SAME Idempotency-Key;
// a replayed answer is final (the first outcome stands).
async function call(method, path, body, key, attempts = 5) {
  for (let attempt = 0; ; attempt++) {
    const headers = { "Content-Type": "application/json" };
    if (key) headers["Idempotency-Key"] = key;
    const res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await res.json();
    if (res.ok) return json;
    const replayed = res.headers.get("Idempotent-Replayed") === "true";
    if ((res.status === 429 || res.status === 503) && !replayed && attempt + 1 < attempts) {
      const wait = Number(res.headers.get("Retry-After") ?? "1");
      console.log(`  ${res.status} ${json.error.code}: retrying in ${wait}s with the same key`);
      await new Promise((r) => setTimeout(r, wait * 1000));
      continue;
    }
    throw new PaynormError(res.status, json);
  }
}

// verify checks Paynorm-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + body)).
export function verify(secret, headers, rawBody, toleranceSec = 300) {
  const ts = headers["paynorm-timestamp"];
  const want = Buffer.from("v1=" + createHmac("sha256", secret).update(`${ts}.`).update(rawBody).digest("hex"));
  const got = Buffer.from(headers["paynorm-signature"] ?? "");
  if (want.length !== got.length || !timingSafeEqual(want, got)) throw new Error("bad signature");
  if (Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSec) throw new Error("stale event");
  return JSON.parse(rawBody.toString());
}

function receiver(port, secret, onEvent) {
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        onEvent(verify(secret, req.headers, Buffer.concat(chunks)));
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  srv.listen(port, "127.0.0.1");
  return srv;
}

async function main() {
  const events = [];
  const port = process.env.PAYNORM_WEBHOOK_PORT;
  const srv = port ? receiver(Number(port), process.env.PAYNORM_NOTIFY_SECRET ?? "", (e) => events.push(e)) : null;

  // 1. Create with an Idempotency-Key (the sandbox fails once first, if given).
  const sandbox = process.env.PAYNORM_SANDBOX_URL;
  if (sandbox) {
    await fetch(sandbox + "/sandbox/faults", { method: "POST", body: JSON.stringify({ api: "EntryTran", kind: "5xx", count: 1 }) });
  }
  const order = "JS-" + randomUUID().slice(0, 12);
  const key = randomUUID();
  const req = { order_id: order, amount: 1000, tax: 100, capture: "manual", payment_method: { token: "tok_visa" }, return_url: RETURN_URL };
  const pay = await call("POST", "/v1/payments", req, key);
  console.log(`created ${pay.id}: ${pay.status}`);
  if (pay.status !== "authorized") throw new Error("not authorized");
  if ((await call("POST", "/v1/payments", req, key)).id !== pay.id) throw new Error("the same key must answer the same payment");

  // 2. A decline, handled by its code.
  try {
    await call("POST", "/v1/payments", { amount: 500, payment_method: { token: "tok_insufficient_funds" }, return_url: RETURN_URL }, randomUUID());
    throw new Error("expected a decline");
  } catch (e) {
    if (!(e instanceof PaynormError) || e.type !== "card_error" || e.code !== "insufficient_funds") throw e;
    console.log("declined: insufficient_funds -> ask the customer for another card");
  }

  // 3. Capture.
  const cap = await call("POST", `/v1/payments/${pay.id}/capture`, undefined, randomUUID());
  console.log(`captured ${cap.id}: ${cap.status}`);
  if (cap.status !== "captured") throw new Error("not captured");

  // 4. Webhook signature.
  if (srv) {
    const deadline = Date.now() + 20000;
    let ev;
    while (!(ev = events.find((e) => e.type === "payment.captured" && e.data.payment.id === pay.id))) {
      if (Date.now() > deadline) throw new Error("no payment.captured event");
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`webhook verified: ${ev.type} ${ev.id} verified=${ev.verified}`);
    srv.close();
  } else {
    const body = Buffer.from('{"id":"evt_x","type":"payment.captured"}');
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = "v1=" + createHmac("sha256", "whsec_example_secret").update(`${ts}.`).update(body).digest("hex");
    verify("whsec_example_secret", { "paynorm-timestamp": ts, "paynorm-signature": sig }, body);
    console.log("webhook signature check: ok (local example)");
  }
  console.log("OK");
}

main().catch((e) => {
  console.error("FAILED:", e.message);
  process.exit(1);
});
