package telemetry

import (
	"context"
	"net"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// The exporter is chosen by the standard variables: console is accepted
// (spans to standard output, to try things out), and a bad OTLP protocol
// stops start with the variable named, before any exporter is built.
func TestExporterSettingsCheckedAtStart(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true},
		// The signal's own protocol wins over the general one.
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, true},
		// Off, the protocol is not read.
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, false},
	} {
		got, err := TracingEnabled(func(k string) string { return c.env[k] })
		if err != nil || got != c.want {
			t.Errorf("%v: enabled %v (%v), want %v", c.env, got, err, c.want)
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", name: "http/json"}
		_, err := TracingEnabled(func(k string) string { return env[k] })
		if err == nil || err.Error() != name+`="http/json": Signpost sends OTLP as http/protobuf or grpc` {
			t.Errorf("%s=http/json: %v, want it refused by name", name, err)
		}
	}
	if on, err := MetricsEnabled(func(k string) string { return map[string]string{"OTEL_METRICS_EXPORTER": "console"}[k] }); err != nil || !on {
		t.Errorf("OTEL_METRICS_EXPORTER=console: pushed %v (%v)", on, err)
	}
}

// grpcCollector is an OTLP/gRPC receiver keeping every span sent.
type grpcCollector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *grpcCollector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// OTEL_EXPORTER_OTLP_PROTOCOL=grpc sends spans by OTLP/gRPC (the compose
// stack's collector listens so), still without paths.
func TestTracesSentByGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := &grpcCollector{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, collector)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	// The exporter reads the standard variables itself.
	for k, v := range map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + lis.Addr().String(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_INSECURE": "true"} {
		t.Setenv(k, v)
	}
	stop, err := StartTracing(context.Background(), func(k string) string {
		return map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + lis.Addr().String(), "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}[k]
	}, "signpost", "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "GET /fhir/Patient/:id", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("url.path", "/fhir/Patient/synthetic-1"), attribute.String("http.route", "/fhir/Patient/:id")))
	span.End()
	if err := stop(context.Background()); err != nil { // flushes the span
		t.Fatal(err)
	}
	collector.mu.Lock()
	defer collector.mu.Unlock()
	if len(collector.spans) != 1 || collector.spans[0].Name != "GET /fhir/Patient/:id" {
		t.Fatalf("the collector got %v, want the request span", collector.spans)
	}
	for _, kv := range collector.spans[0].Attributes {
		if kv.Key == "url.path" {
			t.Error("the span kept url.path")
		}
	}
}
