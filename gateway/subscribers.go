package gateway

import (
	"net"
	"net/url"
	"strings"
	"unicode/utf8"
)

// SubscriberOrigins says where a GP system's subscriptions may go beyond
// the public internet. A Subscription's endpoint (and the headers sent to
// it) is the client's choice, so it reaches public addresses only:
// outbound_allow is the operator's allowance for the endpoints it
// configured (a provider's webhook, a practice's FHIR server), not for
// any URL a client names. An endpoint under an origin the operator
// registered for that same GP system (clients[].subscription_origins) is
// the operator's choice too, and is held to outbound_allow as configured
// endpoints are. Checked when a Subscription is stored and at each send.
type SubscriberOrigins interface {
	// Registered reports whether endpoint's origin is registered for the
	// GP system client.
	Registered(client, endpoint string) bool
}

// Origins is the deployment's SubscriberOrigins: each GP system's
// registered origins, as Origin writes them.
type Origins map[string]map[string]bool

// NewOrigins reads the configured origins of each GP system; one that is
// not an origin is left out (configuration refuses it first).
func NewOrigins(byClient map[string][]string) Origins {
	o := Origins{}
	for client, list := range byClient {
		for _, raw := range list {
			if origin, ok := Origin(raw); ok {
				if o[client] == nil {
					o[client] = map[string]bool{}
				}
				o[client][origin] = true
			}
		}
	}
	return o
}

// Registered reports whether endpoint's origin is one of client's.
func (o Origins) Registered(client, endpoint string) bool {
	origin, ok := Origin(endpoint)
	return ok && o[client][origin]
}

// Origin is the origin of an absolute http(s) URL, written one way
// (scheme://host:port, lower case, the scheme's default port written out,
// no trailing dot), so that https://GP.example and https://gp.example:443/x
// are one origin and http://gp.example:8080 another. ok is false for
// anything else, and for a URL with user information.
func Origin(raw string) (origin string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme == "http" && port == "":
		port = "80"
	case scheme == "https" && port == "":
		port = "443"
	case scheme != "http" && scheme != "https":
		return "", false
	}
	host := u.Hostname()
	// A name outside ASCII is dialled by net/http through IDNA, which
	// lower-casing would not match (U+0130 is "i" here, "i" and U+0307
	// there): such an origin is written in its ASCII (xn--) form, or is
	// none.
	if host == "" || strings.ContainsFunc(host, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return "", false
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return "", false
	}
	return scheme + "://" + net.JoinHostPort(host, port), true
}
