package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/sony/gobreaker"
	"go.uber.org/zap"

	"github.com/paynorm/paynorm/egress"
	"github.com/paynorm/paynorm/resilience"
)

// pool keeps per-account state alive across config reloads: a reload with
// the same limits keeps the breaker state, the limiter's tokens and the
// warm keep-alive connections.
var pool = caddy.NewUsagePool()

// defaultMaxConns bounds connections per account: far above what a provider
// serves one merchant in parallel (GMO answers E92 well before), low enough
// that a burst of thousands of payments does not open thousands of sockets.
const defaultMaxConns = 512

// accountState is what one account shares across reloads.
type accountState struct {
	guard     *resilience.Guard
	transport *http.Transport
}

// Destruct closes idle connections when the last config using it is gone.
func (s *accountState) Destruct() error {
	s.transport.CloseIdleConnections()
	return nil
}

// stateKey changes whenever a setting that shapes the state changes, so a
// reload with new limits gets fresh state and old configs keep theirs.
func stateKey(a *Account) string {
	b, _ := json.Marshal([]any{a.Name, a.Type, a.Rate, a.Burst, a.MaxWait, a.BreakerFailures, a.BreakerOpen, a.SourceAddress, a.ProxyURL, a.MaxConns})
	sum := sha256.Sum256(b)
	return "paynorm/account/" + a.Name + "/" + hex.EncodeToString(sum[:8])
}

func loadAccountState(a *Account, m *metrics, log *zap.Logger) (*accountState, string, error) {
	key := stateKey(a)
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		maxConns := a.MaxConns
		switch {
		case maxConns == 0:
			maxConns = defaultMaxConns
		case maxConns < 0:
			maxConns = 0 // unlimited
		}
		t, err := egress.NewTransport(egress.Options{SourceAddress: a.SourceAddress, ProxyURL: a.ProxyURL, MaxConnsPerHost: maxConns})
		if err != nil {
			return nil, err
		}
		maxWait := time.Duration(a.MaxWait)
		if maxWait == 0 {
			maxWait = defaultMaxWait
		}
		name := a.Name
		g := resilience.New(resilience.Settings{
			Name: name, Rate: a.Rate, Burst: a.Burst, MaxWait: maxWait,
			FailureThreshold: a.BreakerFailures, OpenTimeout: time.Duration(a.BreakerOpen),
			OnStateChange: func(_ string, from, to gobreaker.State) {
				m.breaker.WithLabelValues(name).Set(float64(to))
				log.Warn("circuit breaker state change", zap.String("account", name),
					zap.String("from", from.String()), zap.String("to", to.String()))
			},
		})
		m.breaker.WithLabelValues(name).Set(g.StateValue())
		return &accountState{guard: g, transport: t}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*accountState), key, nil
}
