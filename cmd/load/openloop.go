package main

// The fixed-rate (open-loop) mode and the loopback webhook receiver.
//
// In a closed loop each connection sends its next request when the last
// one is answered, so a slow answer also slows the sender, and the slow
// period is sampled less: the tail hides (coordinated omission). In the
// fixed-rate mode requests start on a schedule, whatever the replies, and
// each latency is measured from the time the schedule said to send, so a
// request that waited for a connection or for the generator counts its
// wait too.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// schedule is a fixed-rate plan: n requests, the i-th due at i/rate
// seconds after the start.
type schedule struct {
	rate float64 // requests per second
	n    int
}

// newSchedule plans rate requests per second for d: floor(rate × d)
// requests, the last due before d has passed.
func newSchedule(rate float64, d time.Duration) (schedule, error) {
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) || rate > 1e6 {
		return schedule{}, errors.New("-rate must be above 0 and at most 1,000,000 per second")
	}
	if d <= 0 || d > time.Hour {
		return schedule{}, errors.New("with -rate, give -d between 0 and 1h")
	}
	// The epsilon keeps 1000/s × 10 s at 10,000 despite rounding.
	return schedule{rate: rate, n: int(math.Floor(rate*d.Seconds() + 1e-9))}, nil
}

// at is when request i is due, from the start of the schedule.
func (s schedule) at(i int) time.Duration {
	return time.Duration(math.Round(float64(i) * float64(time.Second) / s.rate))
}

// ratePhase sends the schedule's requests, each at its due time in a
// goroutine of its own, and waits for every reply. With track, it keeps
// each accepted referral's id and due time (for the webhook receiver).
func (g *generator) ratePhase(ctx context.Context, s schedule, track bool) *phaseStats {
	var (
		mu    sync.Mutex
		total = phaseStats{lat: make([]time.Duration, 0, s.n)}
		wg    sync.WaitGroup
	)
	if track {
		total.sent = make(map[string]time.Time, s.n)
	}
	start := time.Now()
	for i := 0; i < s.n && ctx.Err() == nil; i++ {
		due := start.Add(s.at(i))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		total.lateMax = max(total.lateMax, time.Since(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, lat, sample, id := g.one(ctx, due)
			mu.Lock()
			defer mu.Unlock()
			total.record(status, lat, sample)
			if track && status == http.StatusCreated && id != "" {
				total.sent[id] = due
			}
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return &total
}

// record counts one reply.
func (p *phaseStats) record(status int, lat time.Duration, sample string) {
	switch {
	case status == http.StatusCreated:
		p.created++
		p.lat = append(p.lat, lat)
	case status >= 200 && status < 300:
		p.repeated++
		p.lat = append(p.lat, lat)
	default:
		p.errors++
		if sample != "" && len(p.samples) < 5 && !containsString(p.samples, sample) {
			p.samples = append(p.samples, sample)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// idFromLocation is the resource id in a Location header such as
// http://host/fhir/ServiceRequest/ID/_history/1 or /fhir/ServiceRequest/ID.
func idFromLocation(loc string) string {
	_, rest, ok := strings.Cut(loc, "/ServiceRequest/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// receiver is a loopback webhook endpoint for Signpost's delivery workers
// (a provider with delivery.kind webhook, payload thin). It notes when each
// referral's first message arrived, by its ServiceRequest id, and answers
// 200 at once. It does not check signatures: it measures how soon
// deliveries arrive, not whether they are genuine.
type receiver struct {
	srv *http.Server
	ln  net.Listener

	mu         sync.Mutex
	got        map[string]time.Time
	duplicates int64 // messages for a referral already received
	unreadable int64 // messages without a ServiceRequest reference

	// conns counts the connections the workers opened to the receiver: a
	// provider pays for each (a TLS handshake, on the real network), so a
	// pool that keeps too few idle shows here as churn.
	conns atomic.Int64
}

func startReceiver(addr string) (*receiver, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-webhook %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-webhook %q: only loopback addresses are allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-webhook: %w", err)
	}
	r := &receiver{ln: ln, got: map[string]time.Time{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				r.conns.Add(1)
			}
		}}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// ServeHTTP takes one webhook message.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var msg struct {
		Referral struct {
			ServiceRequest string `json:"serviceRequest"`
		} `json:"referral"`
	}
	_ = json.Unmarshal(body, &msg)
	id := idFromLocation(msg.Referral.ServiceRequest)
	r.mu.Lock()
	switch {
	case id == "":
		r.unreadable++
	case !r.got[id].IsZero():
		r.duplicates++
	default:
		r.got[id] = at
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// received is a copy of the arrival times so far.
func (r *receiver) received() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

func (r *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// WebhookResult is what the receiver saw of the referrals accepted in the
// measured phase.
type WebhookResult struct {
	Accepted     int     `json:"accepted"`    // referrals accepted (201) in the measured phase
	Delivered    int     `json:"delivered"`   // of them, received by the end of the drain
	DrainSeconds float64 `json:"drain_s"`     // how long after the last reply the receiver waited at most
	P50ms        float64 `json:"p50_ms"`      // POST due → webhook received, of those delivered
	P99ms        float64 `json:"p99_ms"`      //
	MaxMs        float64 `json:"max_ms"`      //
	Duplicates   int64   `json:"duplicates"`  // repeated messages for one referral
	Other        int     `json:"other"`       // messages for referrals not of this phase (the warm-up's)
	Unreadable   int64   `json:"unreadable"`  // messages with no ServiceRequest reference
	Connections  int64   `json:"connections"` // connections the workers opened to the receiver
	// AllAfterMs is how long after the last reply the last delivery came,
	// when every referral was delivered within the drain.
	AllAfterMs *float64 `json:"all_after_ms,omitempty"`
}

// joinDeliveries matches the referrals sent (id → when the POST was due)
// with the messages received (id → when it arrived), counting those that
// arrived by deadline. It returns the latency of each of those, the number
// of received messages that match no referral sent, and when the last
// matched one arrived.
func joinDeliveries(sent, got map[string]time.Time, deadline time.Time) (lat []time.Duration, other int, last time.Time) {
	lat = make([]time.Duration, 0, len(sent))
	for id, at := range got {
		due, ok := sent[id]
		if !ok {
			other++
			continue
		}
		if at.After(deadline) {
			continue
		}
		lat = append(lat, at.Sub(due))
		if at.After(last) {
			last = at
		}
	}
	return lat, other, last
}

// awaitDeliveries waits until every referral in sent has arrived at r, or
// until drain has passed since end, and summarises what arrived by then.
func awaitDeliveries(r *receiver, sent map[string]time.Time, end time.Time, drain time.Duration) *WebhookResult {
	deadline := end.Add(drain)
	for time.Now().Before(deadline) {
		got := r.received()
		all := true
		for id := range sent {
			if _, ok := got[id]; !ok {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := r.received()
	lat, other, last := joinDeliveries(sent, got, deadline)
	w := &WebhookResult{Accepted: len(sent), Delivered: len(lat), DrainSeconds: drain.Seconds(), Other: other, Connections: r.conns.Load()}
	w.P50ms, _, w.P99ms, w.MaxMs, _ = distribution(lat)
	if w.Delivered == w.Accepted && w.Accepted > 0 {
		after := ms(max(last.Sub(end), 0))
		w.AllAfterMs = &after
	}
	r.mu.Lock()
	w.Duplicates, w.Unreadable = r.duplicates, r.unreadable
	r.mu.Unlock()
	return w
}
