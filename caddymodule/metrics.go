package caddymodule

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paynorm/paynorm/providers"
)

// metrics are created once per process and registered on every config's
// registry, so counters keep counting across config reloads.
type metrics struct {
	calls       *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	breaker     *prometheus.GaugeVec
	rateLimited *prometheus.CounterVec
	requests    *prometheus.CounterVec
	kickbacks   *prometheus.CounterVec
	deadLetters prometheus.Counter
}

var (
	metricsOnce sync.Once
	pm          *metrics
)

func sharedMetrics() *metrics {
	metricsOnce.Do(func() {
		pm = &metrics{
			calls: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "paynorm", Name: "provider_calls_total",
				Help: "Provider API calls by account, API and outcome.",
			}, []string{"account", "api", "outcome"}),
			latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: "paynorm", Name: "provider_call_duration_seconds",
				Help:    "Provider API call latency.",
				Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
			}, []string{"account", "api"}),
			breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "paynorm", Name: "breaker_state",
				Help: "Circuit breaker state per account: 0 closed, 1 half-open, 2 open.",
			}, []string{"account"}),
			rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "paynorm", Name: "rate_limited_total",
				Help: "Calls rejected by paynorm's own rate limiter or open breaker.",
			}, []string{"account", "reason"}),
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "paynorm", Name: "requests_total",
				Help: "Unified API requests by route and HTTP status.",
			}, []string{"route", "status"}),
			kickbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "paynorm", Name: "kickbacks_total",
				Help: "j-payment kickbacks by account and verdict (settled, agrees, ignored, recurring).",
			}, []string{"account", "verdict"}),
			deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: "paynorm", Name: "webhook_dead_letters_total",
				Help: "Webhook events given up on after notify_max_attempts or notify_max_age (admin API: GET /paynorm/dead_letters).",
			}),
		}
	})
	return pm
}

// register adds the collectors to reg, tolerating ones already there.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.latency, m.breaker, m.rateLimited, m.requests, m.kickbacks, m.deadLetters} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

func (m *metrics) observe(ci providers.CallInfo) {
	m.calls.WithLabelValues(ci.Account, ci.API, ci.Outcome).Inc()
	if ci.Outcome != providers.OutcomeRejected {
		m.latency.WithLabelValues(ci.Account, ci.API).Observe(ci.Duration.Seconds())
	} else {
		reason := "breaker"
		if ci.Code == "rate_limited" {
			reason = "limiter"
		}
		m.rateLimited.WithLabelValues(ci.Account, reason).Inc()
	}
}
