package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// -receive serves the receiver until the deliveries expected have come,
// and reports them: a repeat is counted apart, never as a delivery.
func TestDrainReportsDeliveries(t *testing.T) {
	addr := freeAddr(t)
	out := filepath.Join(t.TempDir(), "results.jsonl")
	done := make(chan error, 1)
	go func() {
		done <- drainFor(config{webhook: addr, duration: 20 * time.Second, label: "signpost", jsonOut: out}, 3)
	}()
	send := func(id string) {
		t.Helper()
		body := `{"type":"referral.requested","referral":{"serviceRequest":"http://127.0.0.1:1/fhir/ServiceRequest/` + id + `"}}`
		for range 100 { // until the receiver listens
			res, err := http.Post("http://"+addr+"/referrals", "application/json", strings.NewReader(body))
			if err == nil {
				res.Body.Close()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("the receiver did not listen")
	}
	send("a")
	send("a") // a repeat
	send("b")
	send("c")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Mode != "drain" || r.Label != "signpost" || r.Requests != 3 || r.Created != 3 || r.Errors != 1 || r.Seconds <= 0 || r.Throughput <= 0 {
		t.Errorf("result %+v", r)
	}
	// One client, keeping its connection: a pool that churns would show.
	if r.Connections != 1 {
		t.Errorf("%d connections counted, want the one the client kept", r.Connections)
	}
}

// Fewer deliveries than expected within -d is an error, with what came.
func TestDrainShortIsAnError(t *testing.T) {
	addr := freeAddr(t)
	err := drainFor(config{webhook: addr, duration: 200 * time.Millisecond, label: "signpost"}, 2)
	if err == nil || !strings.Contains(err.Error(), "only 0 of 2") {
		t.Errorf("err = %v", err)
	}
}

// freeAddr is a loopback address nothing listens on (just now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
