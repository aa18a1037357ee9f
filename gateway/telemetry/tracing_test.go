package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTracingIsOffUnlessAsked(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
	} {
		got, err := TracingEnabled(func(k string) string { return c.env[k] })
		if err != nil || got != c.want {
			t.Errorf("%v: enabled %v (%v), want %v", c.env, got, err, c.want)
		}
	}
	if _, err := TracingEnabled(func(k string) string { return map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}[k] }); err == nil {
		t.Error("an exporter Signpost lacks was accepted silently")
	}
}

func TestMetricsArePushedOnlyWhenAsked(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318/v1/metrics"}, true},
		{map[string]string{"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false},
	} {
		got, err := MetricsEnabled(func(k string) string { return c.env[k] })
		if err != nil || got != c.want {
			t.Errorf("%v: pushed %v (%v), want %v", c.env, got, err, c.want)
		}
	}
	if _, err := New(func(k string) string {
		return map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}[k]
	}); err == nil {
		t.Error("an OTLP protocol Signpost lacks was accepted silently")
	}
}

func TestSpansLeaveWithoutPathsOrStatements(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tp := NewTracerProvider(sdktrace.NewSimpleSpanProcessor(RedactingExporter(mem)), nil)
	ctx, root := tp.Tracer("test").Start(context.Background(), "GET /fhir/Patient/:id", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("url.path", "/fhir/Patient/synthetic-1"), attribute.String("http.route", "/fhir/Patient/:id")))
	_, child := tp.Tracer("test").Start(ctx, "evalsha", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.statement", "evalsha ... 9434765919"), attribute.String("db.system", "redis")))
	child.End()
	root.End()
	// A root that is not work (a worker polling Redis) is not recorded.
	_, poll := tp.Tracer("test").Start(context.Background(), "xreadgroup", trace.WithSpanKind(trace.SpanKindClient))
	poll.End()

	spans := mem.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans exported, want the request and its Redis call", len(spans))
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if kv.Key == "url.path" || kv.Key == "db.statement" {
				t.Errorf("span %s exported %s", s.Name, kv.Key)
			}
		}
	}
	if got := spans[1].Attributes; len(got) != 1 || got[0].Key != "http.route" {
		t.Errorf("the request span kept %v, want http.route alone", got)
	}
}
