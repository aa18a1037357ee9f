package intake

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/topic"
)

// planSubscription stores a Subscription as requested (its status is the
// server's to set) and queues its handshake. A new one is created with
// POST; an update (PUT, the subscriber's own) is confirmed by a handshake
// as a new one is, which is also how a subscription in error is made
// active again: it keeps its event numbers, and the events it has not
// received (those made while it was in error included) are sent once the
// handshake succeeds. An update with status off ends it, as DELETE does.
func (s *Service) planSubscription(ctx context.Context, pl *plan, r *Request) (*gateway.Outcome, error) {
	if pl.caller.Kind == gateway.CallerProvider {
		return nil, gateway.NewError(gateway.KindForbidden, fhir.IssueForbidden, "", "subscriptions are for the GP systems that make referrals")
	}
	sub, err := topic.ReadSubscription(r.obj.Bytes(), r.id)
	if err != nil {
		return nil, err
	}
	version, expect := 1, 0
	status := "requested"
	revived := false // an update of an ended subscription starts it again
	if r.Method == "PUT" {
		var p gateway.Problems
		asked := conform.CheckCode(&p, r.obj, topic.TypeSubscription, "status", topic.SubscriptionStatuses, true)
		if err := p.Err(gateway.KindInvalid); err != nil {
			return nil, err
		}
		cur, exp, err := s.current(ctx, pl, r)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, "",
				"there is no Subscription %s to update; a Subscription is created with POST, which gives it its id", r.id)
		}
		version, expect = cur.Version+1, exp
		if asked == "off" {
			status = "off"
		}
		var was struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(cur.Body, &was)
		revived = was.Status == "off" && status != "off"
	}
	if status != "off" {
		// What it asks of Signpost (an update ending it asks nothing). The
		// owner's registration counts (addWrite's owner). The endpoint is
		// checked again at each send: a host name may come to resolve to
		// another address, and the registration may be withdrawn.
		owner := pl.caller.ClientID
		if r.current != nil {
			owner = r.current.Owner
		}
		if err := sub.CheckAsked(s.SubscriberRegistered(owner, sub.Endpoint)); err != nil {
			return nil, err
		}
	}
	if r.Method == "POST" || revived {
		if err := s.planSubscriptionCap(ctx, pl); err != nil {
			return nil, err
		}
	}
	body := fhir.AppendMembers(fhir.WithoutMember(fhir.WithoutMember(r.obj.WithServerFields(r.id, strconv.Itoa(version), gateway.Instant(pl.stampOf(r))), "status"), "error"),
		map[string]any{"status": status})
	out := pl.addWrite(r, body, version, expect, r.pinsVersion(), []string{gateway.StatusTerm(status)}, nil)
	if status == "requested" {
		pl.commit.Jobs = append(pl.commit.Jobs, queue.Handshake{SubscriptionID: r.id, Client: out.Resource.Owner, Version: version}.Job())
	}
	return out, nil
}

// planSubscriptionCap refuses a new subscription over the client's cap,
// and makes the commit check the count again, in the same step as the
// write, so that concurrent requests cannot each find room for one.
func (s *Service) planSubscriptionCap(ctx context.Context, pl *plan) error {
	group := make([]string, len(topic.LiveSubscriptionStatuses))
	for i, st := range topic.LiveSubscriptionStatuses {
		group[i] = gateway.StatusTerm(st)
	}
	q := [][]string{group, {gateway.ClientTerm(pl.caller.ClientID)}}
	_, n, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: topic.TypeSubscription, Groups: q, Count: 1})
	if err != nil {
		return err
	}
	// Others of this plan (a transaction) count too.
	room := s.MaxSubscriptions
	for _, c := range pl.commit.Criteria {
		if c.Type == topic.TypeSubscription && c.Limit > 0 {
			room--
		}
	}
	if n >= room {
		return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "Subscription",
			"a GP system may have at most %d subscriptions that are not ended (requested, active or error); it has %d. End one (DELETE, or an update with status off) first", s.MaxSubscriptions, n)
	}
	pl.commit.Criteria = append(pl.commit.Criteria, gateway.Criteria{Type: topic.TypeSubscription, Groups: q, Limit: room})
	return nil
}
