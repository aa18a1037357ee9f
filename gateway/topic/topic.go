package topic

import (
	"github.com/signpost-health/signpost/gateway"

	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/fhir"
)

// Subscriptions follow the R5 Backport IG on R4: a GP system subscribes to
// the Gravity Task topic, filtered, with a rest-hook channel.
const (
	TypeSubscription          = "Subscription"
	TaskTopic                 = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
	backport                  = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	SubscriptionStatusProfile = backport + "backport-subscription-status-r4"
)

// Payload contents of a notification.
const (
	PayloadEmpty        = "empty"
	PayloadIDOnly       = "id-only"
	PayloadFullResource = "full-resource"
)

// SubscriptionView is what Signpost reads from a Subscription.
type SubscriptionView struct {
	ID       string
	Status   string
	Endpoint string
	Payload  string
	Headers  map[string]string
	// Heartbeat is the period of its heartbeats (0: none), never below
	// MinHeartbeat: one stored before the floor is sent at the floor.
	Heartbeat time.Duration
	Filters   []url.Values // each "Task?..." filter; all must match (AND)
	// Version is the version read (set by whoever read it from the store).
	Version int
	// askedHeartbeat is the period asked for, and heartbeatAt the element
	// asking it, for CheckAsked.
	askedHeartbeat time.Duration
	heartbeatAt    string
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
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueStructure, "Subscription", "the Subscription has elements of the wrong JSON type")
	}
	var p gateway.Problems
	v := &SubscriptionView{ID: id, Status: s.Status, Endpoint: s.Channel.Endpoint, Payload: PayloadIDOnly, Headers: map[string]string{}}
	if s.Criteria != TaskTopic {
		p.Add(fhir.IssueNotSupported, "Subscription.criteria", "criteria must be the topic %s", TaskTopic)
	}
	if s.XCriteria != nil {
		for i, e := range s.XCriteria.Extension {
			if e.URL != backport+"backport-filter-criteria" || e.ValueString == nil {
				continue
			}
			q, ok := strings.CutPrefix(*e.ValueString, "Task?")
			f, err := url.ParseQuery(q)
			if !ok || err != nil {
				p.Add(fhir.IssueInvalid, "Subscription.criteria.extension["+strconv.Itoa(i)+"]", "a filter is Task?name=value&...")
				continue
			}
			for name := range f {
				if !subscriptionParams[name] {
					p.Add(fhir.IssueNotSupported, "Subscription.criteria.extension["+strconv.Itoa(i)+"]", "filters may use requester, status and _id")
				}
			}
			v.Filters = append(v.Filters, f)
		}
	}
	if s.Channel.Type != "rest-hook" {
		p.Add(fhir.IssueNotSupported, "Subscription.channel.type", "channel.type must be rest-hook")
	}
	if u, err := url.Parse(s.Channel.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		p.Add(fhir.IssueInvalid, "Subscription.channel.endpoint", "channel.endpoint must be an absolute http(s) URL")
	}
	for i, e := range s.Channel.Extension {
		if e.URL == backport+"backport-heartbeat-period" {
			n := e.ValueUnsignedInt
			if n == nil {
				n = e.ValuePositiveInt
			}
			if n != nil && *n > 0 {
				v.askedHeartbeat, v.heartbeatAt = time.Duration(*n)*time.Second, heartbeatExpr(i)
				v.Heartbeat = max(v.askedHeartbeat, MinHeartbeat)
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
		p.Add(fhir.IssueCodeInvalid, "Subscription.channel.payload", "backport-payload-content must be empty, id-only or full-resource")
	}
	for i, h := range s.Channel.Header {
		expr := "Subscription.channel.header[" + strconv.Itoa(i) + "]"
		name, value, ok := strings.Cut(h, ":")
		switch {
		case !ok || !headerToken(strings.TrimSpace(name)):
			p.Add(fhir.IssueInvalid, expr, "a header is \"Name: value\", its name an HTTP token (letters, digits and !#$%%&'*+-.^_`|~)")
			continue
		case !headerValue(value):
			// It is sent as an HTTP header with every notification: a NUL,
			// CR or LF would end or split it.
			p.Add(fhir.IssueInvalid, expr, "a header's value may hold no control characters (NUL, CR, LF and the like; tab is allowed)")
			continue
		}
		v.Headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return v, p.Err(gateway.KindInvalid)
}

// LiveSubscriptionStatuses are the statuses of a subscription not ended: each is
// numbered every event, and counts against the cap.
var LiveSubscriptionStatuses = []string{"requested", "active", "error"}

// SubscriptionStatuses is the required binding of Subscription.status.
var SubscriptionStatuses = gateway.NewValueSet("requested", "active", "error", "off")

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
func (v *SubscriptionView) Matches(task *gateway.TaskView, requesterTerms []string) bool {
	for _, f := range v.Filters {
		for name, values := range f {
			ok := false
			for _, val := range strings.Split(strings.Join(values, ","), ",") {
				switch name {
				case "status":
					ok = ok || string(task.Status) == val
				case "_id":
					ok = ok || task.ID == val
				case "requester":
					for _, t := range requesterTerms {
						ok = ok || t == gateway.RequesterTerm(val) || t == gateway.RequesterIdentifierTerm(val)
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
