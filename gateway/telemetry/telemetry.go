// Package telemetry is Signpost's OpenTelemetry: metrics exported for
// Prometheus at /metrics on metrics_listen (and by OTLP when asked), traces by OTLP when
// asked, and trace ids in logs. Every method is safe on a nil
// *Metrics, so code built without metrics (tests, operator commands) needs
// no special case. Metrics carry routes, statuses, categories and outcomes,
// never anything about a patient.
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
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
	barsAnswers  metric.Int64Counter
	attempts     metric.Int64Histogram
	lag          metric.Float64Histogram
}

// New makes the instruments and their Prometheus registry, and, when the
// standard OpenTelemetry environment asks for it (see MetricsEnabled), the
// exporter autoexport builds from it (OTLP, or console) pushing the same
// instruments every OTEL_METRIC_EXPORT_INTERVAL.
func New(getenv func(string) string) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(exp)}
	if on, err := MetricsEnabled(getenv); err != nil {
		return nil, err
	} else if on {
		// autoexport's reader pushes every OTEL_METRIC_EXPORT_INTERVAL; the
		// exporters connect lazily.
		push, err := autoexport.NewMetricReader(context.Background())
		if err != nil {
			return nil, fmt.Errorf("metric exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(push))
	}
	provider := sdkmetric.NewMeterProvider(opts...)
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
	if m.barsAnswers, err = meter.Int64Counter("signpost.bars.responses", metric.WithDescription("BaRS servicerequest-response messages to GP systems, by outcome (sent, retry, dead-letter)")); err != nil {
		return nil, err
	}
	if m.attempts, err = meter.Int64Histogram("signpost.delivery.attempts", metric.WithDescription("Attempts a delivery took, by how it ended (delivered, dead-letter)"),
		metric.WithExplicitBucketBoundaries(1, 2, 3, 4, 5, 6, 8, 10)); err != nil {
		return nil, err
	}
	if m.lag, err = meter.Float64Histogram("signpost.notification.lag", metric.WithUnit("s"),
		metric.WithDescription("Time from a Task's change to the GP side holding it, by channel (write-back, rest-hook)"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)); err != nil {
		return nil, err
	}
	return m, nil
}

// MetricsEnabled reports whether metrics are also pushed: an OTLP endpoint
// is set, or OTEL_METRICS_EXPORTER is otlp (or console). Prometheus reads
// them from /metrics on metrics_listen, so OTEL_METRICS_EXPORTER=prometheus
// pushes nothing (autoexport would open a second Prometheus server).
func MetricsEnabled(getenv func(string) string) (bool, error) {
	return exportEnabled(getenv, "METRICS", "prometheus")
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

// BarsResponse counts one attempt to answer a BaRS sender: sent, retry or
// dead-letter. They share the notify queue with write-back, whose jobs are
// not counted by outcome, so they have a count of their own.
func (m *Metrics) BarsResponse(ctx context.Context, outcome string) {
	if m == nil {
		return
	}
	m.barsAnswers.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
}

// DeliveryAttempts records how many attempts a delivery took, once it
// ended: delivered or dead-letter.
func (m *Metrics) DeliveryAttempts(ctx context.Context, ended string, attempts int) {
	if m == nil {
		return
	}
	m.attempts.Record(ctx, int64(attempts), metric.WithAttributes(attribute.String("outcome", ended)))
}

// NotificationLag records how long after a Task changed the GP side held
// the change, by channel: write-back (the GP record) or rest-hook (a
// subscription).
func (m *Metrics) NotificationLag(ctx context.Context, channel string, since time.Time) {
	if m == nil || since.IsZero() {
		return
	}
	m.lag.Record(ctx, time.Since(since).Seconds(), metric.WithAttributes(attribute.String("channel", channel)))
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

// ObserveAudit registers a gauge of the records the audit stream holds,
// read on each scrape: its growth, and that its trimming keeps up.
func (m *Metrics) ObserveAudit(read func(ctx context.Context) (int64, error)) error {
	if m == nil {
		return nil
	}
	entries, err := m.meter.Int64ObservableGauge("signpost.audit.entries", metric.WithDescription("Records the audit stream holds (trimmed to about audit.max_entries)"))
	if err != nil {
		return err
	}
	_, err = m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		n, err := read(ctx)
		if err != nil {
			return nil // Redis down: no reading this time (readyz says so)
		}
		o.ObserveInt64(entries, n)
		return nil
	}, entries)
	return err
}

// ObserveRedisMemory reports Redis's memory at each collection: what it
// uses and its limit (maxmemory, 0 for none), so an operator sees it near
// before Redis refuses writes.
func (m *Metrics) ObserveRedisMemory(read func(ctx context.Context) (used, max int64, err error)) error {
	if m == nil {
		return nil
	}
	used, err := m.meter.Int64ObservableGauge("signpost.redis.memory.used", metric.WithUnit("By"),
		metric.WithDescription("Memory Redis uses (INFO used_memory)"))
	if err != nil {
		return err
	}
	limit, err := m.meter.Int64ObservableGauge("signpost.redis.memory.limit", metric.WithUnit("By"),
		metric.WithDescription("Redis's maxmemory; 0 when none is set"))
	if err != nil {
		return err
	}
	_, err = m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		u, l, err := read(ctx)
		if err != nil {
			return nil // Redis down: no reading this time (readyz says so)
		}
		o.ObserveInt64(used, u)
		o.ObserveInt64(limit, l)
		return nil
	}, used, limit)
	return err
}

// Shutdown flushes and stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return m.provider.Shutdown(ctx)
}
