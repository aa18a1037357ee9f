package worker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/worker"
)

// hangingSubscriber answers handshakes at once and holds every heartbeat
// open until released (at the end of the test at the latest).
type hangingSubscriber struct {
	srv        *httptest.Server
	release    chan struct{}
	once       sync.Once
	heartbeats atomic.Int64
}

func newHangingSubscriber(t *testing.T) *hangingSubscriber {
	h := &hangingSubscriber{release: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"valueCode":"heartbeat"`) {
			h.heartbeats.Add(1)
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() { h.let(); h.srv.Close() })
	return h
}

func (h *hangingSubscriber) let() { h.once.Do(func() { close(h.release) }) }

// activeHeartbeatSubscriptions subscribes practice-a at each endpoint with
// a heartbeat due, waits for every handshake, and returns their ids.
func (e *env) activeHeartbeatSubscriptions(endpoints ...string) []string {
	e.t.Helper()
	stop := e.startSubscriptions()
	var ids []string
	for _, ep := range endpoints {
		ids = append(ids, e.subscribeWithHeartbeat(ep, 3600))
	}
	eventually(e.t, "the handshakes", func() bool {
		for _, id := range ids {
			if e.subStatus(id) != "active" {
				return false
			}
		}
		return true
	})
	stop()
	for _, id := range ids {
		if err := e.rdb.Set(context.Background(), "{signpost}:sl:"+id, time.Now().Add(-2*time.Hour).UnixMilli(), 0).Err(); err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

// heartbeatProcess is one process's subscription handler, with a timeout
// far longer than the test, so that only the endpoints decide when a send ends.
func (e *env) heartbeatProcess(max int) *worker.Subscriptions {
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 10 * time.Minute})
	return &worker.Subscriptions{Queue: e.store.Queues(gateway.QueueSubscription), Domain: e.svc.Subscriptions, Store: e.store, Client: client,
		Clients: []string{"practice-a"}, MaxHeartbeats: max}
}

// An endpoint that holds its heartbeat open delays no other subscription's
// heartbeat, nor the tick: the others arrive while it still hangs.
func TestSlowHeartbeatEndpointDelaysNoOther(t *testing.T) {
	t.Parallel()
	e := setup(t)
	slow, fast := newHangingSubscriber(t), newSubscriber(t)
	// Slow ones on both sides of the fast one, whichever order they are listed in.
	e.activeHeartbeatSubscriptions(slow.srv.URL, fast.srv.URL, slow.srv.URL)
	p := e.heartbeatProcess(0)
	ticked := make(chan struct{})
	go func() { p.Tick(context.Background()); close(ticked) }()
	eventually(t, "the fast endpoint's heartbeat while the slow one hangs", func() bool {
		fast.mu.Lock()
		defer fast.mu.Unlock()
		for _, n := range fast.got {
			if n.Kind == "heartbeat" {
				return true
			}
		}
		return false
	})
	eventually(t, "both slow heartbeats in flight", func() bool { return slow.heartbeats.Load() == 2 })
	<-ticked // Tick returned with the slow ones still in flight
	slow.let()
	p.Wait()
}

// At most MaxHeartbeats are in flight; the rest wait for a later tick, and
// one still in flight is not sent again.
func TestHeartbeatsInFlightAreBounded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	slow := newHangingSubscriber(t)
	e.activeHeartbeatSubscriptions(slow.srv.URL, slow.srv.URL, slow.srv.URL, slow.srv.URL)
	p := e.heartbeatProcess(2)
	ticked := make(chan struct{})
	go func() {
		p.Tick(context.Background())
		p.Tick(context.Background()) // both places taken: nothing more starts
		close(ticked)
	}()
	eventually(t, "two heartbeats in flight", func() bool { return slow.heartbeats.Load() == 2 })
	<-ticked
	slow.let()
	p.Wait()
	if n := slow.heartbeats.Load(); n != 2 {
		t.Errorf("%d heartbeats sent with at most 2 in flight and both held open, want 2", n)
	}
}

// The handshake counts as sent before its subscription is made active, so
// a tick between the two finds it sent and starts no heartbeat at once.
func TestHandshakeCountsAsSentBeforeTheSubscriptionIsActive(t *testing.T) {
	t.Parallel()
	e := setup(t)
	hook := &activeHook{SubscriptionDomain: e.svc.Subscriptions, store: e.store}
	q := e.store.Queues(gateway.QueueSubscription)
	client := outbound.NewClient(outbound.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second})
	w := newQuickWorker(worker.Options{Queue: q, PerProvider: 1, LaneDepth: 64, Consumer: "hs-" + gateway.NewID()[:8],
		Handler: &worker.Subscriptions{Queue: q, Domain: hook, Store: e.store, Client: client, Clients: []string{"practice-a"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s := newSubscriber(t)
	id := e.subscribeWithHeartbeat(s.srv.URL, 3600)
	eventually(t, "the handshake", func() bool { return e.subStatus(id) == "active" })
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if !hook.seen || hook.lastSent.IsZero() {
		t.Errorf("made active with nothing recorded as sent (seen %v, last sent %v): a tick then sends a heartbeat at once", hook.seen, hook.lastSent)
	}
}

// activeHook notes, as a subscription is made active, when the store says
// it was last sent anything.
type activeHook struct {
	worker.SubscriptionDomain
	store    worker.SubscriptionStore
	mu       sync.Mutex
	seen     bool
	lastSent time.Time
}

func (h *activeHook) SetSubscriptionStatus(ctx context.Context, id, status, reason string, version int) error {
	if status == "active" {
		last, err := h.store.LastSent(ctx, id)
		h.mu.Lock()
		h.seen, h.lastSent = err == nil, last
		h.mu.Unlock()
	}
	return h.SubscriptionDomain.SetSubscriptionStatus(ctx, id, status, reason, version)
}

// An endpoint that takes no heartbeat is not sent them for ever: after
// MaxFailedHeartbeats in a row its subscription is put in error, with the
// same text whatever the failure, and sent no more. One that took a
// heartbeat in between starts counting again.
func TestFailedHeartbeatsPutTheSubscriptionInError(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := newSubscriber(t)
	id := e.activeHeartbeatSubscriptions(s.srv.URL)[0]
	p := e.heartbeatProcess(0)
	beat := func() {
		t.Helper()
		e.heartbeatDue(id)
		before := s.calls.Load()
		p.Tick(context.Background())
		p.Wait()
		if n := s.calls.Load() - before; n != 1 {
			t.Fatalf("%d heartbeats sent in a period, want 1", n)
		}
	}
	s.down.Store(true)
	for range worker.MaxFailedHeartbeats - 1 {
		beat()
	}
	s.down.Store(false)
	beat() // taken: the count starts again
	s.down.Store(true)
	for i := range worker.MaxFailedHeartbeats {
		if st := e.subStatus(id); st != "active" {
			t.Fatalf("%s after %d heartbeats failed in a row, want active until %d", st, i, worker.MaxFailedHeartbeats)
		}
		beat()
	}
	sub, err := e.svc.Subscriptions.SubscriptionByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Status != "error" {
		t.Fatalf("%s after %d heartbeats failed in a row, want error", sub.Status, worker.MaxFailedHeartbeats)
	}
	raw, err := e.store.Read(context.Background(), "Subscription", id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw.Body), `"error":"`+worker.ErrHeartbeats+`"`) {
		t.Errorf("Subscription.error is not the coarse text %q: %s", worker.ErrHeartbeats, raw.Body)
	}
	// In error: no more heartbeats, due or not.
	e.heartbeatDue(id)
	before := s.calls.Load()
	p.Tick(context.Background())
	p.Wait()
	if n := s.calls.Load() - before; n != 0 {
		t.Errorf("%d heartbeats sent to a subscription in error", n)
	}
}
