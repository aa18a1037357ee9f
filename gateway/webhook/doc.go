// Package webhook sends one message to a provider and says what happened,
// in a form the delivery worker acts on without looking at HTTP itself:
// errors decide retries.
//
// A voluntary-sector provider is told about a referral (or a change to one)
// by an HTTP POST to its endpoint, signed as Standard Webhooks 1.0
// describes. Sender.Send makes one attempt and returns a Result whose
// Outcome is one of:
//
//   - Delivered: the provider answered 2xx.
//   - Retry: try again later, after at least Result.RetryAfter when that is
//     set. Statuses 408, 425, 429 and 5xx; any 3xx (a redirect is a failed
//     delivery and is never followed); network errors, timeouts, connection
//     resets and refusals; a cancelled context.
//   - Permanent: retrying the same message cannot help. Any other 4xx; a
//     destination address the outbound rules refuse; a malformed Message
//     (no id, a URL that is not absolute http(s), an invalid header).
//   - Gone: the provider answered 410; the caller disables the endpoint.
//
// The retry schedule, jitter, dead-lettering and endpoint state belong to
// the caller. Result.Reason is a short English sentence for Task.statusReason
// and logs. It never contains the request body, the response body or the
// URL's query string (any of which may hold patient data); it may name the
// host.
//
// # Signing
//
// Each request carries webhook-id (Message.ID: the same on every retry of a
// delivery, so the receiver can use it as its idempotency key),
// webhook-timestamp (unix seconds, from the Sender's clock at the time of
// the attempt) and, when the message has secrets, webhook-signature:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one entry per secret,
// space-separated, so that a provider can rotate its secret without a gap.
// Secrets are written "whsec_" followed by the standard base64 of 24 to 64
// random bytes; ParseSecret decodes them and NewSecret makes one. Messages
// without secrets go out unsigned (a FHIR endpoint authenticated by
// Message.Headers["Authorization"], for instance).
//
// Verify is the receiving side, for Signpost's example provider, tests and
// providers' documentation. A provider should: take the raw body bytes
// before any JSON parsing; call Verify with its current secret(s) (the old
// and the new during rotation); answer 401 when Verify fails; and
// deduplicate on webhook-id.
//
// # Client
//
// Callers pass the *http.Client made by gateway/outbound: it refuses
// private, loopback and metadata addresses at dial time. Sender makes a
// shallow copy of it that follows no redirects and keeps no cookies, and
// gives it a 10 s time limit if it has none; the Transport, and so the
// connection pool, is shared. Send reads at most 64 KiB of a response body
// (the status is all it needs; reading a small body to the end lets the
// connection be reused) and discards it.
//
// A refused destination is recognised without importing outbound: by
// Sender.Permanent when the caller sets it (the delivery worker sets it to
// func(err error) bool { return errors.Is(err, outbound.ErrForbiddenAddress) }),
// and otherwise by an error in the chain whose own text contains
// "destination address not allowed", which is the text of
// outbound.ErrForbiddenAddress.
package webhook
