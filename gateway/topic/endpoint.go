package topic

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/outbound"
)

// MinHeartbeat is the shortest heartbeat period Signpost sends. The
// Backport IG sets no floor (backport-heartbeat-period is any number of
// seconds), and a heartbeat only tells a subscriber its channel is alive:
// a minute is often enough for that, while a period of a second would let
// each GP system keep Signpost POSTing to a URL of its choosing many
// times a second (twenty subscriptions, twenty a second).
const MinHeartbeat = time.Minute

// CheckAsked holds a Subscription a GP system sends to what a client may
// ask of Signpost, every problem at once (422, each element named): a
// heartbeat period of at least MinHeartbeat, and an endpoint at a public
// address unless it is under an origin registered for the GP system
// (registered, see gateway.SubscriberOrigins). Subscriptions stored before
// these rules are read as they are (their heartbeats sent at the floor,
// their endpoints checked as dialled).
func (v *SubscriptionView) CheckAsked(registered bool) error {
	var p gateway.Problems
	if v.askedHeartbeat > 0 && v.askedHeartbeat < MinHeartbeat {
		p.Add(fhir.IssueBusinessRule, v.heartbeatAt, "backport-heartbeat-period is %d seconds; heartbeats are sent at most once every %d seconds, so ask for %d or more (or leave it out for none)",
			int(v.askedHeartbeat/time.Second), int(MinHeartbeat/time.Second), int(MinHeartbeat/time.Second))
	}
	if !registered {
		checkEndpoint(&p, v.Endpoint)
	}
	return p.Err(gateway.KindUnprocessable)
}

// checkEndpoint checks an endpoint the client chose as far as can be told
// without resolving it (an IP literal, localhost): a host name is checked
// after resolution at each send, as DNS may change. An endpoint under a
// registered origin is left to outbound_allow at each send, as configured
// endpoints are.
func checkEndpoint(p *gateway.Problems, endpoint string) {
	err := outbound.CheckURL(endpoint, nil)
	if err == nil {
		return
	}
	const expr = "Subscription.channel.endpoint"
	const expected = "channel.endpoint must be an http(s) URL of a public address"
	const registration = "; an endpoint on a private network is sent to only when the operator registers its origin (scheme://host:port) for this GP system"
	var forbidden *outbound.ForbiddenAddressError
	if errors.As(err, &forbidden) {
		p.Add(fhir.IssueBusinessRule, expr, "%s, not %s%s", expected, forbidden.Class, registration)
		return
	}
	// CheckURL's reasons never repeat the URL.
	p.Add(fhir.IssueInvalid, expr, "%s: %s", expected, strings.TrimPrefix(err.Error(), outbound.ErrInvalidURL.Error()+": "))
}

// heartbeatExpr names the i-th extension of Subscription.channel.
func heartbeatExpr(i int) string { return "Subscription.channel.extension[" + strconv.Itoa(i) + "]" }
