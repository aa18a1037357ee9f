package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// otlpCollector is an OTLP/HTTP receiver: it keeps every span sent.
type otlpCollector struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool // service.name of every resource
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/v1/metrics" { // pushed too; not what this test reads
		w.Header().Set("Content-Type", "application/x-protobuf")
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.services[kv.Value.GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// TestOneTraceFromReferralToProvider follows a referral sent with a GP's
// traceparent: the API's server span, the Redis calls, the delivery
// worker's consumer span (its context carried in the stream entry), the
// webhook call, the subscription fan-out (the GP system has subscribed)
// and the write-back to the GP record are one trace, exported by OTLP, and the provider and the GP
// record receive the trace context. No span carries the patient or a URL path.
func TestOneTraceFromReferralToProvider(t *testing.T) {
	collector := &otlpCollector{services: map[string]bool{}}
	otlp := httptest.NewServer(collector)
	t.Cleanup(otlp.Close)
	// The OTLP exporter reads the standard variables itself.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")

	received := make(chan string, 1)
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case received <- r.Header.Get("traceparent"):
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(stub.Close)
	// The GP record: its copy of the Task is written back.
	wroteBack := make(chan string, 1)
	gp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fhir/Task") {
			select {
			case wroteBack <- r.Header.Get("traceparent"):
			default:
			}
		}
		w.Header().Set("Location", "/fhir/Task/gp-1/_history/1")
		w.Header().Set("ETag", `W/"1"`)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(gp.Close)
	r := redistest.Start(t)
	// Its subscriptions go to its record server too, on loopback: an
	// origin the operator registers for it.
	withGP := strings.Replace(testConfig, "value: \"A81001\" }\n", "value: \"A81001\" }\n    notify: { fhir_base: \""+gp.URL+"/fhir\" }\n"+
		"    subscription_origins: [\""+gp.URL+"\"]\n", 1)
	cfg := writeFile(t, "signpost.yaml", strings.Replace(withGP, "delivery: { kind: portal }\n  - id: link",
		"delivery: { kind: webhook, url: \""+stub.URL+"\", secret: \"whsec_c3ludGhldGljLXNlY3JldC1mb3ItdGhlLXRyYWNlLXRlc3Q=\" }\n  - id: link", 1)+
		"outbound_allow: [\"127.0.0.0/8\"]\nmetrics_listen: \"127.0.0.1:0\"\n")
	srv := startSignpost(t, []string{"serve", "-config", cfg}, env(map[string]string{
		"SIGNPOST_REDIS_URL": r.URL(), "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.URL}))

	// The GP system subscribes to its Tasks (to its own record server), so
	// the referral's Task changes have subscribers to be fanned out to: a
	// client with none queues no subscription job at all.
	sub := `{"resourceType":"Subscription","status":"requested","reason":"closed loop","criteria":"http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task",` +
		`"channel":{"type":"rest-hook","endpoint":"` + gp.URL + `/hook","payload":"application/fhir+json"}}`
	subRes, err := http.Post(srv.base+"/fhir/Subscription", "application/fhir+json", strings.NewReader(sub))
	must(t, err)
	subRes.Body.Close()
	if subRes.StatusCode != http.StatusCreated {
		t.Fatalf("subscribing: status %d", subRes.StatusCode)
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodPost, srv.base+"/fhir/ServiceRequest", strings.NewReader(referralJSON("TRACE-1", "390893007")))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", res.StatusCode)
	}
	select {
	case tp := <-received:
		if !strings.HasPrefix(tp, "00-"+traceID+"-") {
			t.Errorf("the provider got traceparent %q, not the GP's trace", tp)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the referral was not delivered")
	}
	select {
	case tp := <-wroteBack:
		if !strings.HasPrefix(tp, "00-"+traceID+"-") {
			t.Errorf("the GP record got traceparent %q, not its own trace", tp)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the GP record was not written back")
	}
	// The same loop in the metrics: attempts per delivery, and the lag
	// from the Task's change to the GP record holding it.
	waitMetrics(t, srv.metrics, [2]string{"signpost_delivery_attempts_count{", `outcome="delivered"`},
		[2]string{"signpost_notification_lag_seconds_count{", `channel="write-back"`})
	must(t, srv.stop()) // flushes the spans

	collector.mu.Lock()
	defer collector.mu.Unlock()
	if !collector.services["signpost"] || len(collector.services) != 1 {
		t.Errorf("spans came from services %v, want signpost alone", collector.services)
	}
	kinds := map[string]bool{}
	for _, s := range collector.spans {
		inTrace := hex.EncodeToString(s.TraceId) == traceID
		for _, kv := range s.Attributes {
			v := kv.Value.GetStringValue()
			if strings.Contains(v, "9434765919") || strings.Contains(s.Name, "9434765919") {
				t.Errorf("span %q carries the NHS number in %s", s.Name, kv.Key)
			}
			switch kv.Key {
			case "url.path", "url.full", "url.query", "db.statement", "db.query.text":
				t.Errorf("span %q records %s", s.Name, kv.Key)
			case "db.system", "db.system.name":
				if inTrace {
					kinds["redis"] = true
				}
			}
		}
		if !inTrace {
			continue
		}
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_SERVER && s.Name == "POST /fhir/:type":
			kinds["api"] = true
		case s.Kind == tracepb.Span_SPAN_KIND_CONSUMER && s.Name == "delivery process":
			kinds["worker"] = true
		case s.Kind == tracepb.Span_SPAN_KIND_CONSUMER && s.Name == "notify process":
			kinds["write-back"] = true
		case s.Kind == tracepb.Span_SPAN_KIND_CONSUMER && s.Name == "subscription process":
			kinds["subscriptions"] = true
		case s.Kind == tracepb.Span_SPAN_KIND_CLIENT && s.Name == "HTTP POST":
			kinds["webhook"] = true
		}
	}
	for _, want := range []string{"api", "redis", "worker", "webhook", "write-back", "subscriptions"} {
		if !kinds[want] {
			var names []string
			for _, s := range collector.spans {
				names = append(names, s.Kind.String()+" "+s.Name+" "+hex.EncodeToString(s.TraceId))
			}
			t.Errorf("the GP's trace has no %s span; spans exported:\n%s", want, strings.Join(names, "\n"))
		}
	}
	// The access log line of the request names the trace.
	found := false
	for len(srv.stderr.lines) > 0 {
		if line := <-srv.stderr.lines; strings.Contains(line, `"trace_id":"`+traceID+`"`) && strings.Contains(line, "http request") {
			found = true
		}
	}
	if !found {
		t.Error("no log line of the request carries its trace_id")
	}
}

// waitMetrics polls /metrics until it shows every series named: a line
// beginning with the metric, holding the label.
func waitMetrics(t *testing.T, base string, series ...[2]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(base + "/metrics")
		must(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		missing := ""
		for _, s := range series {
			if !slices.ContainsFunc(strings.Split(string(b), "\n"), func(l string) bool {
				return strings.HasPrefix(l, s[0]) && strings.Contains(l, s[1])
			}) {
				missing = s[0] + s[1]
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s:\n%s", missing, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
