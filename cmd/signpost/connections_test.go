package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/worker"
)

// A worker draining a backlog to one provider keeps its connections open
// between deliveries: a lane has worker.DefaultPerProvider deliveries in
// flight, so it needs no more connections than that, however many
// referrals it delivers. (With the outbound client's default idle pool, 8
// per host, about one delivery in five opened a connection.)
func TestDeliveriesReuseTheirConnections(t *testing.T) {
	t.Parallel()
	const referrals = 240
	r := redistest.Start(t)
	var opened, open, received, inFlight, peak atomic.Int64
	stub := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
		}
		_, _ = io.Copy(io.Discard, req.Body)
		time.Sleep(2 * time.Millisecond) // a provider's own work, so that deliveries overlap
		received.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	stub.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	stub.Start()
	t.Cleanup(stub.Close)
	cfgText := strings.Replace(testConfig, "delivery: { kind: portal }\n  - id: link",
		"delivery: { kind: webhook, url: \""+stub.URL+"\", secret: \"whsec_c3ludGhldGljLXNlY3JldC1mb3ItdGhlLWNvbm4tdGVzdA==\" }\n  - id: link", 1) +
		"outbound_allow: [\"127.0.0.0/8\"]\n"
	if !strings.Contains(cfgText, stub.URL) {
		t.Fatal("the test configuration no longer has the provider this test points at its stub")
	}
	cfg := writeFile(t, "signpost.yaml", cfgText)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})

	// The backlog first, so that the worker starts with every lane full.
	srv := startSignpost(t, []string{"serve", "-workers=false", "-config", cfg}, getenv)
	var wg sync.WaitGroup
	errs := make(chan error, referrals)
	for i := range referrals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Post(srv.base+"/fhir/ServiceRequest", "application/fhir+json",
				strings.NewReader(referralJSON(fmt.Sprintf("CONN-%d", i), "390893007")))
			if err != nil {
				errs <- err
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("POST: %s", res.Status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	must(t, srv.stop())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"worker", "-config", cfg}, getenv, io.Discard, io.Discard) }()
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < referrals {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered", received.Load(), referrals)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The connections the worker keeps between deliveries are what its
	// client holds idle once the backlog is gone: the stub sees them still
	// open. Wait until that number settles (the client closes those over
	// its idle pool as their last responses are read). Measured before the
	// worker stops, so that no send is cut short by its stopping.
	settled, last, since := time.Now().Add(10*time.Second), open.Load(), time.Now()
	for time.Since(since) < 300*time.Millisecond || last > int64(worker.DefaultPerProvider) {
		if time.Now().After(settled) {
			break
		}
		time.Sleep(10 * time.Millisecond)
		if n := open.Load(); n != last {
			last, since = n, time.Now()
		}
	}
	// Every connection the lane had in use at once is kept: a pool
	// smaller than the lane (the outbound client's default, 8 a host)
	// keeps 8 of the 16, and the others' deliveries dial again (240
	// deliveries opened about 90). The count of dials is not held to a
	// bound: a delivery that finds no idle connection because the last
	// one has not been put back yet dials, and on a loaded two-CPU host
	// those dials (each then closed as surplus to the pool) vary from a
	// few to dozens (42 seen for a lane of 16).
	kept, most := open.Load(), peak.Load()
	cancel()
	must(t, <-done)
	t.Logf("%d deliveries: at most %d at once, %d connections opened, %d kept", referrals, most, opened.Load(), kept)
	if kept < most {
		t.Errorf("%d deliveries, %d of them at once, and %d connections kept open after them; want every one the lane used at once kept (at most %d)",
			referrals, most, kept, worker.DefaultPerProvider)
	}
}
