// Package paynorm registers paynorm's Caddy modules. It exists so that
// `xcaddy build --with github.com/paynorm/paynorm` (which imports the module
// root) builds a stock Caddy with paynorm in it; ./cmd/paynorm is the same
// build without xcaddy.
package paynorm

import _ "github.com/paynorm/paynorm/caddymodule"
