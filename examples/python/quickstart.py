#!/usr/bin/env python3
"""paynorm from Python, standard library only.

Runs against `go run ./cmd/paynorm run` (the sandbox): creates a payment with
an Idempotency-Key, retries a 503/429 after Retry-After with the same key,
handles a decline by error.code, captures, and verifies a webhook signature.

    PAYNORM_URL=http://localhost:8080 python3 examples/python/quickstart.py

Optional: PAYNORM_SANDBOX_URL (e.g. http://localhost:8090) makes the sandbox
fail once so the retry path runs; PAYNORM_WEBHOOK_PORT and PAYNORM_NOTIFY_SECRET
(the Caddyfile's notify_url must point at that port) receive a real event.
"""
import hashlib
import hmac
import http.server
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

BASE = os.environ.get("PAYNORM_URL", "http://localhost:8080")
# The app's page the card holder's browser returns to after 3-D Secure
# (tok_visa is not enrolled on the sandbox, so no browser is needed here).
RETURN_URL = "https://shop.example.jp/checkout/return"


class PaynormError(Exception):
    """A normalized paynorm error: branch on .type and .code, never on the message."""

    def __init__(self, status, body, headers):
        err = body.get("error", {})
        super().__init__(f"{status} {err.get('type')}/{err.get('code')}")
        self.status, self.type, self.code = status, err.get("type"), err.get("code")
        self.retryable, self.payment, self.headers = err.get("retryable"), err.get("payment"), headers


def call(method, path, body=None, key=None, attempts=5):
    """One API call. 429 and 503 are retried after Retry-After with the SAME
    Idempotency-Key; a replayed answer is final (the first outcome stands)."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(attempts):
        req = urllib.request.Request(BASE + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Idempotency-Key", key)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            payload = json.load(e)
            replayed = e.headers.get("Idempotent-Replayed") == "true"
            if e.code in (429, 503) and not replayed and attempt + 1 < attempts:
                wait = int(e.headers.get("Retry-After", "1"))
                print(f"  {e.code} {payload['error']['code']}: retrying in {wait}s with the same key")
                time.sleep(wait)
                continue
            raise PaynormError(e.code, payload, e.headers) from None
    raise RuntimeError("unreachable")


def verify(secret: bytes, headers, raw_body: bytes, tolerance=300):
    """Paynorm-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + body))."""
    ts = headers["Paynorm-Timestamp"]
    want = "v1=" + hmac.new(secret, ts.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, headers["Paynorm-Signature"]):
        raise ValueError("bad signature")
    if abs(time.time() - int(ts)) > tolerance:
        raise ValueError("stale event")
    return json.loads(raw_body)


def start_receiver(port, secret, events):
    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                events.put(verify(secret, self.headers, raw))
                self.send_response(200)
            except ValueError:
                self.send_response(400)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    events = queue.Queue()
    port, secret = os.environ.get("PAYNORM_WEBHOOK_PORT"), os.environ.get("PAYNORM_NOTIFY_SECRET", "")
    if port:
        start_receiver(int(port), secret.encode(), events)

    # 1. Create with an Idempotency-Key. With the sandbox URL given, its GMO
    #    refuses the first EntryTran (503) so the retry path runs.
    sandbox = os.environ.get("PAYNORM_SANDBOX_URL")
    if sandbox:
        req = urllib.request.Request(sandbox + "/sandbox/faults", method="POST",
                                     data=json.dumps({"api": "EntryTran", "kind": "5xx", "count": 1}).encode())
        urllib.request.urlopen(req, timeout=10).close()
    order = "PY-" + uuid.uuid4().hex[:12]
    key = str(uuid.uuid4())
    pay = call("POST", "/v1/payments", {"order_id": order, "amount": 1000, "tax": 100, "capture": "manual",
                                        "payment_method": {"token": "tok_visa"}, "return_url": RETURN_URL}, key=key)
    print(f"created {pay['id']}: {pay['status']}")
    assert pay["status"] == "authorized", pay
    again = call("POST", "/v1/payments", {"order_id": order, "amount": 1000, "tax": 100, "capture": "manual",
                                          "payment_method": {"token": "tok_visa"}, "return_url": RETURN_URL}, key=key)
    assert again["id"] == pay["id"], "the same key must answer the same payment"

    # 2. A decline, handled by its code.
    try:
        call("POST", "/v1/payments", {"amount": 500, "payment_method": {"token": "tok_insufficient_funds"}, "return_url": RETURN_URL},
             key=str(uuid.uuid4()))
        raise AssertionError("expected a decline")
    except PaynormError as e:
        if e.type == "card_error" and e.code == "insufficient_funds":
            print("declined: insufficient_funds -> ask the customer for another card")
        else:
            raise

    # 3. Capture.
    cap = call("POST", f"/v1/payments/{pay['id']}/capture", key=str(uuid.uuid4()))
    print(f"captured {cap['id']}: {cap['status']}")
    assert cap["status"] == "captured", cap

    # 4. Webhook signature: a real delivery when a receiver is configured.
    if port:
        deadline = time.time() + 20
        while time.time() < deadline:
            ev = events.get(timeout=max(0.1, deadline - time.time()))
            if ev["type"] == "payment.captured" and ev["data"]["payment"]["id"] == pay["id"]:
                print(f"webhook verified: {ev['type']} {ev['id']} verified={ev['verified']}")
                break
        else:
            raise AssertionError("no payment.captured event")
    else:
        body = b'{"id":"evt_x","type":"payment.captured"}'
        ts = str(int(time.time()))
        sig = "v1=" + hmac.new(b"whsec_example_secret", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        verify(b"whsec_example_secret", {"Paynorm-Timestamp": ts, "Paynorm-Signature": sig}, body)
        print("webhook signature check: ok (local example)")
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except (PaynormError, AssertionError) as e:
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
