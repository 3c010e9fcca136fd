package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// The health subcommand is the container HEALTHCHECK: distroless images have
// no curl or wget, so the binary checks itself.
func init() {
	fs := flag.NewFlagSet("health", flag.ExitOnError)
	fs.String("url", "http://127.0.0.1:8080/v1/health", "paynorm's health endpoint")
	fs.Duration("timeout", 3*time.Second, "give up after this long")
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "health",
		Usage: "[--url <url>] [--timeout <duration>]",
		Short: "Exits 0 when paynorm's health endpoint answers 200 (container HEALTHCHECK)",
		Long: `
Calls paynorm's GET /v1/health (default http://127.0.0.1:8080/v1/health) and
exits 0 on HTTP 200, 1 otherwise. The health check writes and reads back a
key in the store: a store that cannot take writes (a full disk, a lost Redis)
answers 503 and fails the check, since every payment would fail too. A
degraded account (open breaker) still answers 200: the process is alive and
serving; the body says which account is degraded. No app key is needed: with
client keys configured, the answer without one is the status alone.`,
		Flags: fs,
		Func:  healthCommand,
	})
}

func healthCommand(fl caddycmd.Flags) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fl.Duration("timeout"))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fl.String("url"), nil)
	if err != nil {
		return 1, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 1, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return 1, fmt.Errorf("health: HTTP %d: %s", resp.StatusCode, body)
	}
	_, _ = os.Stdout.Write(body)
	return 0, nil
}
