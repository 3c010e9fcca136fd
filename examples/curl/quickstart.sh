#!/usr/bin/env bash
# paynorm from the shell with curl (and openssl for the webhook signature).
# Runs against `go run ./cmd/paynorm run`: creates a payment with an
# Idempotency-Key, retries a 503/429 after Retry-After with the same key,
# handles a decline by error.code, captures, verifies a webhook signature.
#
#   PAYNORM_URL=http://localhost:8080 examples/curl/quickstart.sh
#
# Optional: PAYNORM_SANDBOX_URL makes the sandbox fail once so the retry runs.
set -euo pipefail
BASE="${PAYNORM_URL:-http://localhost:8080}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

# field NAME: the first "NAME":"value" of the last answer (the top-level one
# for the fields read here: id, status, and error.code before provider_codes).
field() { grep -o "\"$1\":\"[^\"]*\"" "$tmp/body" | head -n1 | cut -d'"' -f4; }

# call METHOD PATH BODY KEY: retries 429/503 after Retry-After with the same
# key unless the answer was replayed; sets $status, the body in $tmp/body.
call() {
  local method=$1 path=$2 body=$3 key=$4 attempt
  for attempt in 1 2 3 4 5; do
    status=$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method" "$BASE$path" \
      -H 'Content-Type: application/json' -H "Idempotency-Key: $key" ${body:+-d "$body"})
    if [[ $status == 429 || $status == 503 ]] && ! grep -qi '^Idempotent-Replayed: true' "$tmp/headers" && ((attempt < 5)); then
      wait=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$tmp/headers"); wait=${wait:-1}
      echo "  $status $(field code): retrying in ${wait}s with the same key"
      sleep "$wait"; continue
    fi
    return 0
  done
}

if [[ -n ${PAYNORM_SANDBOX_URL:-} ]]; then
  curl -s -X POST "$PAYNORM_SANDBOX_URL/sandbox/faults" -d '{"api":"EntryTran","kind":"5xx","count":1}' >/dev/null
fi

# 1. Create with an Idempotency-Key.
key="sh-$(date +%s%N)"
call POST /v1/payments '{"amount":1000,"tax":100,"capture":"manual","payment_method":{"token":"tok_visa"},"return_url":"https://shop.example.jp/checkout/return"}' "$key"
id=$(field id)
[[ $status == 200 && $(field status) == authorized ]] || { echo "FAILED: create $status $(cat "$tmp/body")" >&2; exit 1; }
echo "created $id: authorized"

# 2. A decline, handled by its code (never by the message text).
call POST /v1/payments '{"amount":500,"payment_method":{"token":"tok_insufficient_funds"},"return_url":"https://shop.example.jp/checkout/return"}' "sh-decline-$(date +%s%N)"
if [[ $status == 402 && $(field code) == insufficient_funds ]]; then
  echo "declined: insufficient_funds -> ask the customer for another card"
else
  echo "FAILED: expected a decline, got $status $(cat "$tmp/body")" >&2; exit 1
fi

# 3. Capture.
call POST "/v1/payments/$id/capture" '' "sh-capture-$(date +%s%N)"
[[ $status == 200 && $(field status) == captured ]] || { echo "FAILED: capture $status $(cat "$tmp/body")" >&2; exit 1; }
echo "captured $id: captured"

# 4. Verify a webhook: Paynorm-Signature = v1=hex(HMAC-SHA256(secret, "<timestamp>.<raw body>")).
#    A receiver computes it over the raw body and compares in constant time;
#    here, a delivery recorded from paynorm (fixed timestamp and body).
verify() { # secret timestamp raw_body signature
  local want
  want="v1=$(printf '%s.%s' "$2" "$3" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)"
  [[ $want == "$4" ]]
}
body='{"id":"evt_x","type":"payment.captured"}'
sig=v1=e3e912ccce0b836ad379f541f455e32a2c7cbeedff86fab80d754ce4e9eb1327
verify whsec_example_secret 1764547200 "$body" "$sig" || { echo "FAILED: signature" >&2; exit 1; }
if verify whsec_example_secret 1764547200 "${body/captured/refunded}" "$sig"; then
  echo "FAILED: a tampered body verified" >&2; exit 1
fi
echo "webhook signature check: ok (and a tampered body is refused)"
echo OK
