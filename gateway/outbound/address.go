package outbound

import (
	"errors"
	"net/netip"
)

// ErrForbiddenAddress is the error every refusal by the address rules wraps.
// A refused request surfaces from http.Client.Do as a *url.Error around the
// dial error, and errors.Is(err, ErrForbiddenAddress) sees through both.
var ErrForbiddenAddress = errors.New("outbound: destination address not allowed")

// ForbiddenAddressError reports an address the rules refuse. It wraps
// ErrForbiddenAddress. Its message names the address class and the address
// (never a URL, so no query string can leak into logs).
type ForbiddenAddressError struct {
	// Addr is the refused address, as dialled (zone removed).
	Addr netip.Addr
	// Host is set instead of Addr when a host name was refused statically
	// by CheckURL ("localhost").
	Host string
	// Class describes the address class with its article, for example
	// "a loopback address" or "a NAT64 address embedding a private address".
	Class string
}

func (e *ForbiddenAddressError) Error() string {
	what := e.Host
	if what == "" {
		what = e.Addr.String()
	}
	return "outbound call to " + e.Class + " (" + what + ") refused; allow it with outbound_allow"
}

// Unwrap returns ErrForbiddenAddress.
func (e *ForbiddenAddressError) Unwrap() error { return ErrForbiddenAddress }

// CheckAddr applies the address rules described in the package comment to
// addr: it returns nil when addr is a public address or lies in one of the
// allow prefixes, and a *ForbiddenAddressError otherwise. An invalid
// (zero) address is refused.
func CheckAddr(addr netip.Addr, allow []netip.Prefix) error {
	addr = addr.WithZone("")
	if allowed(addr, allow) {
		return nil
	}
	class := classify(addr)
	if class == "" {
		return nil
	}
	return &ForbiddenAddressError{Addr: addr, Class: class}
}

// allowed reports whether addr, as given or unmapped, is in one of the
// prefixes.
func allowed(addr netip.Addr, allow []netip.Prefix) bool {
	if !addr.IsValid() {
		return false
	}
	un := addr.Unmap()
	for _, p := range allow {
		if !p.IsValid() {
			continue
		}
		if p.Contains(addr) || p.Contains(un) {
			return true
		}
	}
	return false
}

type rule struct {
	prefix netip.Prefix
	class  string
}

func rules(list ...string) []rule {
	out := make([]rule, 0, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		out = append(out, rule{netip.MustParsePrefix(list[i]), list[i+1]})
	}
	return out
}

// Order matters: the first matching prefix names the class, so specific
// prefixes come before the ranges that contain them.
var v4Rules = rules(
	"0.0.0.0/32", "an unspecified address",
	"0.0.0.0/8", `a "this network" address`,
	"127.0.0.0/8", "a loopback address",
	"10.0.0.0/8", "a private (RFC 1918) address",
	"172.16.0.0/12", "a private (RFC 1918) address",
	"192.168.0.0/16", "a private (RFC 1918) address",
	"100.64.0.0/10", "a carrier-grade NAT address",
	"169.254.169.254/32", "a link-local address (cloud metadata service)",
	"169.254.0.0/16", "a link-local address",
	"192.0.0.0/24", "a reserved (IETF protocol assignments) address",
	"192.0.2.0/24", "a documentation address",
	"198.51.100.0/24", "a documentation address",
	"203.0.113.0/24", "a documentation address",
	"192.88.99.0/24", "a reserved (6to4 relay anycast) address",
	"198.18.0.0/15", "a benchmarking address",
	"224.0.0.0/4", "a multicast address",
	"255.255.255.255/32", "a broadcast address",
	"240.0.0.0/4", "a reserved address",
)

var v6Rules = rules(
	"::/128", "an unspecified address",
	"::1/128", "a loopback address",
	"fd00:ec2::254/128", "a unique-local address (cloud metadata service)",
	"fc00::/7", "a unique-local address",
	"fe80::/10", "a link-local address",
	"fec0::/10", "a site-local address",
	"ff00::/8", "a multicast address",
	"2001:db8::/32", "a documentation address",
	"3fff::/20", "a documentation address",
	"100::/64", "a discard-only address",
	"2001::/32", "a Teredo address",
	"2001:2::/48", "a benchmarking address",
	"2001:10::/28", "a reserved (ORCHID) address",
	"2001:20::/28", "a reserved (ORCHIDv2) address",
	"64:ff9b:1::/48", "a local-use NAT64 address",
)

var (
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	v4Compat    = netip.MustParsePrefix("::/96")
	v4Translate = netip.MustParsePrefix("::ffff:0:0:0/96")
	global6     = netip.MustParsePrefix("2000::/3")
)

// classify returns the class of a refused address (with its article), or ""
// when the address is public.
func classify(addr netip.Addr) string {
	if !addr.IsValid() {
		return "an invalid address"
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		for _, r := range v4Rules {
			if r.prefix.Contains(addr) {
				return r.class
			}
		}
		return ""
	}
	for _, r := range v6Rules {
		if r.prefix.Contains(addr) {
			return r.class
		}
	}
	b := addr.As16()
	switch {
	case nat64.Contains(addr):
		if c := classify(netip.AddrFrom4([4]byte(b[12:16]))); c != "" {
			return "a NAT64 address embedding " + c
		}
		return ""
	case sixToFour.Contains(addr):
		if c := classify(netip.AddrFrom4([4]byte(b[2:6]))); c != "" {
			return "a 6to4 address embedding " + c
		}
		return ""
	case v4Compat.Contains(addr):
		if c := classify(netip.AddrFrom4([4]byte(b[12:16]))); c != "" {
			return "an IPv4-compatible address embedding " + c
		}
		return "an IPv4-compatible address (deprecated)"
	case v4Translate.Contains(addr):
		if c := classify(netip.AddrFrom4([4]byte(b[12:16]))); c != "" {
			return "an IPv4-translated address embedding " + c
		}
		return "an IPv4-translated address"
	case !global6.Contains(addr):
		return "a reserved address"
	}
	return ""
}
