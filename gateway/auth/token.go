package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Form parameter values of a SMART Backend Services token request.
const (
	GrantTypeClientCredentials = "client_credentials"
	ClientAssertionTypeJWT     = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// TokenResponse is the successful token endpoint response (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	// ClientID is the client the token is for (for the audit record).
	ClientID string `json:"-"`
}

// tokenBytes is the entropy of an access token; tokens are its base64url
// form (43 characters).
const tokenBytes = 32

var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// tokenKey is the TokenStore key of an access token.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Token handles POST /auth/token: form is the request's
// application/x-www-form-urlencoded body (only the body: never accept
// these parameters from the query string). On failure the error is an
// *OAuthError, or wraps ErrUnavailable when the replay cache or token store
// failed (answer 503).
func (s *Server) Token(ctx context.Context, form url.Values) (*TokenResponse, error) {
	res, c, err := s.token(ctx, form)
	if c == nil {
		return res, err
	}
	// Who asked, for the audit record: the registered client the assertion
	// names (verified or not; the outcome says which).
	var oe *OAuthError
	if errors.As(err, &oe) {
		oe.ClientID = c.ID
	}
	if res != nil {
		res.ClientID = c.ID
	}
	return res, err
}

// token is Token, also returning the registered client the assertion names
// (nil until it is known).
func (s *Server) token(ctx context.Context, form url.Values) (res *TokenResponse, c *client, err error) {
	for _, p := range []string{"grant_type", "client_assertion_type", "client_assertion", "scope", "client_id"} {
		if len(form[p]) > 1 {
			return nil, c, invalidRequest("parameter %s appears more than once; send it once", p)
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case GrantTypeClientCredentials:
	case "":
		return nil, c, invalidRequest("grant_type is missing; expected %q", GrantTypeClientCredentials)
	default:
		return nil, c, unsupportedGrantType("grant_type %s is not supported; expected %q", quote(gt), GrantTypeClientCredentials)
	}
	switch at := form.Get("client_assertion_type"); at {
	case ClientAssertionTypeJWT:
	case "":
		return nil, c, invalidRequest("client_assertion_type is missing; expected %q", ClientAssertionTypeJWT)
	default:
		return nil, c, invalidRequest("client_assertion_type %s is not supported; expected %q", quote(at), ClientAssertionTypeJWT)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		return nil, c, invalidRequest("client_assertion is missing; expected a JWT signed with the client's private key")
	}
	if len(assertion) > MaxAssertionBytes {
		return nil, c, invalidRequest("client_assertion is %d bytes; at most %d are accepted", len(assertion), MaxAssertionBytes)
	}

	// Everything that can be refused without a key, from the header and the
	// (still unverified) claims.
	a, oerr := parseAssertion(assertion)
	if oerr != nil {
		return nil, c, oerr
	}
	c, ok := s.clients[a.iss]
	if !ok {
		return nil, c, invalidClient("iss %s is not a registered client_id", quote(a.iss))
	}
	if id := form.Get("client_id"); id != "" && id != a.iss {
		return nil, c, invalidClient("client_id parameter %s does not match the assertion's iss %s", quote(id), quote(a.iss))
	}
	if a.jkuSet {
		switch {
		case c.JWKSURL == "":
			return nil, c, invalidClient("the JWS header has jku, but client %s registered its keys inline; remove jku", quote(c.ID))
		case a.jku != c.JWKSURL:
			return nil, c, invalidClient("the JWS header's jku %s is not the jwks_url registered for client %s; it must be exactly that URL or absent", quote(a.jku), quote(c.ID))
		}
	}

	// The key, then the signature.
	var key pubKey
	if c.remote != nil {
		k, err := s.remoteKey(ctx, c, a.kid, a.alg)
		if err != nil {
			return nil, c, err
		}
		key = k
	} else {
		k, kerr := selectKey(c.inline, a.kid, a.alg, fmt.Sprintf("the JWK Set registered for client %s", quote(c.ID)))
		if kerr != nil {
			return nil, c, invalidClient("%s", kerr.msg)
		}
		key = k
	}
	alg, _ := signatureAlg(a.alg)
	payload, err := jws.Verify([]byte(assertion), jws.WithKey(alg, key.key), jws.WithCompact())
	if err != nil {
		return nil, c, invalidClient("the signature does not verify with %s of client %s (alg %s); sign with the private key of a registered public key",
			keyName(key), quote(c.ID), a.alg)
	}

	// The claims, now that they are known to come from the client.
	now := s.now()
	if oerr := s.checkClaims(a, payload, now); oerr != nil {
		return nil, c, oerr
	}

	// The scopes.
	granted, oerr := grantScopes(form.Get("scope"), c)
	if oerr != nil {
		return nil, c, oerr
	}

	// Last, the only side effects: record the jti, then the token.
	fresh, err := s.replay.Remember(ctx, c.ID, a.jti, a.exp.Add(ClockSkew))
	if err != nil {
		return nil, c, unavailable("replay cache", err)
	}
	if !fresh {
		return nil, c, invalidGrant("jti already used: each client assertion must carry a new jti")
	}
	var raw [tokenBytes]byte
	if _, err := io.ReadFull(rand.Reader, raw[:]); err != nil {
		return nil, c, fmt.Errorf("auth: generating a token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	g := Grant{
		ClientID:     c.ID,
		Kind:         c.Kind,
		Organization: c.Organization,
		Scopes:       granted,
		Expires:      now.Add(s.ttl),
	}
	if err := s.tokens.Save(ctx, tokenKey(token), g, s.ttl); err != nil {
		return nil, c, unavailable("token store", err)
	}
	return &TokenResponse{
		AccessToken: token,
		TokenType:   "bearer",
		ExpiresIn:   int(s.ttl / time.Second),
		Scope:       strings.Join(granted, " "),
	}, c, nil
}

func keyName(k pubKey) string {
	if k.kid != "" {
		return "key " + quote(k.kid)
	}
	return "the only key usable with that alg"
}

// grantScopes checks the requested scopes against the client's and returns
// what is granted: the requested scopes (each once, in order), or all of the
// client's scopes when none were requested.
func grantScopes(requested string, c *client) ([]string, *OAuthError) {
	fields := strings.Fields(requested)
	if len(fields) == 0 {
		return append([]string(nil), c.Scopes...), nil
	}
	var granted []string
	seen := map[string]bool{}
	for _, f := range fields {
		if seen[f] {
			continue
		}
		seen[f] = true
		sc, err := ParseScope(f)
		if err != nil {
			return nil, invalidScope("%v", err)
		}
		if !coveredBy(sc, c.scopes) {
			return nil, invalidScope("scope %s is not allowed for client %s; it may be granted: %s",
				quote(f), quote(c.ID), strings.Join(c.Scopes, " "))
		}
		granted = append(granted, f)
	}
	return granted, nil
}

// assertion is what Token reads from a client assertion before and after
// verifying it.
type assertion struct {
	alg, kid, jku string
	jkuSet        bool
	claims        map[string]json.RawMessage
	iss, sub      string
	jti           string
	exp           time.Time
}

// parseAssertion reads the JWS header and the claims of a compact JWT and
// refuses what needs no key to refuse: a disallowed alg (before anything
// else), header parameters this server does not honour, and iss/sub that
// cannot name a client.
func parseAssertion(s string) (*assertion, *OAuthError) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		if len(parts) == 5 {
			return nil, invalidClient("client_assertion is a JWE (5 parts); expected a JWS-signed JWT in compact form (3 parts)")
		}
		return nil, invalidClient("client_assertion is not a JWT in compact form; expected 3 base64url parts separated by dots, got %d", len(parts))
	}
	hb, err := b64(parts[0])
	if err != nil {
		return nil, invalidClient("the client_assertion header is not base64url: %v", err)
	}
	hdr, err := decodeObject(hb)
	if err != nil {
		return nil, invalidClient("the client_assertion header is not a JSON object: %v", err)
	}
	a := &assertion{}
	rawAlg, ok := hdr["alg"]
	if !ok {
		return nil, invalidClient("the JWS header has no alg; expected one of RS384, ES384, RS512")
	}
	if err := json.Unmarshal(rawAlg, &a.alg); err != nil {
		return nil, invalidClient("the JWS header's alg is not a string; expected one of RS384, ES384, RS512")
	}
	if _, ok := signatureAlg(a.alg); !ok {
		switch {
		case strings.EqualFold(a.alg, "none"):
			return nil, invalidClient("alg %s (an unsigned JWT) is refused; sign with RS384, ES384 or RS512", quote(a.alg))
		case strings.HasPrefix(strings.ToUpper(a.alg), "HS"):
			return nil, invalidClient("alg %s is a shared-secret (HMAC) algorithm and is refused; sign with the private key of a registered key pair using RS384, ES384 or RS512", quote(a.alg))
		default:
			return nil, invalidClient("alg %s is not accepted; expected one of RS384, ES384, RS512", quote(a.alg))
		}
	}
	for _, p := range []string{"crit", "b64"} {
		if _, ok := hdr[p]; ok {
			return nil, invalidClient("the JWS header has %q, which this server does not support; remove it", p)
		}
	}
	if _, ok := hdr["jwk"]; ok {
		return nil, invalidClient("the JWS header embeds a key (jwk); keys are taken only from the client's registered JWK Set, so remove it")
	}
	if raw, ok := hdr["kid"]; ok {
		if err := json.Unmarshal(raw, &a.kid); err != nil || a.kid == "" {
			return nil, invalidClient("the JWS header's kid is not a non-empty string")
		}
	}
	if raw, ok := hdr["jku"]; ok {
		a.jkuSet = true
		if err := json.Unmarshal(raw, &a.jku); err != nil {
			return nil, invalidClient("the JWS header's jku is not a string")
		}
	}
	if parts[2] == "" {
		return nil, invalidClient("client_assertion has no signature")
	}

	pb, err := b64(parts[1])
	if err != nil {
		return nil, invalidClient("the client_assertion payload is not base64url: %v", err)
	}
	a.claims, err = decodeObject(pb)
	if err != nil {
		return nil, invalidClient("the client_assertion payload is not a JSON object of claims: %v", err)
	}
	var oerr *OAuthError
	if a.iss, oerr = stringClaim(a.claims, "iss"); oerr != nil {
		return nil, oerr
	}
	if a.sub, oerr = stringClaim(a.claims, "sub"); oerr != nil {
		return nil, oerr
	}
	if a.iss != a.sub {
		return nil, invalidClient("iss %s and sub %s differ; both must be the client_id", quote(a.iss), quote(a.sub))
	}
	return a, nil
}

func b64(seg string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, errors.New("invalid base64url (unpadded) encoding")
	}
	return b, nil
}

// decodeObject decodes a JSON object into its raw members, refusing
// invalid UTF-8, duplicate member names (which parsers resolve differently)
// and trailing data.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New("malformed JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("expected a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("malformed JSON")
		}
		name, _ := tok.(string)
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %s appears more than once", quote(name))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("malformed JSON")
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, errors.New("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

func stringClaim(claims map[string]json.RawMessage, name string) (string, *OAuthError) {
	raw, ok := claims[name]
	if !ok {
		return "", invalidClient("the %s claim is missing; it must be the client_id", name)
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil || v == "" {
		return "", invalidClient("the %s claim is not a non-empty string; it must be the client_id", name)
	}
	return v, nil
}

// claimsShape refuses, before the JWT library reads the claims, what the
// library would accept or could not name: it takes a NumericDate written as
// a string ("1700000000") where RFC 7519 §2 wants a JSON number, and its
// decoding errors do not say which claim was wrong, which the client needs
// to be told.
func claimsShape(claims map[string]json.RawMessage, tokenURL string) *OAuthError {
	if raw, ok := claims[jwt.AudienceKey]; ok {
		var aud string
		var auds []string
		if json.Unmarshal(raw, &aud) != nil && json.Unmarshal(raw, &auds) != nil {
			return invalidClient("the aud claim is neither a string nor an array of strings; expected %q", tokenURL)
		}
	}
	for _, name := range []string{jwt.ExpirationKey, jwt.NotBeforeKey, jwt.IssuedAtKey} {
		raw, ok := claims[name]
		if !ok {
			continue
		}
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || string(raw) == "null" || f < 0 || f > 1e11 {
			return invalidClient("the %s claim is not a NumericDate (seconds since 1970-01-01T00:00:00Z as a JSON number)", name)
		}
	}
	if raw, ok := claims[jwt.JwtIDKey]; ok {
		var jti string
		if err := json.Unmarshal(raw, &jti); err != nil || jti == "" {
			return invalidClient("the jti claim is not a non-empty string")
		}
	}
	return nil
}

// errTooFarAhead is the tooFarAhead validator's refusal.
var errTooFarAhead = errors.New("exp too far ahead")

// tooFarAhead refuses an exp more than MaxAssertionLifetime (plus skew)
// ahead: SMART Backend Services' limit, which the library has no option for.
func tooFarAhead(now time.Time) jwt.Validator {
	return jwt.ValidatorFunc(func(_ context.Context, t jwt.Token) error {
		if exp, ok := t.Expiration(); ok && exp.After(now.Add(MaxAssertionLifetime+ClockSkew)) {
			return errTooFarAhead
		}
		return nil
	})
}

// checkClaims checks the verified claims (payload, whose members are also
// in a.claims) with the JWT library's validators: aud, exp, nbf, iat and jti.
func (s *Server) checkClaims(a *assertion, payload []byte, now time.Time) *OAuthError {
	if oerr := claimsShape(a.claims, s.tokenURL); oerr != nil {
		return oerr
	}
	tok := jwt.New()
	if err := json.Unmarshal(payload, tok); err != nil {
		// Not echoed: the library's text may quote claim values.
		return invalidClient("the client_assertion claims are not valid JWT claims (RFC 7519 §4.1)")
	}
	err := jwt.Validate(tok,
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(ClockSkew),
		// Compare at the precision sent, not truncated to seconds.
		jwt.WithTruncation(0),
		jwt.WithRequiredClaim(jwt.AudienceKey),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithAudience(s.tokenURL),
		jwt.WithValidator(tooFarAhead(now)),
	)
	exp, _ := tok.Expiration()
	serverTime := now.UTC().Format(time.RFC3339)
	switch {
	case err == nil:
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		switch {
		case !tok.Has(jwt.AudienceKey):
			return invalidClient("the aud claim is missing; expected %q", s.tokenURL)
		case !tok.Has(jwt.ExpirationKey):
			return invalidClient("the exp claim is missing; expected an expiry at most %s ahead", MaxAssertionLifetime)
		default:
			return invalidClient("the jti claim is missing; expected a unique identifier for each assertion")
		}
	case errors.Is(err, jwt.InvalidAudienceError()):
		if raw := a.claims[jwt.AudienceKey]; len(raw) > 0 && raw[0] == '[' {
			return invalidClient("aud does not contain this token endpoint; expected %q", s.tokenURL)
		}
		aud, _ := tok.Audience()
		return invalidClient("aud %s is not this token endpoint; expected %q", quote(strings.Join(aud, "")), s.tokenURL)
	case errors.Is(err, jwt.TokenExpiredError()):
		return invalidClient("the assertion expired at %s (server time %s, %s skew allowed)", exp.Format(time.RFC3339), serverTime, ClockSkew)
	case errors.Is(err, errTooFarAhead):
		return invalidClient("exp %s is more than %s ahead of server time %s; expected at most %s ahead",
			exp.Format(time.RFC3339), MaxAssertionLifetime, serverTime, MaxAssertionLifetime)
	case errors.Is(err, jwt.TokenNotYetValidError()):
		nbf, _ := tok.NotBefore()
		return invalidClient("nbf %s is in the future (server time %s, %s skew allowed)", nbf.Format(time.RFC3339), serverTime, ClockSkew)
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		iat, _ := tok.IssuedAt()
		return invalidClient("iat %s is in the future (server time %s, %s skew allowed)", iat.Format(time.RFC3339), serverTime, ClockSkew)
	default:
		return invalidClient("the client_assertion claims are not valid")
	}
	a.exp = exp
	a.jti, _ = tok.JwtID()
	if len(a.jti) > maxJTILen {
		return invalidClient("the jti claim is longer than %d bytes", maxJTILen)
	}
	return nil
}
