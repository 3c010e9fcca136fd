#!/usr/bin/env bash
# The test command of the README: vet, staticcheck, unit and end-to-end
# tests with the race detector, and a short fuzz run of every parser.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"

test -z "$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
if ! command -v staticcheck >/dev/null 2>&1; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 || echo "staticcheck unavailable; skipped"
fi
if command -v staticcheck >/dev/null 2>&1; then staticcheck ./...; fi

# The generated Go client must be what openapi.yaml generates today.
gen="$(mktemp)"
go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -generate types,client -package paynormclient -o "$gen" openapi.yaml
diff -q "$gen" client/paynormclient/client.gen.go >/dev/null || { echo "client/paynormclient is stale: run go generate ./client/..."; rm -f "$gen"; exit 1; }
rm -f "$gen"

go test -race -count=1 -timeout 20m ./...

# Short fuzz runs (seed corpora live in testdata/fuzz of each package).
FUZZTIME="${FUZZTIME:-10s}"
go test ./normalize   -run '^$' -fuzz '^FuzzDecodeCreatePayment$' -fuzztime "$FUZZTIME"
go test ./providers/gmo -run '^$' -fuzz '^FuzzParseResponse$'      -fuzztime "$FUZZTIME"
go test ./providers/jpayment -run '^$' -fuzz '^FuzzParseAnswer$'   -fuzztime "$FUZZTIME"
go test ./providers/jpayment -run '^$' -fuzz '^FuzzParseKickback$' -fuzztime "$FUZZTIME"
go test ./providers/gmo -run '^$' -fuzz '^FuzzParseCards$'         -fuzztime "$FUZZTIME"
go test ./providers/gmoivr -run '^$' -fuzz '^FuzzSearchResponse$'  -fuzztime "$FUZZTIME"
go test ./normalize   -run '^$' -fuzz '^FuzzDecodeAddCard$'        -fuzztime "$FUZZTIME"
go test ./normalize   -run '^$' -fuzz '^FuzzDecodePhone$'          -fuzztime "$FUZZTIME"
go test ./caddymodule -run '^$' -fuzz '^FuzzCanonicalJSON$'        -fuzztime "$FUZZTIME"
go test ./providers/gmo -run '^$' -fuzz '^FuzzAppendForm$'         -fuzztime "$FUZZTIME"
go test ./providers/gmo -run '^$' -fuzz '^FuzzParseNotification$'  -fuzztime "$FUZZTIME"
go test ./store/journal -run '^$' -fuzz '^FuzzJournalReplay$'    -fuzztime "$FUZZTIME"
go test ./store/journal -run '^$' -fuzz '^FuzzEntryCodec$'       -fuzztime "$FUZZTIME"
