package telemetry

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// TracingEnabled reports whether the standard OpenTelemetry environment
// asks for traces: an OTLP endpoint is set, or OTEL_TRACES_EXPORTER is
// otlp or console. Off by default; OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none turn it off whatever else is set.
func TracingEnabled(getenv func(string) string) (bool, error) {
	return exportEnabled(getenv, "TRACES")
}

// exporters are the values of OTEL_<signal>_EXPORTER that Signpost exports
// by (autoexport builds them): otlp, and console (standard output) to try
// things out.
var exporters = []string{"otlp", "console"}

// otlpProtocols are the OTLP protocols autoexport sends by: http/protobuf,
// the specification's default, and grpc.
var otlpProtocols = []string{"http/protobuf", "grpc"}

// exportEnabled reports whether one signal (TRACES, METRICS) is exported:
// OTEL_<signal>_EXPORTER is one of exporters or, unset, an OTLP endpoint
// (general or the signal's own) is set. OTEL_SDK_DISABLED=true and the
// values in off (none, and for metrics prometheus, which Signpost serves
// itself on metrics_listen) turn it off.
//
// The decision is Signpost's, not autoexport's: autoexport exports by OTLP
// (to localhost) when nothing is set, where Signpost exports nothing. The
// settings are checked here, read through getenv, so a bad one stops
// Signpost at start with the variable named.
func exportEnabled(getenv func(string) string, signal string, off ...string) (bool, error) {
	if getenv("OTEL_SDK_DISABLED") == "true" {
		return false, nil
	}
	exporter := "OTEL_" + signal + "_EXPORTER"
	v := getenv(exporter)
	switch {
	case v == "none" || slices.Contains(off, v):
		return false, nil
	case v == "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") == "" {
			return false, nil
		}
	case !slices.Contains(exporters, v):
		return false, fmt.Errorf("%s=%q: Signpost exports by %s (or none)", exporter, v, strings.Join(exporters, ", "))
	}
	if v == "" || v == "otlp" {
		// The signal's own protocol wins over the general one, as in autoexport.
		for _, name := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
			if p := getenv(name); p != "" {
				if !slices.Contains(otlpProtocols, p) {
					return false, fmt.Errorf("%s=%q: Signpost sends OTLP as http/protobuf or grpc", name, p)
				}
				break
			}
		}
	}
	return true, nil
}

// StartTracing installs the W3C trace-context propagator and, when the
// environment asks for it, a tracer provider exporting spans by the
// exporter autoexport builds from the standard variables
// (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_* for endpoint, headers,
// protocol and timeouts), the service from OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES. The returned function flushes and stops it.
// Without it the request and Redis instrumentation is not installed
// either, so a caller's traceparent goes no further than the request.
func StartTracing(ctx context.Context, getenv func(string) string, service, version string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	on, err := TracingEnabled(getenv)
	if err != nil || !on {
		return func(context.Context) error { return nil }, err
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceVersion(version)))
	if err != nil {
		return nil, err
	}
	if getenv("OTEL_SERVICE_NAME") == "" && !strings.Contains(getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
		// Merge's second resource wins: Signpost's name over the SDK's
		// unknown_service default.
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(service)))
	}
	tp := NewTracerProvider(sdktrace.NewBatchSpanProcessor(RedactingExporter(exp)), res)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// NewTracerProvider is Signpost's tracer provider around a span processor.
// A trace begins only at work: a request served or a queued job handled.
// The workers' polling of Redis would otherwise start a trace of its own
// every second; within a trace, the caller's sampling decision holds.
func NewTracerProvider(p sdktrace.SpanProcessor, res *resource.Resource) *sdktrace.TracerProvider {
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSpanProcessor(p),
		sdktrace.WithSampler(sdktrace.ParentBased(workOnly{})),
	}
	if res != nil {
		opts = append(opts, sdktrace.WithResource(res))
	}
	return sdktrace.NewTracerProvider(opts...)
}

// workOnly samples root spans that are work: server and consumer spans.
type workOnly struct{}

func (workOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	decision := sdktrace.Drop
	if p.Kind == trace.SpanKindServer || p.Kind == trace.SpanKindConsumer {
		decision = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: decision, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (workOnly) Description() string { return "SignpostWorkOnly" }

// redactedKeys are attributes the instrumentations record that can carry
// patient data: a path holds a Patient id, a query an NHS number, a Redis
// statement a whole resource. They are removed before any span leaves the
// process, whatever instrumentation recorded them; the route template
// (http.route) stays.
var redactedKeys = []attribute.Key{
	"url.full", "url.path", "url.query", "http.url", "http.target",
	"db.statement", "db.query.text",
}

// RedactingExporter removes redactedKeys from every span it exports.
func RedactingExporter(next sdktrace.SpanExporter) sdktrace.SpanExporter {
	return redactingExporter{next}
}

type redactingExporter struct{ sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = redactedSpan{s}
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

type redactedSpan struct{ sdktrace.ReadOnlySpan }

func (s redactedSpan) Attributes() []attribute.KeyValue {
	attrs := s.ReadOnlySpan.Attributes()
	return slices.DeleteFunc(slices.Clone(attrs), func(kv attribute.KeyValue) bool {
		return slices.Contains(redactedKeys, kv.Key)
	})
}

// TraceFields is ctx's trace context (traceparent, tracestate) as fields
// for a queued job, so the worker that handles the job continues the
// trace; empty without a span.
func TraceFields(ctx context.Context) map[string]string {
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	return carrier
}
