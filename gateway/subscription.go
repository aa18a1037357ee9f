package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/fhir"
)

// Subscriptions follow the R5 Backport IG on R4: a GP system subscribes to
// the Gravity Task topic, filtered, with a rest-hook channel.
const (
	TypeSubscription = "Subscription"
	TaskTopic        = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
	backport         = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	statusProfile    = backport + "backport-subscription-status-r4"
)

// Payload contents of a notification.
const (
	PayloadEmpty        = "empty"
	PayloadIDOnly       = "id-only"
	PayloadFullResource = "full-resource"
)

// SubscriptionView is what Signpost reads from a Subscription.
type SubscriptionView struct {
	ID        string
	Status    string
	Endpoint  string
	Payload   string
	Headers   map[string]string
	Heartbeat time.Duration
	Filters   []url.Values // each "Task?..." filter; all must match (AND)
}

type subscriptionJSON struct {
	Status    string `json:"status"`
	Criteria  string `json:"criteria"`
	XCriteria *struct {
		Extension []extension `json:"extension"`
	} `json:"_criteria"`
	Channel struct {
		Extension []extension `json:"extension"`
		Type      string      `json:"type"`
		Endpoint  string      `json:"endpoint"`
		Payload   string      `json:"payload"`
		XPayload  *struct {
			Extension []extension `json:"extension"`
		} `json:"_payload"`
		Header []string `json:"header"`
	} `json:"channel"`
}

type extension struct {
	URL              string  `json:"url"`
	ValueString      *string `json:"valueString"`
	ValueCode        *string `json:"valueCode"`
	ValueUnsignedInt *int    `json:"valueUnsignedInt"`
	ValuePositiveInt *int    `json:"valuePositiveInt"`
}

// subscriptionParams are the filters Signpost evaluates on Task changes.
var subscriptionParams = map[string]bool{"requester": true, "status": true, "_id": true}

// ReadSubscription reads and checks a Subscription, reporting every problem.
func ReadSubscription(body []byte, id string) (*SubscriptionView, error) {
	var s subscriptionJSON
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, newError(KindInvalid, fhir.IssueStructure, "Subscription", "the Subscription has elements of the wrong JSON type")
	}
	var p Problems
	v := &SubscriptionView{ID: id, Status: s.Status, Endpoint: s.Channel.Endpoint, Payload: PayloadIDOnly, Headers: map[string]string{}}
	if s.Criteria != TaskTopic {
		p.add(fhir.IssueNotSupported, "Subscription.criteria", "criteria must be the topic %s", TaskTopic)
	}
	if s.XCriteria != nil {
		for i, e := range s.XCriteria.Extension {
			if e.URL != backport+"backport-filter-criteria" || e.ValueString == nil {
				continue
			}
			q, ok := strings.CutPrefix(*e.ValueString, "Task?")
			f, err := url.ParseQuery(q)
			if !ok || err != nil {
				p.add(fhir.IssueInvalid, "Subscription.criteria.extension["+strconv.Itoa(i)+"]", "a filter is Task?name=value&...")
				continue
			}
			for name := range f {
				if !subscriptionParams[name] {
					p.add(fhir.IssueNotSupported, "Subscription.criteria.extension["+strconv.Itoa(i)+"]", "filters may use requester, status and _id")
				}
			}
			v.Filters = append(v.Filters, f)
		}
	}
	if s.Channel.Type != "rest-hook" {
		p.add(fhir.IssueNotSupported, "Subscription.channel.type", "channel.type must be rest-hook")
	}
	if u, err := url.Parse(s.Channel.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		p.add(fhir.IssueInvalid, "Subscription.channel.endpoint", "channel.endpoint must be an absolute http(s) URL")
	}
	for _, e := range s.Channel.Extension {
		if e.URL == backport+"backport-heartbeat-period" {
			n := e.ValueUnsignedInt
			if n == nil {
				n = e.ValuePositiveInt
			}
			if n != nil && *n > 0 {
				v.Heartbeat = time.Duration(*n) * time.Second
			}
		}
	}
	if s.Channel.XPayload != nil {
		for _, e := range s.Channel.XPayload.Extension {
			if e.URL == backport+"backport-payload-content" && e.ValueCode != nil {
				v.Payload = *e.ValueCode
			}
		}
	}
	switch v.Payload {
	case PayloadEmpty, PayloadIDOnly, PayloadFullResource:
	default:
		p.add(fhir.IssueCodeInvalid, "Subscription.channel.payload", "backport-payload-content must be empty, id-only or full-resource")
	}
	for i, h := range s.Channel.Header {
		expr := "Subscription.channel.header[" + strconv.Itoa(i) + "]"
		name, value, ok := strings.Cut(h, ":")
		switch {
		case !ok || !headerToken(strings.TrimSpace(name)):
			p.add(fhir.IssueInvalid, expr, "a header is \"Name: value\", its name an HTTP token (letters, digits and !#$%%&'*+-.^_`|~)")
			continue
		case !headerValue(value):
			// It is sent as an HTTP header with every notification: a NUL,
			// CR or LF would end or split it.
			p.add(fhir.IssueInvalid, expr, "a header's value may hold no control characters (NUL, CR, LF and the like; tab is allowed)")
			continue
		}
		v.Headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return v, p.err(KindInvalid)
}

// DefaultMaxSubscriptions is how many subscriptions one GP system may have
// that are not ended, unless configured otherwise. Each is sent every change
// to the client's referrals and its heartbeats: a few per system (one per
// endpoint, one per filter) is the use, and without a cap a client could
// make every change fan out without bound.
const DefaultMaxSubscriptions = 20

// liveSubscription are the statuses of a subscription not ended: each is
// numbered every event, and counts against the cap.
var liveSubscription = []string{"requested", "active", "error"}

// subscriptionStatuses is the required binding of Subscription.status.
var subscriptionStatuses = newValueSet("requested", "active", "error", "off")

// planSubscription stores a Subscription as requested (its status is the
// server's to set) and queues its handshake. A new one is created with
// POST; an update (PUT, the subscriber's own) is confirmed by a handshake
// as a new one is, which is also how a subscription in error is made
// active again: it keeps its event numbers, and the events it has not
// received (those made while it was in error included) are sent once the
// handshake succeeds. An update with status off ends it, as DELETE does.
func (s *Service) planSubscription(ctx context.Context, pl *plan, r *Request) (*Outcome, error) {
	if pl.caller.Kind == CallerProvider {
		return nil, newError(KindForbidden, fhir.IssueForbidden, "", "subscriptions are for the GP systems that make referrals")
	}
	if _, err := ReadSubscription(r.obj.Bytes(), r.id); err != nil {
		return nil, err
	}
	version, expect := 1, 0
	status := "requested"
	revived := false // an update of an ended subscription starts it again
	if r.Method == "PUT" {
		var p Problems
		asked := checkCode(&p, r.obj, TypeSubscription, "status", subscriptionStatuses, true)
		if err := p.err(KindInvalid); err != nil {
			return nil, err
		}
		cur, exp, err := s.current(ctx, pl, r)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, newError(KindNotFound, fhir.IssueNotFound, "",
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
	if r.Method == "POST" || revived {
		if err := s.planSubscriptionCap(ctx, pl); err != nil {
			return nil, err
		}
	}
	body := appendMembers(withoutMember(withoutMember(r.obj.WithServerFields(r.id, strconv.Itoa(version), Instant(pl.now)), "status"), "error"),
		map[string]any{"status": status})
	out := pl.addWrite(r, body, version, expect, r.pinsVersion(), []string{"status=" + status}, nil)
	if status == "requested" {
		pl.commit.Jobs = append(pl.commit.Jobs, Job{Queue: QueueSubscription, Fields: []string{
			"event", "handshake", "subscription", r.id, "client", out.Resource.Owner, "version", strconv.Itoa(version)}})
	}
	return out, nil
}

// planSubscriptionCap refuses a new subscription over the client's cap,
// and makes the commit check the count again, in the same step as the
// write, so that concurrent requests cannot each find room for one.
func (s *Service) planSubscriptionCap(ctx context.Context, pl *plan) error {
	group := make([]string, len(liveSubscription))
	for i, st := range liveSubscription {
		group[i] = "status=" + st
	}
	q := [][]string{group, {clientTerm(pl.caller.ClientID)}}
	_, n, err := s.store.Search(ctx, &StoreQuery{Type: TypeSubscription, Groups: q, Count: 1})
	if err != nil {
		return err
	}
	// Others of this plan (a transaction) count too.
	room := s.maxSubs
	for _, c := range pl.commit.Criteria {
		if c.Type == TypeSubscription && c.Limit > 0 {
			room--
		}
	}
	if n >= room {
		return newError(KindUnprocessable, fhir.IssueBusinessRule, "Subscription",
			"a GP system may have at most %d subscriptions that are not ended (requested, active or error); it has %d. End one (DELETE, or an update with status off) first", s.maxSubs, n)
	}
	pl.commit.Criteria = append(pl.commit.Criteria, Criteria{Type: TypeSubscription, Groups: q, Limit: room})
	return nil
}

// SubscriptionStatus is the $status operation: the subscription's status
// and how many events it has had, so a subscriber can tell if it missed one.
func (s *Service) SubscriptionStatus(ctx context.Context, caller Caller, id string) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if _, err := s.readVisible(ctx, caller, TypeSubscription, id); errors.Is(err, ErrNotFound) {
		return nil, notFound(TypeSubscription, id)
	} else if err != nil {
		return nil, err
	}
	sub, err := s.SubscriptionByID(ctx, id)
	if err != nil {
		return nil, err
	}
	n, err := s.store.EventCount(ctx, id)
	if err != nil {
		return nil, err
	}
	status, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "meta": map[string]any{"profile": []string{statusProfile}},
		"parameter": []map[string]any{
			{"name": "subscription", "valueReference": map[string]string{"reference": s.base + "/" + TypeSubscription + "/" + id}},
			{"name": "topic", "valueCanonical": TaskTopic},
			{"name": "status", "valueCode": sub.Status},
			{"name": "type", "valueCode": "query-status"},
			{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(n, 10)},
		}})
	b := fhir.Bundle{ID: NewID(), Type: "searchset", Timestamp: Instant(s.now()), Total: 1,
		Entries: []fhir.BundleEntry{{FullURL: "urn:uuid:" + NewID(), Resource: status, Search: "match"}}}
	return b.Marshal(), nil
}

// EndSubscription ends a subscription (DELETE): its status becomes off and
// nothing more is sent to it.
func (s *Service) EndSubscription(ctx context.Context, caller Caller, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if _, err := s.readVisible(ctx, caller, TypeSubscription, id); errors.Is(err, ErrNotFound) {
		return notFound(TypeSubscription, id)
	} else if err != nil {
		return err
	}
	return s.SetSubscriptionStatus(ctx, id, "off", "", 0)
}

// headerToken reports whether s is a valid HTTP header name (an RFC 9110 token).
func headerToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

// headerValue reports whether s may be sent as an HTTP header value: no
// control characters other than horizontal tab (RFC 9110 field-value).
func headerValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Matches reports whether a Task change is one the subscription asked for.
func (v *SubscriptionView) Matches(task *TaskView, requesterTerms []string) bool {
	for _, f := range v.Filters {
		for name, values := range f {
			ok := false
			for _, val := range strings.Split(strings.Join(values, ","), ",") {
				switch name {
				case "status":
					ok = ok || task.Status == val
				case "_id":
					ok = ok || task.ID == val
				case "requester":
					for _, t := range requesterTerms {
						ok = ok || t == "requester="+val || t == "requester:identifier="+val
					}
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

// SubscriptionByID reads a subscription, whoever's it is (for the workers).
func (s *Service) SubscriptionByID(ctx context.Context, id string) (*SubscriptionView, error) {
	r, err := s.store.Read(ctx, TypeSubscription, id)
	if err != nil {
		return nil, err
	}
	return ReadSubscription(r.Body, id) // with its stored status
}

// Subscribers lists the active subscriptions of a client.
func (s *Service) Subscribers(ctx context.Context, client string) ([]*SubscriptionView, error) {
	return s.subscriptionsOf(ctx, client, "active")
}

// subscriptionsOf lists a client's subscriptions in the given statuses.
func (s *Service) subscriptionsOf(ctx context.Context, client string, statuses ...string) ([]*SubscriptionView, error) {
	group := make([]string, len(statuses))
	for i, st := range statuses {
		group[i] = "status=" + st
	}
	ids, _, err := s.store.Search(ctx, &StoreQuery{Type: TypeSubscription, Groups: [][]string{group, {clientTerm(client)}}, Count: MaxCount})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = TypeSubscription + "/" + id
	}
	subs, err := s.store.ReadMany(ctx, refs)
	if err != nil {
		return nil, err
	}
	out := make([]*SubscriptionView, 0, len(subs))
	for _, r := range subs {
		if v, err := ReadSubscription(r.Body, r.ID); err == nil { // with its stored status
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
func (s *Service) MatchingSubscriptions(ctx context.Context, taskID string, version int) (*Resource, []*SubscriptionView, error) {
	task, err := s.store.ReadVersion(ctx, TypeTask, taskID, version)
	if err != nil {
		return nil, nil, err
	}
	view, err := ReadTask(task.Body)
	if err != nil {
		return nil, nil, err
	}
	view.ID = task.ID
	var t struct {
		Requester *refJSON `json:"requester"`
	}
	_ = json.Unmarshal(task.Body, &t)
	var terms []string
	if t.Requester != nil {
		if t.Requester.Reference != "" {
			terms = append(terms, "requester="+t.Requester.Reference)
		}
		if t.Requester.Identifier != nil {
			terms = append(terms, "requester:identifier="+t.Requester.Identifier.Value, "requester:identifier="+t.Requester.Identifier.System+"|"+t.Requester.Identifier.Value)
			terms = append(terms, "requester="+t.Requester.Identifier.Value)
		}
	}
	subs, err := s.subscriptionsOf(ctx, task.Owner, liveSubscription...)
	if err != nil {
		return nil, nil, err
	}
	var out []*SubscriptionView
	for _, sub := range subs {
		if sub.Matches(view, terms) {
			out = append(out, sub)
		}
	}
	return task, out, nil
}

type refJSON struct {
	Reference  string `json:"reference"`
	Identifier *struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

// Event is one notification event of a subscription.
type Event struct {
	Number    int64
	Timestamp time.Time
	Task      string // "Task/id"
	Version   string
}

// NotificationBundle renders a notification (Bundle of type history) with
// the subscription status first, per the Backport IG.
func (s *Service) NotificationBundle(ctx context.Context, sub *SubscriptionView, kind string, since int64, events []Event) ([]byte, error) {
	status := sub.Status
	if status == "" {
		status = "active"
	}
	params := []map[string]any{
		{"name": "subscription", "valueReference": map[string]string{"reference": s.base + "/" + TypeSubscription + "/" + sub.ID}},
		{"name": "topic", "valueCanonical": TaskTopic},
		{"name": "status", "valueCode": status},
		{"name": "type", "valueCode": kind},
		{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(since, 10)},
	}
	for _, e := range events {
		part := []map[string]any{
			{"name": "event-number", "valueString": strconv.FormatInt(e.Number, 10)},
			{"name": "timestamp", "valueInstant": Instant(e.Timestamp)},
		}
		if sub.Payload != PayloadEmpty {
			part = append(part, map[string]any{"name": "focus", "valueReference": map[string]string{"reference": s.base + "/" + e.Task}})
		}
		params = append(params, map[string]any{"name": "notification-event", "part": part})
	}
	statusParams, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "meta": map[string]any{"profile": []string{statusProfile}}, "parameter": params})
	// A history Bundle needs a request on every entry (R4 bdl-3): the
	// status as from $status, each focus as the update that made it.
	b := fhir.Bundle{ID: NewID(), Type: "history", Timestamp: Instant(s.now()), Total: -1,
		Entries: []fhir.BundleEntry{{FullURL: "urn:uuid:" + NewID(), Resource: statusParams,
			Request:  &fhir.EntryRequest{Method: "GET", URL: s.base + "/" + TypeSubscription + "/" + sub.ID + "/$status"},
			Response: &fhir.EntryResponse{Status: "200 OK"}}}}
	for _, e := range events {
		if sub.Payload == PayloadEmpty {
			continue
		}
		entry := fhir.BundleEntry{FullURL: s.base + "/" + e.Task + "/_history/" + e.Version,
			Request: &fhir.EntryRequest{Method: "PUT", URL: e.Task}, Response: &fhir.EntryResponse{Status: "200 OK"}}
		if sub.Payload == PayloadFullResource {
			id := strings.TrimPrefix(e.Task, TypeTask+"/")
			v, _ := strconv.Atoi(e.Version)
			r, err := s.store.ReadVersion(ctx, TypeTask, id, v)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			if r != nil {
				entry.Resource = r.Body
			}
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
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, err := s.store.Read(ctx, TypeSubscription, id)
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
		now := s.now().UTC().Truncate(time.Millisecond)
		body, _ := json.Marshal(m)
		obj, err := fhir.ParseResource(body, fhir.ParseOptions{})
		if err != nil {
			return err
		}
		next := &Resource{Type: TypeSubscription, ID: id, Version: cur.Version + 1, LastUpdated: now, Owner: cur.Owner,
			Body: obj.WithServerFields(id, strconv.Itoa(cur.Version+1), Instant(now))}
		c := &Commit{Writes: []Write{{Resource: next, Expect: cur.Version,
			Terms: []string{"status=" + status, clientTerm(cur.Owner)}}}}
		if status == "active" {
			// Events that waited while it was in error (or arrived during
			// the handshake) go out now; with none, the job finds nothing.
			c.Jobs = []Job{{Queue: QueueSubscription, Fields: []string{
				"event", "send", "subscription", id, "client", cur.Owner}}}
		}
		res, err := s.commit(ctx, c)
		if err != nil {
			return err
		}
		if res.OK() {
			return nil
		}
	}
	return fmt.Errorf("subscription %s kept changing", id)
}
