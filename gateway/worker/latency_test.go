package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/topic"
	"github.com/signpost-health/signpost/gateway/writeback"
)

// BenchmarkStatusChangeToGP measures the time from a provider's status
// change (the API call returning) to the GP side receiving it, by
// write-back and by subscription, at a steady rate of changes. It reports
// p50 and p99 in milliseconds: figures, not assertions.
//
//	go test ./gateway/worker -run x -bench StatusChangeToGP -benchtime 400x
func BenchmarkStatusChangeToGP(b *testing.B) {
	e := setup(b)
	var mu sync.Mutex
	wbAt, subAt := map[string]time.Time{}, map[string]time.Time{}
	gp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		var t struct {
			Status     string
			Identifier []struct{ System, Value string }
		}
		_ = json.Unmarshal(body, &t)
		if t.Status == "accepted" {
			for _, id := range t.Identifier {
				if id.System == writeback.TaskIdentifierSystem {
					mu.Lock()
					wbAt[id.Value] = now
					mu.Unlock()
				}
			}
		}
		w.Header().Set("Location", "/fhir/Task/"+gateway.NewID()+"/_history/1")
		w.Header().Set("ETag", `W/"1"`)
		w.WriteHeader(http.StatusCreated)
	}))
	b.Cleanup(gp.Close)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		if i := strings.Index(string(body), "/Task/"); i > 0 && strings.Contains(string(body), "event-notification") {
			id := string(body[i+6 : i+6+36])
			mu.Lock()
			subAt[id] = now
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(hook.Close)
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	e.startWriteBacks(map[string]*notify.GPServer{"practice-a": {Base: gp.URL + "/fhir", Client: client}})
	e.startSubscriptions()
	sub := e.subscribe("practice-a", hook.URL, topic.PayloadIDOnly, "Task?status=accepted")
	eventually(b, "the handshake", func() bool { return e.subStatus(sub) == "active" })

	tasks := make([]string, b.N)
	for i := range tasks {
		tasks[i] = e.refer(fmt.Sprintf("LAT-%d-%d", time.Now().UnixNano(), i), "390893007")
	}
	changed := make([]time.Time, b.N)
	const interval = 10 * time.Millisecond // a steady 100 changes a second
	b.ResetTimer()
	next := time.Now()
	for i, id := range tasks {
		time.Sleep(time.Until(next))
		next = next.Add(interval)
		e.move(id, "accepted", "")
		changed[i] = time.Now()
	}
	eventually(b, "every change on the GP side", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(wbAt) == b.N && len(subAt) == b.N
	})
	b.StopTimer()
	report := func(name string, at map[string]time.Time) {
		lat := make([]float64, 0, b.N)
		for i, id := range tasks {
			lat = append(lat, float64(at[id].Sub(changed[i]).Microseconds())/1000)
		}
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2], name+"-p50-ms")
		b.ReportMetric(lat[len(lat)*99/100], name+"-p99-ms")
	}
	report("writeback", wbAt)
	report("subscription", subAt)
	_ = context.Background
}
