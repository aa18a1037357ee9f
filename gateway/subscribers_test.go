package gateway_test

import (
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// An origin is written one way, so that a registered origin matches every
// spelling of an endpoint under it and nothing else: another port, another
// scheme or another host is another origin.
func TestOriginsMatchEndpointsUnderThem(t *testing.T) {
	t.Parallel()
	o := gateway.NewOrigins(map[string][]string{"practice-a": {"https://GP.example", "http://10.0.0.7:8080/", "https://[FD00::7]:8443"}})
	for endpoint, want := range map[string]bool{
		"https://gp.example/hook":          true,
		"https://gp.example:443/a?b=c":     true,
		"https://gp.example./hook":         true,
		"http://10.0.0.7:8080/notify":      true,
		"https://[fd00::7]:8443/x":         true,
		"http://gp.example/hook":           false, // another scheme (port 80)
		"https://gp.example:8443/hook":     false,
		"https://evil.gp.example/hook":     false,
		"http://10.0.0.7:8081/notify":      false,
		"http://10.0.0.8:8080/notify":      false,
		"https://user@gp.example/hook":     false,
		"gp.example/hook":                  false,
		"ftp://gp.example/hook":            false,
		"https://gp.example.attacker/hook": false,
	} {
		if got := o.Registered("practice-a", endpoint); got != want {
			t.Errorf("%s registered for practice-a: %v, want %v", endpoint, got, want)
		}
		if o.Registered("practice-b", endpoint) {
			t.Errorf("%s registered for practice-b, which has no origins", endpoint)
		}
	}
}

// An endpoint matches a registered origin only when it names the host
// net/http dials. A non-ASCII host is dialled through IDNA (U+0130, capital
// I with dot above, becomes "i" and U+0307: an xn-- name), where lower-casing
// would take it to a plain "i": https://\u0130ntranet.gp.example counted as
// under https://intranet.gp.example and went out through the client held to
// outbound_allow, to a name the operator never registered.
func TestOriginMatchesOnlyTheHostDialled(t *testing.T) {
	t.Parallel()
	o := gateway.NewOrigins(map[string][]string{"practice-a": {"https://intranet.gp.example"}})
	if !o.Registered("practice-a", "https://intranet.gp.example/hook") {
		t.Fatal("the registered origin itself does not match")
	}
	for _, endpoint := range []string{
		"https://\u0130ntranet.gp.example/hook",     // raw UTF-8
		"https://%C4%B0ntranet.gp.example/hook",     // percent-encoded
		"https://\u0130NTRANET.GP.EXAMPLE:443/hook", // with the default port
	} {
		if o.Registered("practice-a", endpoint) {
			t.Errorf("%s counts as under https://intranet.gp.example, but net/http dials another host name for it", endpoint)
		}
	}
}
