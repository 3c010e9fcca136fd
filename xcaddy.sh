#!/usr/bin/env bash
# Builds paynorm: with xcaddy when it is installed (a stock Caddy plus the
# paynorm modules from this checkout), else with the plain Go build of
# ./cmd/paynorm, which holds the same modules (standard + paynorm).
#
#   ./xcaddy.sh            build ./paynorm
#   ./xcaddy.sh run [...]  build, then serve the default Caddyfile (extra
#                          arguments go to `paynorm run`)
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"

out="${PAYNORM_OUTPUT:-./paynorm}"
if command -v xcaddy >/dev/null 2>&1; then
  # Pin the Caddy version of go.mod so both builds hold the same modules.
  caddy_version="$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)"
  echo "building with xcaddy (caddy $caddy_version)" >&2
  xcaddy build "$caddy_version" --output "$out" --with github.com/paynorm/paynorm=.
else
  echo "xcaddy not found; building with go build ./cmd/paynorm" >&2
  go build -o "$out" ./cmd/paynorm
fi

if [[ "${1:-}" == "run" ]]; then
  shift
  exec "$out" run --config Caddyfile --adapter caddyfile "$@"
fi
