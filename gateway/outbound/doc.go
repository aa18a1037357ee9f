// Package outbound is the single factory of HTTP clients for the calls
// Signpost makes to the outside world: provider webhooks, provider FHIR
// servers, GP systems' FHIR servers and JWKS URLs.
//
// Those URLs come from configuration and from data (a referral may name the
// FHIR server of the GP practice that sent it), so a hostile or mistaken URL
// must not let Signpost reach services on its own network: loopback admin
// ports, Redis, the cloud metadata service at 169.254.169.254 and the like.
// This is server-side request forgery (SSRF) protection, and it works in two
// places:
//
//   - CheckURL is a static check for validating configuration and stored
//     data early: the URL must be absolute http or https, carry no user
//     information and name a host; an IP literal host, or the name
//     "localhost", must pass the same address rules as a connection.
//   - NewClient returns an *http.Client whose dialer checks the address it
//     is about to connect to, after DNS resolution, in net.Dialer's
//     ControlContext hook. Every connection is checked, including re-dials
//     of keep-alive pools and each address tried by Happy Eyeballs, so a
//     name that resolves to a public address once and to 127.0.0.1 the next
//     time (DNS rebinding) is still refused.
//
// CheckAddr holds the address rules. Unless an address falls in one of the
// prefixes of Options.Allow (the outbound_allow setting, for on-premises
// deployments and tests) it is refused when it is, after unmapping
// IPv4-mapped IPv6 (::ffff:a.b.c.d) to IPv4:
//
//   - IPv4: unspecified 0.0.0.0 and "this network" 0.0.0.0/8, loopback
//     127.0.0.0/8, RFC 1918 private 10/8, 172.16/12 and 192.168/16,
//     carrier-grade NAT 100.64/10, link-local 169.254/16 (with the cloud
//     metadata address), IETF protocol assignments 192.0.0.0/24, the
//     deprecated 6to4 relay anycast 192.88.99.0/24, documentation 192.0.2/24,
//     198.51.100/24 and 203.0.113/24, benchmarking 198.18/15, multicast
//     224/4, broadcast 255.255.255.255 and the rest of reserved 240/4.
//   - IPv6: unspecified ::, loopback ::1, unique-local fc00::/7 (with the
//     AWS metadata address fd00:ec2::254), link-local fe80::/10, deprecated
//     site-local fec0::/10, multicast ff00::/8, documentation 2001:db8::/32
//     and 3fff::/20, discard-only 100::/64, Teredo 2001::/32 (its tunnelled
//     IPv4 endpoints cannot be checked), benchmarking 2001:2::/48, ORCHID
//     2001:10::/28 and 2001:20::/28, local-use NAT64 64:ff9b:1::/48, and
//     anything else outside global unicast 2000::/3.
//   - IPv6 forms that embed an IPv4 address are judged by that address:
//     NAT64 64:ff9b::/96 (RFC 6052) and 6to4 2002::/16 (RFC 3056) are
//     refused when the embedded IPv4 address would be; the deprecated
//     IPv4-compatible ::/96 and SIIT IPv4-translated ::ffff:0:0:0/96 forms
//     are always refused.
//
// An Allow prefix is matched against the address as dialled and against its
// unmapped form, so 127.0.0.0/8 also allows ::ffff:127.0.0.1; an embedding
// form (NAT64, 6to4) needs its own IPv6 prefix in Allow.
//
// Clients from NewClient also follow no redirects (the caller sees the 3xx
// response: Standard Webhooks counts a 3xx as a failed delivery, and a
// redirect is the easiest way to point a vetted URL somewhere else), ignore
// proxy settings from the environment (a proxy would connect on Signpost's
// behalf, out of reach of the address check), require TLS 1.2 or later, cap
// response bodies at Options.MaxResponseBytes and bound the whole request by
// Options.Timeout.
//
// The package imports nothing of the project, only the standard library, so
// any package may use it.
package outbound
