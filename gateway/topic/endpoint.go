package topic

import (
	"errors"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/outbound"
)

// CheckEndpoint is the check of a Subscription's endpoint when it is
// stored: one the client chose (registered false, see
// gateway.SubscriberOrigins) must name a public address, as far as can be
// told without resolving it (an IP literal or localhost); a host name is
// checked after resolution at each send, as DNS may change. An endpoint
// under an origin the operator registered for the GP system is left to
// outbound_allow at each send, as configured endpoints are.
func CheckEndpoint(endpoint string, registered bool) error {
	if registered {
		return nil
	}
	err := outbound.CheckURL(endpoint, nil)
	if err == nil {
		return nil
	}
	const expected = "channel.endpoint must be an http(s) URL of a public address"
	const registration = "; an endpoint on a private network is sent to only when the operator registers its origin (scheme://host:port) for this GP system"
	var forbidden *outbound.ForbiddenAddressError
	switch {
	case errors.As(err, &forbidden):
		return gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "Subscription.channel.endpoint",
			"%s, not %s%s", expected, forbidden.Class, registration)
	case errors.Is(err, outbound.ErrInvalidURL):
		// CheckURL's reasons never repeat the URL.
		reason := strings.TrimPrefix(err.Error(), outbound.ErrInvalidURL.Error()+": ")
		return gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, "Subscription.channel.endpoint", "%s: %s", expected, reason)
	}
	return err
}
