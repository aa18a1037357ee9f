package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidURL is wrapped by CheckURL's errors for URLs that are malformed
// or not absolute http(s). Refused addresses wrap ErrForbiddenAddress
// instead.
var ErrInvalidURL = errors.New("invalid outbound URL")

// CheckURL is the static check for an outbound URL found in configuration
// or data, for use when validating them. The URL must parse, be absolute
// with scheme http or https, carry no user information, and name a host
// (with, if present, a numeric port from 1 to 65535). When the host is an
// IP literal it must pass CheckAddr with allow; the name "localhost" (and
// any name under .localhost, RFC 6761) is treated as loopback; a host that
// looks numeric but is not a canonical IP address (such as "2130706433" or
// "127.1", which some resolvers read as 127.0.0.1) is rejected. Other host
// names are not resolved here: the client checks the resolved addresses
// when it connects.
//
// Error messages never repeat the URL, so they are safe to show and log.
func CheckURL(raw string, allow []netip.Prefix) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: not a valid URL", ErrInvalidURL)
	}
	if u.Scheme == "" {
		return fmt.Errorf("%w: must be an absolute http or https URL", ErrInvalidURL)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme must be http or https", ErrInvalidURL)
	}
	if u.Opaque != "" {
		return fmt.Errorf("%w: must be an absolute http or https URL with //host", ErrInvalidURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: must not contain user information (user:password@)", ErrInvalidURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: has no host", ErrInvalidURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port must be a number from 1 to 65535", ErrInvalidURL)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%w: empty port", ErrInvalidURL)
	}

	if addr, err := netip.ParseAddr(host); err == nil {
		return CheckAddr(addr, allow)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if looksNumeric(name) {
		return fmt.Errorf("%w: numeric host is not a canonical IP address", ErrInvalidURL)
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		if !allowed(netip.AddrFrom4([4]byte{127, 0, 0, 1}), allow) && !allowed(netip.IPv6Loopback(), allow) {
			return &ForbiddenAddressError{Host: host, Class: "a loopback address"}
		}
	}
	return nil
}

// looksNumeric reports whether the last label of a host name is a decimal,
// octal or hex number. No top-level domain is numeric, so such a name is
// an IP address in a form net/netip does not accept.
func looksNumeric(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	digits := last
	hex := false
	if strings.HasPrefix(last, "0x") {
		digits, hex = last[2:], true
	}
	for _, c := range digits {
		switch {
		case c >= '0' && c <= '9':
		case hex && c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return true
}
