package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/topic"
)

// SubscriptionDomain is what the subscription worker asks of the domain.
type SubscriptionDomain interface {
	MatchingSubscriptions(ctx context.Context, client, taskID string, version int) ([]*topic.SubscriptionView, error)
	SubscriptionByID(ctx context.Context, id string) (*topic.SubscriptionView, error)
	Subscribers(ctx context.Context, client string) ([]*topic.SubscriptionView, error)
	NotificationBundle(ctx context.Context, sub *topic.SubscriptionView, kind string, since int64, events []gateway.Event) ([]byte, error)
	SetSubscriptionStatus(ctx context.Context, id, status, reason string, version int) error
	// SubscriberRegistered reports whether an endpoint is under an origin
	// the operator registered for the GP system (gateway.SubscriberOrigins).
	SubscriberRegistered(client, endpoint string) bool
}

// SubscriptionStore keeps subscriptions' event numbers and queues.
type SubscriptionStore interface {
	Fanout(ctx context.Context, job gateway.QueuedJob, subs []*topic.SubscriptionView, client string, ev gateway.Event) error
	NextEvent(ctx context.Context, subID string) (*gateway.Event, error)
	SentEvent(ctx context.Context, subID string, number int64) error
	EventCount(ctx context.Context, subID string) (int64, error)
	LastSent(ctx context.Context, subID string) (time.Time, error)
	MarkSent(ctx context.Context, subID string) error
	ClaimHeartbeat(ctx context.Context, subID string, period time.Duration) (bool, error)
	// HeartbeatFailed counts a failed heartbeat: how many in a row since
	// the subscription was last sent anything (forgotten keep after).
	HeartbeatFailed(ctx context.Context, subID string, keep time.Duration) (int64, error)
	// The lease of sending one subscription's events: one sender at a time.
	LockSubscription(ctx context.Context, subID, token string, ttl time.Duration) (bool, error)
	RenewSubscription(ctx context.Context, subID, token string, ttl time.Duration) (bool, error)
	UnlockSubscription(ctx context.Context, subID, token string) error
}

// subscriptionLease bounds how long one sender holds a subscription
// without renewing: it renews before each event, so this only needs to
// outlast one send (bounded by Client's timeout); a sender that died frees
// the subscription after it.
const subscriptionLease = time.Minute

// Subscriptions notifies subscribers (R5 Backport rest-hook): it numbers
// each Task change for the subscriptions it matches, sends each
// subscription its events one at a time and in order, shakes hands with new
// subscriptions, and sends heartbeats. The Handler of the subscription queue.
type Subscriptions struct {
	Queue  Queue
	Domain SubscriptionDomain
	Store  SubscriptionStore
	// Client sends to the endpoints GP systems chose: it must reach public
	// addresses only (notify.SubscriberClients), as a client's choice of
	// endpoint and headers gains nothing from outbound_allow. Registered
	// sends to endpoints under an origin the operator registered for their
	// GP system, held to outbound_allow (nil: Client).
	Client     *http.Client
	Registered *http.Client
	Clients    []string // GP systems (lanes)
	Retry      []time.Duration
	Log        *slog.Logger
	Metrics    *telemetry.Metrics // nil: none
	// Audit keeps the record of each notification sent (nil: none).
	Audit Auditor
	// MaxHeartbeats bounds the heartbeats in flight at once (default
	// DefaultMaxHeartbeats). Each is bounded by Client's timeout.
	MaxHeartbeats int

	beats    sync.WaitGroup
	beatsMu  sync.Mutex
	inFlight map[string]bool // subscriptions whose heartbeat is being sent
}

// DefaultMaxHeartbeats is how many heartbeats are sent at once: enough
// that endpoints as slow as the timeout hold up no other subscription, few
// enough that a tick cannot open a connection per subscription at once.
const DefaultMaxHeartbeats = 16

// Lanes are the GP systems.
func (h *Subscriptions) Lanes() []string { return h.Clients }

// Lane is the GP system the job is for.
func (h *Subscriptions) Lane(job gateway.QueuedJob) string { return queue.JobLane(job) }

func (h *Subscriptions) log() *slog.Logger {
	return loggerOr(h.Log)
}

// Handle handles one job of the subscription queue.
func (h *Subscriptions) Handle(ctx context.Context, job gateway.QueuedJob) {
	log := h.log().With("job", job.Name(), "event", queue.JobEvent(job))
	switch queue.JobEvent(job) {
	case queue.EventTaskChanged:
		changed, err := queue.ReadTaskChanged(job)
		if err != nil {
			record(log, "unreadable subscription job", h.Queue.Bury(ctx, job, err.Error()))
			return
		}
		subs, err := h.Domain.MatchingSubscriptions(ctx, changed.Client, changed.TaskID, changed.Version)
		if err != nil {
			record(log, "matching subscriptions", err)
			return
		}
		ev := gateway.Event{Timestamp: changed.At, Task: gateway.TypeTask + "/" + changed.TaskID, Version: strconv.Itoa(changed.Version)}
		record(log.With("subscriptions", len(subs)), "numbered for subscribers", h.Store.Fanout(ctx, job, subs, changed.Client, ev))
	case queue.EventHandshake:
		h.handshake(ctx, log, job)
	case queue.EventSend:
		h.send(ctx, log, job)
	default:
		record(log, "unknown subscription job", h.Queue.Bury(ctx, job, "unknown subscription job"))
	}
}

// handshake confirms a new subscription with its endpoint: active when the
// endpoint answers 2xx, error (with the reason) when it does not.
func (h *Subscriptions) handshake(ctx context.Context, log *slog.Logger, job gateway.QueuedJob) {
	hs, err := queue.ReadHandshake(job)
	if err != nil {
		record(log, "unreadable handshake job", h.Queue.Bury(ctx, job, err.Error()))
		return
	}
	sub, err := h.Domain.SubscriptionByID(ctx, hs.SubscriptionID)
	if err != nil {
		record(log, "reading the subscription", err)
		return
	}
	body, err := h.Domain.NotificationBundle(ctx, sub, "handshake", 0, nil)
	if err != nil {
		record(log, "building the handshake", err)
		return
	}
	res := h.notify(ctx, hs.Client, sub, body)
	status, reason := "active", ""
	if !res.OK() {
		status, reason = "error", ErrHandshake
		log.Info("subscription endpoint did not accept the handshake", "subscription", sub.ID, "reason", res.Reason)
	}
	// The handshake counts as sent before the subscription is active:
	// a tick in between would otherwise find it active with nothing ever
	// sent, and send a heartbeat at once (claiming the period's).
	if err := h.Store.MarkSent(ctx, sub.ID); err != nil {
		record(log, "recording the handshake as sent", err)
		return
	}
	// The version the handshake was queued for: an update made while it
	// ran has a handshake of its own.
	if err := h.Domain.SetSubscriptionStatus(ctx, sub.ID, status, reason, hs.Version); err != nil {
		record(log, "recording the handshake", err)
		return
	}
	record(log.With("subscription", sub.ID, "status", status), "handshake", h.Queue.Ack(ctx, job))
}

// send delivers a subscription's waiting events, oldest first, one writer
// per subscription, so a subscriber always receives them in order; a
// subscriber that is down gets them all when it is back.
func (h *Subscriptions) send(ctx context.Context, log *slog.Logger, job gateway.QueuedJob) {
	id, err := queue.ReadSend(job)
	if err != nil {
		record(log, "unreadable send job", h.Queue.Bury(ctx, job, err.Error()))
		return
	}
	token := gateway.NewID()
	locked, err := h.Store.LockSubscription(ctx, id, token, subscriptionLease)
	if err != nil {
		record(log, "taking the subscription lease", err)
		return
	}
	if !locked {
		// Another sender is draining this subscription. It may be past the
		// last event already, so this job waits its turn rather than
		// trusting it: then nothing is ever left unsent in the list.
		record(log, "another sender has it; waiting", h.Queue.Later(ctx, job, job.Fields, time.Now().Add(500*time.Millisecond)))
		return
	}
	defer func() { _ = h.Store.UnlockSubscription(context.WithoutCancel(ctx), id, token) }()
	sub, err := h.Domain.SubscriptionByID(ctx, id)
	if err != nil {
		record(log, "reading the subscription", err)
		return
	}
	if sub.Status != "active" {
		record(log.With("status", sub.Status), "not active: events kept", h.Queue.Ack(ctx, job))
		return
	}
	for {
		// The lease is renewed for each event, and a sender that lost it
		// stops: two senders would repeat events, or skip one.
		if ok, err := h.Store.RenewSubscription(ctx, id, token, subscriptionLease); err != nil || !ok {
			record(log, "lease lost; the other sender goes on", err)
			return
		}
		ev, err := h.Store.NextEvent(ctx, id)
		if err != nil {
			record(log, "reading events", err)
			return
		}
		if ev == nil {
			record(log, "sent", h.Queue.Ack(ctx, job))
			return
		}
		since, _ := h.Store.EventCount(ctx, id)
		body, err := h.Domain.NotificationBundle(ctx, sub, "event-notification", since, []gateway.Event{*ev})
		if err != nil {
			record(log, "building the notification", err)
			return
		}
		res := h.notify(ctx, queue.JobLane(job), sub, body)
		if !res.OK() {
			h.retry(ctx, log.With("subscription", id, "event", ev.Number), job, sub, res)
			return
		}
		disclosed(ctx, h.Audit, log, time.Now, job.Fields["client"], gateway.Identifier{}, pathRestHook+sub.Payload+" Subscription/"+id,
			append([]string{ev.Task + "/_history/" + ev.Version}, scoresSent(body)...))
		if err := h.Store.SentEvent(ctx, id, ev.Number); err != nil {
			record(log, "recording a sent event", err)
			return
		}
		h.Metrics.NotificationLag(ctx, "rest-hook", ev.Timestamp)
	}
}

// What Subscription.error says of an endpoint that failed, whatever the
// failure: the endpoint is the client's choice, and telling a refused
// connection from a timeout or an HTTP status would let a client map what
// answers where (a port scanner). The worker's log keeps the detail for
// operators (never a URL or a payload).
const (
	ErrHandshake     = "the endpoint did not accept the handshake"
	ErrNotifications = "the endpoint did not accept notifications"
	ErrHeartbeats    = "the endpoint did not accept heartbeats"
)

// MaxFailedHeartbeats is how many heartbeats in a row an endpoint may fail
// before its subscription is put in error, and sent nothing more until the
// client updates it (a new handshake): a few, so a brief outage passes,
// while an endpoint that takes nothing is not sent POSTs for ever. Event
// notifications have the retry schedule instead.
const MaxFailedHeartbeats = 3

// notify sends a subscription of the GP system client a notification,
// through the client its endpoint may use: Registered for an origin the
// operator registered for that GP system, Client for any other. Decided
// at each send, so a withdrawn registration counts at once, and the
// address is checked as dialled, after resolution.
func (h *Subscriptions) notify(ctx context.Context, client string, sub *topic.SubscriptionView, body []byte) notify.Result {
	c := h.Client
	if h.Registered != nil && h.Domain.SubscriberRegistered(client, sub.Endpoint) {
		c = h.Registered
	}
	return notify.Notify(ctx, c, sub.Endpoint, sub.Headers, body)
}

// retry tries the subscription again later; after the last attempt it is
// put in error, keeping its events (they are sent if it is made active).
func (h *Subscriptions) retry(ctx context.Context, log *slog.Logger, job gateway.QueuedJob, sub *topic.SubscriptionView, res notify.Result) {
	attempt, _ := queue.Attempt(job) // unreadable: the first of the retries
	if !res.Retry || attempt >= len(h.Retry) {
		log.Info("subscription endpoint did not accept notifications", "reason", res.Reason)
		// The version sent to: an update made since names an endpoint
		// of its own, which its handshake decides.
		err := h.Domain.SetSubscriptionStatus(ctx, sub.ID, "error", ErrNotifications, sub.Version)
		if err == nil {
			err = h.Queue.Ack(ctx, job)
		}
		record(log, "subscription put in error", err)
		return
	}
	next := queue.NextAttempt(job)
	wait := jitter(h.Retry[attempt])
	record(log.With("reason", res.Reason, "retry_in", wait), "will retry", h.Queue.Later(ctx, job, next, time.Now().Add(wait)))
}

// Tick sends heartbeats to active subscriptions that asked for them and
// have heard nothing for their period: at most one a period, from one
// process, sent or not. Each is sent on its own, a bounded number at once,
// and Tick does not wait for them: an endpoint as slow as the timeout holds
// up its own heartbeat, never another subscription's, nor the next tick.
// One still in flight, or over the bound, is left for a later tick.
func (h *Subscriptions) Tick(ctx context.Context) {
	for _, client := range h.Clients {
		subs, err := h.Domain.Subscribers(ctx, client)
		if err != nil {
			return
		}
		for _, sub := range subs {
			if sub.Heartbeat <= 0 {
				continue
			}
			last, err := h.Store.LastSent(ctx, sub.ID)
			if err != nil || time.Since(last) < sub.Heartbeat || !h.startBeat(sub.ID) {
				continue
			}
			h.beats.Add(1)
			go func() {
				defer h.beats.Done()
				defer h.endBeat(sub.ID)
				h.heartbeat(ctx, client, sub)
			}()
		}
	}
}

// Wait returns when no heartbeat is in flight (each ends within the
// client's timeout, or when Tick's context ends).
func (h *Subscriptions) Wait() { h.beats.Wait() }

// startBeat takes a place for a subscription's heartbeat, unless it has one
// in flight already or every place is taken.
func (h *Subscriptions) startBeat(id string) bool {
	limit := h.MaxHeartbeats
	if limit <= 0 {
		limit = DefaultMaxHeartbeats
	}
	h.beatsMu.Lock()
	defer h.beatsMu.Unlock()
	if h.inFlight == nil {
		h.inFlight = map[string]bool{}
	}
	if h.inFlight[id] || len(h.inFlight) >= limit {
		return false
	}
	h.inFlight[id] = true
	return true
}

func (h *Subscriptions) endBeat(id string) {
	h.beatsMu.Lock()
	defer h.beatsMu.Unlock()
	delete(h.inFlight, id)
}

// heartbeat sends one subscription's heartbeat, if this process claims
// the period's: every process ticks, and one claims it, so a subscriber
// gets one, and one attempt a period while it is down rather than one a
// second from each process.
func (h *Subscriptions) heartbeat(ctx context.Context, client string, sub *topic.SubscriptionView) {
	if mine, err := h.Store.ClaimHeartbeat(ctx, sub.ID, sub.Heartbeat); err != nil || !mine {
		return
	}
	since, _ := h.Store.EventCount(ctx, sub.ID)
	body, err := h.Domain.NotificationBundle(ctx, sub, "heartbeat", since, nil)
	if err != nil {
		return
	}
	res := h.notify(ctx, client, sub, body)
	if res.OK() {
		_ = h.Store.MarkSent(ctx, sub.ID)
		return
	}
	log := h.log().With("subscription", sub.ID)
	failed, err := h.Store.HeartbeatFailed(ctx, sub.ID, (MaxFailedHeartbeats+1)*sub.Heartbeat)
	if err != nil {
		record(log, "counting a failed heartbeat", err)
		return
	}
	log.Info("subscription endpoint did not accept a heartbeat", "reason", res.Reason, "in_a_row", failed)
	if failed >= MaxFailedHeartbeats {
		// Only the version that failed: an update since has its own handshake.
		record(log, "subscription put in error", h.Domain.SetSubscriptionStatus(ctx, sub.ID, "error", ErrHeartbeats, sub.Version))
	}
}

// scoresSent names the outcome measures' Observations a notification
// carried beside its Task (full-resource payloads), with their versions,
// for the record of what was disclosed.
func scoresSent(body []byte) []string {
	var b struct {
		Entry []struct {
			FullURL string `json:"fullUrl"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(body, &b)
	var out []string
	for _, e := range b.Entry {
		if i := strings.Index(e.FullURL, "/"+gateway.TypeObservation+"/"); i >= 0 {
			out = append(out, e.FullURL[i+1:])
		}
	}
	return out
}
