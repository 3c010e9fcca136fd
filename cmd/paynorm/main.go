// Command paynorm is Caddy with the standard modules and paynorm's own:
// `go run ./cmd/paynorm run` serves the Caddyfile in the working directory.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/paynorm/paynorm/caddymodule"
)

func main() {
	setDefaultMemoryLimit()
	caddycmd.Main()
}
