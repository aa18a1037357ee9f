package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of Standard Webhooks 1.0.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret in its written form.
const SecretPrefix = "whsec_"

// Secret length limits, in bytes after base64 decoding.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// DefaultTolerance is the clock difference Verify accepts, in either
// direction, when given a tolerance of zero or less.
const DefaultTolerance = 5 * time.Minute

// ErrInvalidSecret is wrapped by ParseSecret's errors.
var ErrInvalidSecret = errors.New("invalid webhook secret")

// Errors wrapped by Verify, for errors.Is.
var (
	// ErrNoSecrets: Verify was given no secret, or an empty one.
	ErrNoSecrets = errors.New("webhook: no verification secret configured")
	// ErrMissingHeader: webhook-id, webhook-timestamp or webhook-signature
	// is absent or empty.
	ErrMissingHeader = errors.New("webhook: missing header")
	// ErrInvalidTimestamp: webhook-timestamp is not a number of seconds.
	ErrInvalidTimestamp = errors.New("webhook: invalid webhook-timestamp")
	// ErrTimestampTooOld: the timestamp is further in the past than the
	// tolerance (a delayed or replayed message).
	ErrTimestampTooOld = errors.New("webhook: timestamp too old")
	// ErrTimestampTooNew: the timestamp is further in the future than the
	// tolerance (a clock problem, or a message made to be replayed later).
	ErrTimestampTooNew = errors.New("webhook: timestamp too far in the future")
	// ErrMalformedSignature: webhook-signature holds no well-formed
	// "v1,<base64 of 32 bytes>" entry.
	ErrMalformedSignature = errors.New("webhook: malformed webhook-signature")
	// ErrSignatureMismatch: no v1 signature matches any of the secrets
	// (wrong secret, or the id, timestamp or body were changed).
	ErrSignatureMismatch = errors.New("webhook: no matching signature")
)

// maxTimestamp bounds the timestamps Verify converts to a time.Time (about
// the year 36812), far beyond any tolerance, so that conversion cannot
// overflow.
const maxTimestamp = 1 << 40

// ParseSecret decodes a secret written as "whsec_" followed by the standard
// base64 encoding (with padding) of 24 to 64 bytes. Its errors wrap
// ErrInvalidSecret and never include the secret or any part of it.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: must start with %q", ErrInvalidSecret, SecretPrefix)
	}
	// The decoder skips CR and LF; a secret must not contain them.
	if strings.ContainsAny(rest, "\r\n") {
		return nil, fmt.Errorf("%w: contains a line break", ErrInvalidSecret)
	}
	// Reject oversize input before decoding it.
	if len(rest) > base64.StdEncoding.EncodedLen(MaxSecretBytes) {
		return nil, fmt.Errorf("%w: must encode %d to %d bytes", ErrInvalidSecret, MinSecretBytes, MaxSecretBytes)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil {
		// The decoder's message only gives an offset, but say less still.
		return nil, fmt.Errorf("%w: not standard base64 after %q", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: decodes to %d bytes, must be %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// NewSecret returns a new random secret of 32 bytes in its written form,
// "whsec_" + base64.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand, Go 1.24+)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Sign returns the webhook-signature header value for a message: one entry
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per secret, in order,
// separated by single spaces, where timestamp is ts in unix seconds. With no
// secrets it returns "".
func Sign(id string, ts time.Time, body []byte, secrets ...[]byte) string {
	var b strings.Builder
	for i, key := range secrets {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)))
	}
	return b.String()
}

// mac is HMAC-SHA256 with key over "{id}.{ts}.{body}".
func mac(key []byte, id string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a received webhook, the receiving side of Send: header h
// must carry a non-empty webhook-id, a webhook-timestamp no further than
// tolerance from now in either direction (DefaultTolerance when tolerance
// is zero or less), and a webhook-signature with at least one v1 entry that
// matches the HMAC of id.timestamp.body under at least one of secrets.
// Signatures are compared in constant time; entries of other versions are
// ignored. body must be the raw bytes received.
//
// The error says what is wrong and wraps one of the Err variables of this
// package; it never contains a secret or a signature.
func Verify(h http.Header, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return ErrNoSecrets
	}
	for i, key := range secrets {
		if len(key) == 0 {
			return fmt.Errorf("%w: secret %d of %d is empty", ErrNoSecrets, i+1, len(secrets))
		}
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}

	id := h.Get(HeaderID)
	if id == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderID)
	}
	rawTS := h.Get(HeaderTimestamp)
	if rawTS == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	}
	// Several header lines are one list, as HTTP defines.
	rawSig := strings.Join(h.Values(HeaderSignature), " ")
	if strings.TrimSpace(rawSig) == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}

	ts, err := parseTimestamp(rawTS)
	if err != nil {
		return err
	}
	if ts > maxTimestamp {
		return fmt.Errorf("%w: more than %s ahead", ErrTimestampTooNew, tolerance)
	}
	skew := now.Sub(time.Unix(ts, 0))
	switch {
	case skew > tolerance:
		return fmt.Errorf("%w: %s old, tolerance %s", ErrTimestampTooOld, skew.Truncate(time.Second), tolerance)
	case skew < -tolerance:
		return fmt.Errorf("%w: %s ahead, tolerance %s", ErrTimestampTooNew, (-skew).Truncate(time.Second), tolerance)
	}

	var given [][]byte
	for _, entry := range strings.Fields(rawSig) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(raw) != sha256.Size {
			continue
		}
		given = append(given, raw)
	}
	if len(given) == 0 {
		return fmt.Errorf("%w: no v1 entry of the form v1,<base64 of %d bytes>", ErrMalformedSignature, sha256.Size)
	}
	for _, key := range secrets {
		want := mac(key, id, ts, body)
		for _, sig := range given {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w (%d v1 signature(s) checked against %d secret(s))", ErrSignatureMismatch, len(given), len(secrets))
}

// parseTimestamp parses unix seconds: ASCII digits only, no sign.
func parseTimestamp(s string) (int64, error) {
	if len(s) > 19 {
		return 0, fmt.Errorf("%w: too long", ErrInvalidTimestamp)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: must be unix seconds (digits only)", ErrInvalidTimestamp)
		}
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: out of range", ErrInvalidTimestamp)
	}
	return ts, nil
}
