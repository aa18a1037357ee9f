package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/query"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/topic"
)

// SubscriptionStatus is the $status operation: the subscription's status
// and how many events it has had, so a subscriber can tell if it missed one.
func (s *Service) SubscriptionStatus(ctx context.Context, caller gateway.Caller, id string) ([]byte, error) {
	if err := gateway.CheckID(id); err != nil {
		return nil, err
	}
	if _, err := s.ReadVisible(ctx, caller, topic.TypeSubscription, id); errors.Is(err, gateway.ErrNotFound) {
		return nil, gateway.NotFound(topic.TypeSubscription, id)
	} else if err != nil {
		return nil, err
	}
	sub, err := s.SubscriptionByID(ctx, id)
	if err != nil {
		return nil, err
	}
	n, err := s.Store.EventCount(ctx, id)
	if err != nil {
		return nil, err
	}
	status, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "meta": map[string]any{"profile": []string{topic.SubscriptionStatusProfile}},
		"parameter": []map[string]any{
			{"name": "subscription", "valueReference": map[string]string{"reference": s.Base + "/" + topic.TypeSubscription + "/" + id}},
			{"name": "topic", "valueCanonical": topic.TaskTopic},
			{"name": "status", "valueCode": sub.Status},
			{"name": "type", "valueCode": "query-status"},
			{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(n, 10)},
		}})
	b := fhir.Bundle{ID: gateway.NewID(), Type: "searchset", Timestamp: gateway.Instant(s.Now()), Total: 1,
		Entries: []fhir.BundleEntry{{FullURL: "urn:uuid:" + gateway.NewID(), Resource: status, Search: "match"}}}
	return b.Marshal(), nil
}

// EndSubscription ends a subscription (DELETE): its status becomes off and
// nothing more is sent to it.
func (s *Service) EndSubscription(ctx context.Context, caller gateway.Caller, id string) error {
	if err := gateway.CheckID(id); err != nil {
		return err
	}
	if _, err := s.ReadVisible(ctx, caller, topic.TypeSubscription, id); errors.Is(err, gateway.ErrNotFound) {
		return gateway.NotFound(topic.TypeSubscription, id)
	} else if err != nil {
		return err
	}
	return s.SetSubscriptionStatus(ctx, id, "off", "", 0)
}

// SubscriptionByID reads a subscription, whoever's it is (for the workers).
func (s *Service) SubscriptionByID(ctx context.Context, id string) (*topic.SubscriptionView, error) {
	r, err := s.Store.Read(ctx, topic.TypeSubscription, id)
	if err != nil {
		return nil, err
	}
	return readStored(r)
}

// readStored reads a stored subscription, with its stored status and the
// version read.
func readStored(r *gateway.Resource) (*topic.SubscriptionView, error) {
	v, err := topic.ReadSubscription(r.Body, r.ID)
	if err != nil {
		return nil, err
	}
	v.Version = r.Version
	return v, nil
}

// Subscribers lists the active subscriptions of a client.
func (s *Service) Subscribers(ctx context.Context, client string) ([]*topic.SubscriptionView, error) {
	return s.subscriptionsOf(ctx, client, "active")
}

// subscriptionsOf lists a client's subscriptions in the given statuses.
func (s *Service) subscriptionsOf(ctx context.Context, client string, statuses ...string) ([]*topic.SubscriptionView, error) {
	group := make([]string, len(statuses))
	for i, st := range statuses {
		group[i] = gateway.StatusTerm(st)
	}
	ids, _, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: topic.TypeSubscription, Groups: [][]string{group, {gateway.ClientTerm(client)}}, Count: query.MaxCount})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = topic.TypeSubscription + "/" + id
	}
	subs, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return nil, err
	}
	out := make([]*topic.SubscriptionView, 0, len(subs))
	for _, r := range subs {
		if v, err := readStored(r); err == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// MatchingSubscriptions are the subscriptions a Task change goes to: those
// of the client whose referral it is, whose filters match the Task as that
// change left it (the version given), not as it is now. Every subscription
// not ended counts, not only the active ones: one awaiting its handshake,
// or in error, keeps its events numbered and waiting, and is sent them
// once it is active again.
func (s *Service) MatchingSubscriptions(ctx context.Context, client, taskID string, version int) ([]*topic.SubscriptionView, error) {
	// The client's live subscriptions first: most clients have none, and
	// then the Task version need not be read and parsed at all (the profile
	// of delivery at intake's rate showed that as a tenth of the process).
	subs, err := s.subscriptionsOf(ctx, client, topic.LiveSubscriptionStatuses...)
	if err != nil || len(subs) == 0 {
		return nil, err
	}
	task, err := s.Store.ReadVersion(ctx, gateway.TypeTask, taskID, version)
	if err != nil {
		return nil, err
	}
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return nil, err
	}
	view.ID = task.ID
	var t struct {
		Requester *refJSON `json:"requester"`
	}
	_ = json.Unmarshal(task.Body, &t)
	var terms []string
	if t.Requester != nil {
		if t.Requester.Reference != "" {
			terms = append(terms, gateway.RequesterTerm(t.Requester.Reference))
		}
		if t.Requester.Identifier != nil {
			terms = append(terms, gateway.RequesterIdentifierTerm(t.Requester.Identifier.Value), gateway.RequesterIdentifierTerm(t.Requester.Identifier.System+"|"+t.Requester.Identifier.Value))
			terms = append(terms, gateway.RequesterTerm(t.Requester.Identifier.Value))
		}
	}
	var out []*topic.SubscriptionView
	for _, sub := range subs {
		if sub.Matches(view, terms) {
			out = append(out, sub)
		}
	}
	return out, nil
}

type refJSON struct {
	Reference  string `json:"reference"`
	Identifier *struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

// NotificationBundle renders a notification (Bundle of type history) with
// the subscription status first, per the Backport IG.
func (s *Service) NotificationBundle(ctx context.Context, sub *topic.SubscriptionView, kind string, since int64, events []gateway.Event) ([]byte, error) {
	status := sub.Status
	if status == "" {
		status = "active"
	}
	params := []map[string]any{
		{"name": "subscription", "valueReference": map[string]string{"reference": s.Base + "/" + topic.TypeSubscription + "/" + sub.ID}},
		{"name": "topic", "valueCanonical": topic.TaskTopic},
		{"name": "status", "valueCode": status},
		{"name": "type", "valueCode": kind},
		{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(since, 10)},
	}
	for _, e := range events {
		part := []map[string]any{
			{"name": "event-number", "valueString": strconv.FormatInt(e.Number, 10)},
			{"name": "timestamp", "valueInstant": gateway.Instant(e.Timestamp)},
		}
		if sub.Payload != topic.PayloadEmpty {
			part = append(part, map[string]any{"name": "focus", "valueReference": map[string]string{"reference": s.Base + "/" + e.Task}})
		}
		params = append(params, map[string]any{"name": "notification-event", "part": part})
	}
	statusParams, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "meta": map[string]any{"profile": []string{topic.SubscriptionStatusProfile}}, "parameter": params})
	// A history Bundle needs a request on every entry (R4 bdl-3): the
	// status as from $status, each focus as the update that made it.
	b := fhir.Bundle{ID: gateway.NewID(), Type: "history", Timestamp: gateway.Instant(s.Now()), Total: -1,
		Entries: []fhir.BundleEntry{{FullURL: "urn:uuid:" + gateway.NewID(), Resource: statusParams,
			Request:  &fhir.EntryRequest{Method: "GET", URL: s.Base + "/" + topic.TypeSubscription + "/" + sub.ID + "/$status"},
			Response: &fhir.EntryResponse{Status: "200 OK"}}}}
	for _, e := range events {
		if sub.Payload == topic.PayloadEmpty {
			continue
		}
		entry := fhir.BundleEntry{FullURL: s.Base + "/" + e.Task + "/_history/" + e.Version,
			Request: &fhir.EntryRequest{Method: "PUT", URL: e.Task}, Response: &fhir.EntryResponse{Status: "200 OK"}}
		if sub.Payload == topic.PayloadFullResource {
			id := strings.TrimPrefix(e.Task, gateway.TypeTask+"/")
			v, _ := strconv.Atoi(e.Version)
			r, err := s.Store.ReadVersion(ctx, gateway.TypeTask, id, v)
			if err != nil && !errors.Is(err, gateway.ErrNotFound) {
				return nil, err
			}
			if r != nil {
				entry.Resource = r.Body
			}
			b.Entries = append(b.Entries, entry)
			if r != nil {
				// The outcome measures' scores the Task names travel with it,
				// so the GP record reads "life satisfaction 3 -> 7" without
				// asking for each.
				scores, err := s.MeasureScores(ctx, r)
				if err != nil {
					return nil, err
				}
				for _, o := range scores {
					b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: s.Base + "/" + o.Ref() + "/_history/" + o.VersionID(), Resource: o.Body,
						Request: &fhir.EntryRequest{Method: "PUT", URL: o.Ref()}, Response: &fhir.EntryResponse{Status: "200 OK"}})
				}
			}
			continue
		}
		b.Entries = append(b.Entries, entry)
	}
	return b.Marshal(), nil
}

// SetSubscriptionStatus records a subscription's new status (the outcome
// of a handshake: active, or error with the reason; off when it is ended).
// With version above 0 it applies only while that version is current: a
// handshake confirms the endpoint of the version it was made for, and one
// that an update overtook is left to the update's own handshake.
func (s *Service) SetSubscriptionStatus(ctx context.Context, id, status, reason string, version int) error {
	for attempt := 0; attempt < queue.MaxAttempts; attempt++ {
		cur, err := s.Store.Read(ctx, topic.TypeSubscription, id)
		if err != nil {
			return err
		}
		if version > 0 && cur.Version != version {
			return nil
		}
		var m map[string]any
		_ = json.Unmarshal(cur.Body, &m)
		if m["status"] == "off" {
			return nil // deleted meanwhile
		}
		m["status"] = status
		delete(m, "error")
		if reason != "" {
			m["error"] = reason
		}
		delete(m, "meta")
		now := gateway.NextVersionTime(s.Now(), cur.LastUpdated)
		body, _ := json.Marshal(m)
		obj, err := fhir.ParseResource(body, fhir.ParseOptions{})
		if err != nil {
			return err
		}
		next := &gateway.Resource{Type: topic.TypeSubscription, ID: id, Version: cur.Version + 1, LastUpdated: now, Owner: cur.Owner,
			Body: obj.WithServerFields(id, strconv.Itoa(cur.Version+1), gateway.Instant(now))}
		c := &gateway.Commit{Writes: []gateway.Write{{Resource: next, Expect: cur.Version,
			Terms: []string{gateway.StatusTerm(status), gateway.ClientTerm(cur.Owner)}}}}
		if status == "active" {
			// Events that waited while it was in error (or arrived during
			// the handshake) go out now; with none, the job finds nothing.
			c.Jobs = []gateway.Job{queue.SendJob(id, cur.Owner)}
		}
		res, err := s.Commit(ctx, c)
		if err != nil {
			return err
		}
		if res.OK() {
			return nil
		}
	}
	return fmt.Errorf("subscription %s kept changing", id)
}
