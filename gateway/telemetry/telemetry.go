// Package telemetry is Signpost's metrics: OpenTelemetry instruments,
// exported for Prometheus at /metrics. Every method is safe on a nil
// *Metrics, so code built without metrics (tests, operator commands) needs
// no special case. Metrics carry routes, statuses, categories and outcomes,
// never anything about a patient.
package telemetry

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics holds Signpost's instruments.
type Metrics struct {
	registry     *prometheus.Registry
	provider     *sdkmetric.MeterProvider
	meter        metric.Meter
	httpDuration metric.Float64Histogram
	referrals    metric.Int64Counter
	outcomes     metric.Int64Counter
}

// New makes the instruments and their Prometheus registry.
func New() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	meter := provider.Meter("signpost")
	m := &Metrics{registry: reg, provider: provider, meter: meter}
	if m.httpDuration, err = meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to answer an HTTP request"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)); err != nil {
		return nil, err
	}
	if m.referrals, err = meter.Int64Counter("signpost.referrals", metric.WithDescription("Referrals received, by result (created, repeat, refused), category and reason")); err != nil {
		return nil, err
	}
	if m.outcomes, err = meter.Int64Counter("signpost.jobs", metric.WithDescription("Queue jobs handled, by queue and outcome (delivered, retry, dead-letter, ...)")); err != nil {
		return nil, err
	}
	return m, nil
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// HTTPRequest records one answered request, by route template (never the
// path: it can hold identifiers).
func (m *Metrics) HTTPRequest(ctx context.Context, route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpDuration.Record(ctx, d.Seconds(), metric.WithAttributes(
		attribute.String("http.route", route), attribute.String("http.request.method", method), attribute.Int("http.response.status_code", status)))
}

// Referral counts a referral: result is created, repeat or refused; the
// category for accepted referrals, the reason (an error kind) for refused.
func (m *Metrics) Referral(ctx context.Context, result, category, reason string) {
	if m == nil {
		return
	}
	m.referrals.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result), attribute.String("category", category), attribute.String("reason", reason)))
}

// Job counts a handled job of a queue by its outcome.
func (m *Metrics) Job(ctx context.Context, queue, outcome string) {
	if m == nil {
		return
	}
	m.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("queue", queue), attribute.String("outcome", outcome)))
}

// QueueStats is a queue's state: jobs waiting, put off, held by a worker,
// and how long the oldest has waited.
type QueueStats struct {
	Queue                     string
	Waiting, Delayed, Pending int64
	Oldest                    time.Duration
}

// ObserveQueues registers gauges read from the queues on each scrape.
func (m *Metrics) ObserveQueues(read func(ctx context.Context) ([]QueueStats, error)) error {
	if m == nil {
		return nil
	}
	waiting, err := m.meter.Int64ObservableGauge("signpost.queue.depth", metric.WithDescription("Jobs in a queue, by state (waiting, delayed, pending)"))
	if err != nil {
		return err
	}
	oldest, err := m.meter.Float64ObservableGauge("signpost.queue.oldest_age", metric.WithUnit("s"), metric.WithDescription("Age of the oldest job waiting in a queue"))
	if err != nil {
		return err
	}
	_, err = m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		stats, err := read(ctx)
		if err != nil {
			return nil // Redis down: no reading this time (readyz says so)
		}
		for _, s := range stats {
			q := attribute.String("queue", s.Queue)
			o.ObserveInt64(waiting, s.Waiting, metric.WithAttributes(q, attribute.String("state", "waiting")))
			o.ObserveInt64(waiting, s.Delayed, metric.WithAttributes(q, attribute.String("state", "delayed")))
			o.ObserveInt64(waiting, s.Pending, metric.WithAttributes(q, attribute.String("state", "pending")))
			o.ObserveFloat64(oldest, s.Oldest.Seconds(), metric.WithAttributes(q))
		}
		return nil
	}, waiting, oldest)
	return err
}

// Shutdown flushes and stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return m.provider.Shutdown(ctx)
}
