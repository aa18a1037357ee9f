package httpapi_test

// Benchmarks of referral intake through real HTTP to a real redis-server
// (appendonly yes, appendfsync everysec, as redistest starts it), next to the
// "floor" of cmd/load/benchkit doing the least such a service must do: read
// the body, decode it with encoding/json, one pipelined Redis write.
//
//	go test ./gateway/httpapi -run '^$' -bench . -benchtime 3s
//
// The client runs in the same process, so allocs/op and CPU profiles include
// the HTTP client's share as well as the server's; it is the same share for
// Signpost and the floor. deploy/bench/README.md explains how to read the results.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/cmd/load/benchkit"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/usecases"
)

// benchConns is the concurrency of the parallel benchmarks, as deploy/bench/run.sh
// uses by default: 64 requests in flight whatever GOMAXPROCS is.
const benchConns = 64

// benchSignpost starts Signpost over its own redis-server, built as setup
// does (setup takes a *testing.T), and returns the URL to POST referrals to.
// Logs are formatted as in production and then discarded, so that a long
// benchmark does not keep them in memory.
func benchSignpost(b *testing.B) (string, *http.Client) {
	b.Helper()
	r := redistest.Start(b)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	svc := usecases.New(gateway.Options{
		Store:           redisstore.New(r.Client(), "signpost"),
		Providers:       testProviders,
		StrictNHSNumber: true,
		FHIRBase:        srv.URL + "/fhir",
	})
	caller := gateway.Caller{ClientID: "practice-a", Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: practiceODS}}
	mux.Handle("/", httpapi.New(httpapi.Options{
		UseCases: svc, PublicURL: srv.URL, MaxBodyBytes: 1 << 20,
		Logger:     slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Caller:     func(*http.Request) (gateway.Caller, error) { return caller, nil },
		Capability: httpapi.CapabilityInfo{Version: "bench", AuthMode: "none"},
	}))
	return srv.URL + "/fhir/ServiceRequest", benchHTTPClient(b)
}

// benchFloorServer starts the floor over its own redis-server.
func benchFloorServer(b *testing.B) (string, *http.Client) {
	b.Helper()
	r := redistest.Start(b)
	srv := httptest.NewServer(benchkit.FloorHandler(r.Client(), 1<<20))
	b.Cleanup(srv.Close)
	return srv.URL + "/fhir/ServiceRequest", benchHTTPClient(b)
}

func benchHTTPClient(b *testing.B) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        benchConns,
		MaxIdleConnsPerHost: benchConns,
		MaxConnsPerHost:     benchConns,
		DisableCompression:  true,
	}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// benchPost sends one referral and checks it was created (201): a 200 would
// mean an identifier was reused and the benchmark measured repeats.
func benchPost(client *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		head, _ := io.ReadAll(io.LimitReader(res.Body, 500))
		return fmt.Errorf("status %d, want 201: %s", res.StatusCode, head)
	}
	_, err = io.Copy(io.Discard, res.Body)
	return err
}

// benchSequential sends one referral at a time.
func benchSequential(b *testing.B, url string, client *http.Client, label string) {
	bodies := benchkit.NewBodies(label)
	b.ReportAllocs()
	b.SetBytes(int64(bodies.Size(1)))
	var n uint64
	for b.Loop() {
		n++
		if err := benchPost(client, url, bodies.Append(make([]byte, 0, 2048), n)); err != nil {
			b.Fatal(err)
		}
	}
}

// benchParallel keeps benchConns referrals in flight and reports, besides
// ns/op, the throughput and the p50/p99 latency of single requests.
func benchParallel(b *testing.B, url string, client *http.Client, label string) {
	bodies := benchkit.NewBodies(label)
	var (
		seq atomic.Uint64
		mu  sync.Mutex
		all []time.Duration
	)
	b.SetParallelism(max(1, (benchConns+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.SetBytes(int64(bodies.Size(1)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			body := bodies.Append(make([]byte, 0, 2048), seq.Add(1))
			t0 := time.Now()
			if err := benchPost(client, url, body); err != nil {
				b.Error(err)
				break
			}
			lat = append(lat, time.Since(t0))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(q float64) float64 {
		i := min(len(all)-1, max(0, int(q*float64(len(all))+0.999999)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkCreateReferral is POST /fhir/ServiceRequest of an active ~1.5 KB
// referral, one at a time, each with its own identifier.
func BenchmarkCreateReferral(b *testing.B) {
	url, client := benchSignpost(b)
	benchSequential(b, url, client, "seq")
}

// BenchmarkCreateReferralParallel is the same with 64 requests in flight.
func BenchmarkCreateReferralParallel(b *testing.B) {
	url, client := benchSignpost(b)
	benchParallel(b, url, client, "par")
}

// BenchmarkFloor is the floor's work for the same bodies, one at a time:
// compare its ns/op with BenchmarkCreateReferral's from the same run.
func BenchmarkFloor(b *testing.B) {
	url, client := benchFloorServer(b)
	benchSequential(b, url, client, "floorseq")
}

// BenchmarkFloorParallel is the floor with 64 requests in flight: compare
// its req/s with BenchmarkCreateReferralParallel's from the same run.
func BenchmarkFloorParallel(b *testing.B) {
	url, client := benchFloorServer(b)
	benchParallel(b, url, client, "floorpar")
}

// BenchmarkProcessMessage is POST /fhir/$process-message of NHS England's
// published BaRS servicerequest-request (19 entries, 18 of them stored in
// one commit), one at a time, each a new message: its Bundle.id and every
// entry's fullUrl fresh, as a sender makes them. It reports the p90 and the
// slowest message beside ns/op, for BaRS's response-time target (90% of
// requests under 2.1 s, all under 5 s); compare ns/op with
// BenchmarkCreateReferral of the same run.
func BenchmarkProcessMessage(b *testing.B) {
	r := redistest.Start(b)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	providers := slices.Clone(testProviders)
	providers[0].Services = []string{barsService}
	svc := usecases.New(gateway.Options{Store: redisstore.New(r.Client(), "signpost"), Providers: providers, FHIRBase: srv.URL + "/fhir"})
	caller := gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: practiceODS}}
	mux.Handle("/", httpapi.New(httpapi.Options{
		UseCases: svc, PublicURL: srv.URL, MaxBodyBytes: 1 << 20,
		Logger:     slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Caller:     func(*http.Request) (gateway.Caller, error) { return caller, nil },
		Capability: httpapi.CapabilityInfo{Version: "bench", AuthMode: "none"},
	}))
	client := benchHTTPClient(b)
	example, err := os.ReadFile(barsExamplePath)
	if err != nil {
		b.Fatal(err)
	}
	ids := slices.Compact(slices.Sorted(slices.Values(regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).FindAllString(string(example), -1))))
	var lat []time.Duration
	b.ReportAllocs()
	b.SetBytes(int64(len(example)))
	for b.Loop() {
		b.StopTimer()
		pairs := make([]string, 0, 2*len(ids))
		for _, id := range ids {
			pairs = append(pairs, id, gateway.NewID())
		}
		body := []byte(strings.NewReplacer(pairs...).Replace(string(example)))
		b.StartTimer()
		t0 := time.Now()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/fhir/$process-message", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		answer, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %s", res.StatusCode, answer)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*9/10)].Microseconds())/1000, "p90-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	}
}

// BenchmarkRedisMemoryOverALife reports the Redis memory (INFO
// used_memory) one referral takes at each stage of its life: made (its
// ServiceRequest, Task, index entries, keys, delivery job and audit
// record), then each Task change a provider makes (accepted, in progress,
// completed: a version, its Provenance, their index entries, the GP's
// notification job and the audit record). b.N referrals go through each
// stage together; the figures are bytes per referral.
//
//	go test ./gateway/httpapi -run '^$' -bench RedisMemoryOverALife -benchtime 2000x
func BenchmarkRedisMemoryOverALife(b *testing.B) {
	r := redistest.Start(b)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	svc := usecases.New(gateway.Options{Store: redisstore.New(r.Client(), "signpost"), Providers: testProviders, StrictNHSNumber: true, FHIRBase: srv.URL + "/fhir"})
	callers := map[string]gateway.Caller{
		"gp":       {ClientID: "practice-a", Kind: gateway.CallerGP, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: practiceODS}},
		"provider": {ClientID: "walking", Kind: gateway.CallerProvider, Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"}},
	}
	mux.Handle("/", httpapi.New(httpapi.Options{
		UseCases: svc, PublicURL: srv.URL, MaxBodyBytes: 1 << 20,
		Logger:     slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Caller:     func(r *http.Request) (gateway.Caller, error) { return callers[r.Header.Get(callerHeader)], nil },
		Capability: httpapi.CapabilityInfo{Version: "bench", AuthMode: "none"},
	}))
	client := benchHTTPClient(b)
	ctx := b.Context()
	used := func() int64 {
		b.Helper()
		if err := r.Client().Do(ctx, "MEMORY", "PURGE").Err(); err != nil {
			b.Fatal(err)
		}
		m, err := redisstore.New(r.Client(), "signpost").Memory(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return m.Used
	}
	do := func(method, url, body, as string, want int) []byte {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		if method == http.MethodPatch {
			req.Header.Set("Content-Type", "application/json-patch+json")
		}
		req.Header.Set(callerHeader, as)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			b.Fatalf("%s %s: %d %s", method, url, res.StatusCode, out)
		}
		return out
	}
	b.ReportAllocs()
	n := 0
	var tasks []string
	start := used()
	for b.Loop() {
		n++
		do(http.MethodPost, srv.URL+"/fhir/ServiceRequest", string(referral(fmt.Sprintf("MEM-%d", n), "390893007")), "gp", http.StatusCreated)
	}
	made := used()
	// The Tasks, found as the provider would find them.
	for page := srv.URL + "/fhir/Task?_count=500&owner=Organization/walking"; page != ""; {
		var bundle struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct{ ID string }
			}
		}
		_ = json.Unmarshal(do(http.MethodGet, page, "", "provider", http.StatusOK), &bundle)
		for _, e := range bundle.Entry {
			tasks = append(tasks, e.Resource.ID)
		}
		page = ""
		for _, l := range bundle.Link {
			if l.Relation == "next" {
				page = l.URL
			}
		}
	}
	report := func(unit string, before, after int64) {
		b.ReportMetric(float64(after-before)/float64(n), unit)
	}
	report("B-made/referral", start, made)
	before := made
	for _, step := range []struct{ status, unit string }{{"accepted", "B-accepted/referral"}, {"in-progress", "B-in-progress/referral"}, {"completed", "B-completed/referral"}} {
		for _, id := range tasks {
			do(http.MethodPatch, srv.URL+"/fhir/Task/"+id, `[{"op":"replace","path":"/status","value":"`+step.status+`"}]`, "provider", http.StatusOK)
		}
		after := used()
		report(step.unit, before, after)
		before = after
	}
	report("B-life/referral", start, before)
}
