package caddymodule

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paynorm/paynorm/providers"
	"github.com/paynorm/paynorm/store/journal"
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
	// journalSyncs and journalGathered read the open journals' counters.
	journalSyncs, journalGathered prometheus.CounterFunc
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
			journalSyncs: prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: "paynorm", Name: "journal_fdatasyncs_total",
				Help: "Groups of changes the journal store wrote with one fdatasync each.",
			}, func() float64 { return journalStat(func(s journal.Stats) int64 { return s.Flushes }) }),
			journalGathered: prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: "paynorm", Name: "journal_gathered_total",
				Help: "Journal groups held back to fill (up to 6 ms) because paynorm was CPU-bound.",
			}, func() float64 { return journalStat(func(s journal.Stats) int64 { return s.Gathered }) }),
		}
	})
	return pm
}

// register adds the collectors to reg, tolerating ones already there.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.latency, m.breaker, m.rateLimited, m.requests, m.kickbacks, m.deadLetters,
		m.journalSyncs, m.journalGathered} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// journalStat sums one counter over the journals open in this process.
func journalStat(of func(journal.Stats) int64) float64 {
	var n int64
	openStores.Range(func(_, v any) bool {
		if j, ok := v.(*storeState).store.(*journal.Store); ok {
			n += of(j.Stats())
		}
		return true
	})
	return float64(n)
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
