package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// The signature algorithms a client assertion may use (SMART Backend
// Services: RS384, ES384; NHS England's platform: RS512).
const (
	algRS384 = "RS384"
	algES384 = "ES384"
	algRS512 = "RS512"
)

// supportedAlgs are the JWS algorithms accepted for client assertions, as
// advertised by SmartConfiguration.
var supportedAlgs = []string{algRS384, algES384, algRS512}

func signatureAlg(alg string) (jwa.SignatureAlgorithm, bool) {
	switch alg {
	case algRS384:
		return jwa.RS384(), true
	case algES384:
		return jwa.ES384(), true
	case algRS512:
		return jwa.RS512(), true
	}
	return jwa.SignatureAlgorithm{}, false
}

const minRSABits = 2048

// pubKey is one verification key from a client's JWK Set.
type pubKey struct {
	kid string
	alg string // the key's own "alg", "" when it has none
	key any    // *rsa.PublicKey or *ecdsa.PublicKey (P-384)
}

// usableWith reports whether the key can verify a signature made with alg.
func (k pubKey) usableWith(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pk := k.key.(type) {
	case *rsa.PublicKey:
		return alg == algRS384 || alg == algRS512
	case *ecdsa.PublicKey:
		return alg == algES384 && pk.Curve == elliptic.P384()
	}
	return false
}

func (k pubKey) describe() string {
	var d string
	switch pk := k.key.(type) {
	case *rsa.PublicKey:
		d = "an RSA key"
	case *ecdsa.PublicKey:
		d = "an EC " + pk.Curve.Params().Name + " key"
	default:
		d = "a key"
	}
	if k.alg != "" {
		d += " restricted to alg " + k.alg
	}
	return d
}

// parseJWKS turns a JWK Set document into verification keys. strict (an
// inline set from configuration) makes every unusable key an error; otherwise
// (a set fetched from a jwks_url, which may also publish encryption keys)
// such keys are skipped. Private and symmetric key material is refused in
// strict mode and never used in either.
func parseJWKS(doc []byte, strict bool) ([]pubKey, error) {
	var shape struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &shape); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %v", err)
	}
	if shape.Keys == nil {
		return nil, errors.New(`not a JWK Set: expected an object with a "keys" array`)
	}
	if len(shape.Keys) == 0 {
		return nil, errors.New("the JWK Set has no keys")
	}
	set, err := jwk.Parse(doc, jwk.WithMaxKeys(100), jwk.WithStrictKeySetParsing(strict))
	if err != nil {
		return nil, fmt.Errorf("not a usable JWK Set: %v", err)
	}
	var keys []pubKey
	var errs []error
	seen := map[string]bool{}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		pk, err := verificationKey(k)
		if err == nil && strict && pk.kid != "" && seen[pk.kid] {
			// A fetched set keeps both: selectKey calls such a kid ambiguous.
			err = fmt.Errorf("kid %q is used by more than one key", pk.kid)
		}
		if err != nil {
			if strict {
				errs = append(errs, fmt.Errorf("key #%d%s: %w", i+1, kidSuffix(k), err))
			}
			continue
		}
		if pk.kid != "" {
			seen[pk.kid] = true
		}
		keys = append(keys, pk)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return keys, nil
}

func kidSuffix(k jwk.Key) string {
	if kid, ok := k.KeyID(); ok && kid != "" {
		return fmt.Sprintf(" (kid %q)", kid)
	}
	return ""
}

// verificationKey checks one JWK and returns it as a verification key.
func verificationKey(k jwk.Key) (pubKey, error) {
	if jwk.IsUnsupportedKey(k) {
		return pubKey{}, fmt.Errorf("key type %q is not supported", k.KeyType().String())
	}
	switch k.KeyType() {
	case jwa.RSA(), jwa.EC():
	case jwa.OctetSeq():
		return pubKey{}, errors.New("symmetric (oct) keys are refused: register the public half of an RSA or EC P-384 key pair")
	default:
		return pubKey{}, fmt.Errorf("key type %q is not accepted; expected RSA (RS384, RS512) or EC P-384 (ES384)", k.KeyType().String())
	}
	if priv, err := jwk.IsPrivateKey(k); err != nil || priv {
		return pubKey{}, errors.New("it contains private key material; register only the public key (and replace this key pair: its private half has been shared)")
	}
	if use, ok := k.KeyUsage(); ok && use != "" && use != string(jwk.ForSignature) {
		return pubKey{}, fmt.Errorf("use is %q; expected \"sig\"", use)
	}
	if ops, ok := k.KeyOps(); ok && len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return pubKey{}, errors.New(`key_ops does not include "verify"`)
	}
	if err := k.Validate(); err != nil {
		return pubKey{}, fmt.Errorf("invalid key: %v", err)
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return pubKey{}, fmt.Errorf("unusable key: %v", err)
	}
	pk := pubKey{key: raw}
	pk.kid, _ = k.KeyID()
	if a, ok := k.Algorithm(); ok && a.String() != "" {
		pk.alg = a.String()
		if _, ok := signatureAlg(pk.alg); !ok {
			return pubKey{}, fmt.Errorf("alg %q is not accepted; expected one of RS384, ES384, RS512", pk.alg)
		}
	}
	switch rk := raw.(type) {
	case *rsa.PublicKey:
		if n := rk.N.BitLen(); n < minRSABits {
			return pubKey{}, fmt.Errorf("RSA key has %d bits; at least %d are required", n, minRSABits)
		}
	case *ecdsa.PublicKey:
		if rk.Curve != elliptic.P384() {
			return pubKey{}, fmt.Errorf("EC curve %s is not accepted; ES384 needs P-384", rk.Curve.Params().Name)
		}
	default:
		return pubKey{}, fmt.Errorf("key of type %T is not a public RSA or EC key", raw)
	}
	if pk.alg != "" && !pk.usableWith(pk.alg) {
		return pubKey{}, fmt.Errorf("alg %q does not fit %s", pk.alg, pk.describe())
	}
	return pk, nil
}

// keyErr explains why no key was chosen. retry is true when a fresh copy of
// a jwks_url set might contain the key (unknown kid, or no usable key).
type keyErr struct {
	msg   string
	retry bool
}

// selectKey picks the key that verifies an assertion with header kid (""
// when absent) and alg.
func selectKey(keys []pubKey, kid, alg, where string) (pubKey, *keyErr) {
	if kid != "" {
		var found []pubKey
		for _, k := range keys {
			if k.kid == kid {
				found = append(found, k)
			}
		}
		switch {
		case len(found) == 0:
			return pubKey{}, &keyErr{msg: fmt.Sprintf("no key with kid %s in %s", quote(kid), where), retry: true}
		case len(found) > 1:
			return pubKey{}, &keyErr{msg: fmt.Sprintf("kid %s names more than one key in %s", quote(kid), where)}
		case !found[0].usableWith(alg):
			return pubKey{}, &keyErr{msg: fmt.Sprintf("key %s is %s, which cannot verify alg %s", quote(kid), found[0].describe(), alg)}
		}
		return found[0], nil
	}
	var usable []pubKey
	for _, k := range keys {
		if k.usableWith(alg) {
			usable = append(usable, k)
		}
	}
	switch len(usable) {
	case 0:
		return pubKey{}, &keyErr{msg: fmt.Sprintf("the JWS header has no kid and no key in %s can verify alg %s", where, alg), retry: true}
	case 1:
		return usable[0], nil
	}
	return pubKey{}, &keyErr{msg: fmt.Sprintf("the JWS header has no kid and %d keys in %s can verify alg %s, so the key is ambiguous; add the kid of the signing key to the header", len(usable), where, alg)}
}

// remoteKeySet caches the key set of a client that registered a jwks_url.
type remoteKeySet struct {
	sem       chan struct{} // a lock that a cancelled context can give up on
	keys      []pubKey
	fetched   bool      // keys holds a set fetched at fetchedAt, not expired
	fetchedAt time.Time // last successful fetch; zero if none
	attempted time.Time // last fetch attempt, successful or not
	lastErr   error     // why the last attempt failed, nil if it did not
	failures  int       // attempts failed since the last successful fetch
}

func newRemoteKeySet() *remoteKeySet { return &remoteKeySet{sem: make(chan struct{}, 1)} }

// usableAt reports whether the cached set may verify assertions at now:
// one was fetched, less than maxStale ago.
func (rk *remoteKeySet) usableAt(now time.Time, maxStale time.Duration) bool {
	return rk.fetched && now.Sub(rk.fetchedAt) < maxStale
}

// remoteKey finds the verification key for a client with a jwks_url. It
// fetches the set when it has none or it is older than the cache TTL, and
// refetches once when the kid is unknown; fetches of one client are at
// least JWKSRefreshInterval apart. A set no fetch has renewed for
// JWKSMaxStale is dropped, and the client refused until a fetch succeeds.
// The returned error is an *OAuthError or wraps ErrUnavailable (context
// done).
func (s *Server) remoteKey(ctx context.Context, c *client, kid, alg string) (pubKey, error) {
	rk := c.remote
	select {
	case rk.sem <- struct{}{}:
	case <-ctx.Done():
		return pubKey{}, unavailable("waiting for the client's JWK Set", ctx.Err())
	}
	defer func() { <-rk.sem }()

	mayFetch := func(now time.Time) bool {
		return rk.attempted.IsZero() || now.Sub(rk.attempted) >= s.refreshGap
	}
	now := s.now()
	if (!rk.fetched || now.Sub(rk.fetchedAt) >= s.cacheTTL) && mayFetch(now) {
		s.fetchKeys(ctx, c, now)
	}
	// After the fetch, not before: a set that a fetch has just renewed
	// never expired.
	s.expireKeys(ctx, c, now)
	if !rk.fetched {
		if !rk.fetchedAt.IsZero() {
			return pubKey{}, invalidClient("the JWK Set of client %s was last fetched from its registered jwks_url %s ago, more than the %s a set may be used without a successful fetch, and fetching it again failed (%v); its assertions are refused until a fetch succeeds, tried at most once every %s",
				quote(c.ID), now.Sub(rk.fetchedAt).Round(time.Second), s.maxStale, rk.lastErr, s.refreshGap)
		}
		return pubKey{}, invalidClient("could not retrieve the JWK Set from the jwks_url registered for client %s (%v); retrying at most once every %s",
			quote(c.ID), rk.lastErr, s.refreshGap)
	}
	const where = "the JWK Set at the client's registered jwks_url"
	k, kerr := selectKey(rk.keys, kid, alg, where)
	if kerr != nil && kerr.retry && mayFetch(now) {
		s.fetchKeys(ctx, c, now)
		k, kerr = selectKey(rk.keys, kid, alg, where)
	}
	if kerr != nil {
		msg := kerr.msg
		if kerr.retry {
			msg += fmt.Sprintf(" (fetched %s ago; fetched again at most once every %s)", now.Sub(rk.fetchedAt).Round(time.Second), s.refreshGap)
			if rk.lastErr != nil {
				msg += fmt.Sprintf("; the last fetch failed: %v", rk.lastErr)
			}
		}
		return pubKey{}, invalidClient("%s", msg)
	}
	return k, nil
}

// fetchKeys fetches the client's jwks_url and, on success, replaces the
// cached set. A failed fetch keeps the previous set (until expireKeys drops
// it) and is logged, as is the first success after failures. Called with
// rk.sem held.
func (s *Server) fetchKeys(ctx context.Context, c *client, now time.Time) {
	rk := c.remote
	rk.attempted = now
	keys, err := s.fetchJWKS(ctx, c.JWKSURL)
	if err != nil {
		rk.lastErr = err
		rk.failures++
		if rk.usableAt(now, s.maxStale) {
			s.log.WarnContext(ctx, "jwks_url fetch failed; the client's cached key set stays in use until it expires",
				"client_id", c.ID, "error", err.Error(), "failed_fetches", rk.failures,
				"fetched_at", rk.fetchedAt, "expires_at", rk.fetchedAt.Add(s.maxStale))
		} else {
			s.log.WarnContext(ctx, "jwks_url fetch failed; the client has no usable key set, so its assertions are refused",
				"client_id", c.ID, "error", err.Error(), "failed_fetches", rk.failures)
		}
		return
	}
	if rk.failures > 0 {
		s.log.InfoContext(ctx, "jwks_url fetched again after failures; the client's key set is renewed",
			"client_id", c.ID, "failed_fetches", rk.failures)
	}
	rk.keys, rk.fetched, rk.fetchedAt, rk.lastErr, rk.failures = keys, true, now, nil, 0
}

// expireKeys drops the client's cached set once no fetch has renewed it for
// JWKSMaxStale, and logs that moment: a key the client withdrew must not
// stay usable for as long as someone can make the fetches fail. Called
// with rk.sem held.
func (s *Server) expireKeys(ctx context.Context, c *client, now time.Time) {
	rk := c.remote
	if !rk.fetched || rk.usableAt(now, s.maxStale) {
		return
	}
	rk.keys, rk.fetched = nil, false
	s.log.ErrorContext(ctx, "jwks_url key set expired: no fetch has succeeded for too long, so the client's assertions are refused until one does",
		"client_id", c.ID, "fetched_at", rk.fetchedAt, "expired_at", rk.fetchedAt.Add(s.maxStale),
		"failed_fetches", rk.failures, "last_error", fmt.Sprint(rk.lastErr))
}

// fetchJWKS fetches and parses a key set. The fetch is not ended by its
// caller going away (context.WithoutCancel; jwksFetchTimeout bounds it):
// any request naming the client in an assertion starts it, before anything
// is verified, and one that hung up would otherwise fail the refresh and
// hold off the next for JWKSRefreshInterval, so that whoever did so
// steadily would keep the set from being renewed until it expired.
func (s *Server) fetchJWKS(ctx context.Context, u string) ([]pubKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errors.New("the jwks_url is not a valid request URL")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("the request timed out")
		}
		return nil, errors.New("the request failed (connection refused, or destination not allowed)")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("it answered HTTP %d; expected 200 with a JWK Set", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, errors.New("reading the response failed")
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("the JWK Set is larger than %d bytes", maxJWKSBytes)
	}
	keys, err := parseJWKS(bytes.TrimSpace(body), false)
	if err != nil {
		return nil, err
	}
	return keys, nil
}
