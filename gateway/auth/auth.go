package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Kind says what a registered client is.
type Kind string

const (
	// KindGP is a GP record system: it refers patients.
	KindGP Kind = "gp"
	// KindProvider is a VCS provider: it works referrals.
	KindProvider Kind = "provider"
	// KindExporter is an operator's system: it takes system-level exports.
	KindExporter Kind = "exporter"
	// KindEvaluator is an evaluator's system: de-identified exports only.
	KindEvaluator Kind = "evaluator"
)

// hasOrganization reports whether clients of the kind act for an
// organisation that referrals name (operators and evaluators do not).
func (k Kind) hasOrganization() bool { return k == KindGP || k == KindProvider }

// Identifier is a FHIR identifier (system and value), here an organisation's
// ODS code.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Client is one registered caller: a GP system or a provider.
type Client struct {
	// ID is the client_id; assertions carry it as both iss and sub.
	ID           string
	Kind         Kind
	Organization Identifier
	// JWKS is the client's public JWK Set, inline. Exactly one of JWKS and
	// JWKSURL is set.
	JWKS json.RawMessage
	// JWKSURL is where the client publishes its public JWK Set; fetched with
	// Options.HTTPClient and cached.
	JWKSURL string
	// Scopes are the system scopes this client may be granted.
	Scopes []string
}

// ReplayCache remembers the jti of every accepted client assertion. The
// implementation must be shared by every gateway instance (Redis: SET key NX
// PXAT until, with a key such as "auth:jti:{clientID}:{jti}").
type ReplayCache interface {
	// Remember records jti for clientID until the given time (the
	// assertion's exp plus ClockSkew: the last moment it could be accepted)
	// and reports whether it was new (fresh = true) or already recorded (a
	// replay). It must be atomic: of two concurrent calls with the same
	// jti, exactly one is fresh. It is called only for assertions whose
	// signature and claims have been verified.
	Remember(ctx context.Context, clientID, jti string, until time.Time) (fresh bool, err error)
}

// TokenStore keeps issued access tokens. The key it is given is a digest of
// the access token (base64url SHA-256), never the token itself, so a copy of
// the store (a dump, a replica, MONITOR output) holds no usable token.
type TokenStore interface {
	// Save stores g under key for ttl (Redis: SET key json(g) PX ttl).
	Save(ctx context.Context, key string, g Grant, ttl time.Duration) error
	// Load returns the grant stored under key, or (nil, nil) when the key
	// is unknown or has expired.
	Load(ctx context.Context, key string) (*Grant, error)
}

// Grant is what an access token stands for. It is JSON-serialisable for a
// TokenStore.
type Grant struct {
	ClientID     string     `json:"client_id"`
	Kind         Kind       `json:"kind"`
	Organization Identifier `json:"organization"`
	// Scopes are the granted scopes, as the client requested them (or the
	// client's registered scopes when it requested none). Authenticate
	// holds them, and Kind and Organization, to the client's configuration
	// as it is when the token is used.
	Scopes  []string  `json:"scopes"`
	Expires time.Time `json:"expires"`
}

// Limits of the protocol (SMART Backend Services) and of this server.
const (
	// MaxTokenTTL is the longest an access token lives.
	MaxTokenTTL = 300 * time.Second
	// MaxAssertionLifetime is how far ahead of now an assertion's exp may be.
	MaxAssertionLifetime = 5 * time.Minute
	// ClockSkew is the tolerance applied to exp, nbf and iat.
	ClockSkew = 30 * time.Second
	// MaxAssertionBytes bounds the client_assertion parameter.
	MaxAssertionBytes = 16 << 10

	defaultJWKSRefreshInterval = time.Minute
	defaultJWKSCacheTTL        = time.Hour
	defaultMaxAuthorization    = 8 << 10
	maxJWKSBytes               = 256 << 10
	jwksFetchTimeout           = 10 * time.Second
	maxJTILen                  = 256

	// defaultJWKSMaxStale bounds how long a cached set outlives failed
	// refreshes. A day rides out an outage of a client's JWKS host
	// overnight or through a working day (a refresh is due every hour and
	// tried at most once a minute meanwhile) without locking the client
	// out, while a key the client withdrew, compromised perhaps, stops
	// working within a day even if whoever holds it can make every fetch
	// fail; the logged failures give operators that day to act.
	defaultJWKSMaxStale = 24 * time.Hour
)

// Options configure a Server.
type Options struct {
	Clients []Client
	// TokenURL is the exact aud a client assertion must carry: the absolute
	// URL of POST /auth/token as clients see it.
	TokenURL string
	Replay   ReplayCache
	Tokens   TokenStore
	// HTTPClient fetches jwks_url key sets. Pass a client that refuses
	// private destinations (SSRF) and has timeouts; it is required when any
	// client has a JWKSURL.
	HTTPClient *http.Client
	// TokenTTL is the access token lifetime; default and maximum 300 s.
	TokenTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// JWKSRefreshInterval is the minimum time between two fetches of one
	// client's jwks_url (an unknown kid triggers at most one refetch per
	// interval); default 1 minute.
	JWKSRefreshInterval time.Duration
	// JWKSCacheTTL is how long a fetched key set is used before it is
	// fetched again, so keys a client withdraws stop working; default 1
	// hour. If that fetch fails the previous set stays in use, and the
	// fetch is tried again at most once every JWKSRefreshInterval.
	JWKSCacheTTL time.Duration
	// JWKSMaxStale is how long after its last successful fetch a key set
	// may still be used while refreshes fail; then the client's assertions
	// are refused until a fetch succeeds. At least JWKSCacheTTL; default
	// 24 hours.
	JWKSMaxStale time.Duration
	// Logger is told of failed jwks_url fetches, of a key set expiring and
	// of the fetch that recovers it (client ids, never key material);
	// default slog.Default().
	Logger *slog.Logger
	// MaxAuthorizationHeader bounds the Authorization header Authenticate
	// accepts; default 8 KiB.
	MaxAuthorizationHeader int
}

// Server issues and checks access tokens. It is safe for concurrent use.
type Server struct {
	clients    map[string]*client
	tokenURL   string
	replay     ReplayCache
	tokens     TokenStore
	httpClient *http.Client
	ttl        time.Duration
	now        func() time.Time
	refreshGap time.Duration
	cacheTTL   time.Duration
	maxStale   time.Duration
	maxAuthz   int
	log        *slog.Logger
}

// client is a registered Client with its keys and scopes parsed.
type client struct {
	Client
	scopes []Scope
	inline []pubKey      // when JWKS is inline
	remote *remoteKeySet // when JWKSURL is set
}

// New checks the options and every client (kind, organisation, scopes, and
// its inline JWK Set: parseable, public keys only, each usable to verify RS384,
// ES384 or RS512) and returns a Server. All problems are reported at once,
// each naming its client.
func New(o Options) (*Server, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("auth: "+format, args...)) }

	if u, err := url.Parse(o.TokenURL); o.TokenURL == "" || err != nil || !u.IsAbs() || u.Host == "" ||
		(u.Scheme != "https" && u.Scheme != "http") {
		bad("TokenURL %q must be the absolute http(s) URL of the token endpoint", o.TokenURL)
	}
	if o.Replay == nil {
		bad("Replay (ReplayCache) is required")
	}
	if o.Tokens == nil {
		bad("Tokens (TokenStore) is required")
	}
	ttl := o.TokenTTL
	switch {
	case ttl == 0:
		ttl = MaxTokenTTL
	case ttl < time.Second || ttl > MaxTokenTTL:
		bad("TokenTTL %s must be between 1s and %s", ttl, MaxTokenTTL)
	}
	refresh := o.JWKSRefreshInterval
	if refresh == 0 {
		refresh = defaultJWKSRefreshInterval
	} else if refresh < 0 {
		bad("JWKSRefreshInterval %s must not be negative", refresh)
	}
	cacheTTL := o.JWKSCacheTTL
	if cacheTTL == 0 {
		cacheTTL = defaultJWKSCacheTTL
	} else if cacheTTL < 0 {
		bad("JWKSCacheTTL %s must not be negative", cacheTTL)
	}
	maxStale := o.JWKSMaxStale
	if maxStale == 0 {
		maxStale = defaultJWKSMaxStale
	}
	if maxStale < cacheTTL {
		bad("JWKSMaxStale %s must be at least JWKSCacheTTL %s: a key set is refreshed before it may expire", maxStale, cacheTTL)
	}
	maxAuthz := o.MaxAuthorizationHeader
	if maxAuthz == 0 {
		maxAuthz = defaultMaxAuthorization
	} else if maxAuthz < 64 {
		bad("MaxAuthorizationHeader %d is too small to hold a bearer token", maxAuthz)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}

	s := &Server{
		clients:    make(map[string]*client, len(o.Clients)),
		tokenURL:   o.TokenURL,
		replay:     o.Replay,
		tokens:     o.Tokens,
		httpClient: o.HTTPClient,
		ttl:        ttl,
		now:        now,
		refreshGap: refresh,
		cacheTTL:   cacheTTL,
		maxStale:   maxStale,
		maxAuthz:   maxAuthz,
		log:        log,
	}
	for i, c := range o.Clients {
		name := fmt.Sprintf("client %q", c.ID)
		if c.ID == "" {
			name = fmt.Sprintf("client #%d", i+1)
			bad("%s: id is required", name)
		} else if _, dup := s.clients[c.ID]; dup {
			bad("%s: id is registered twice (GP clients and providers share one namespace)", name)
			continue
		}
		cl := &client{Client: c}
		switch c.Kind {
		case KindGP, KindProvider, KindExporter, KindEvaluator:
		default:
			bad("%s: kind %q must be %q, %q, %q or %q", name, c.Kind, KindGP, KindProvider, KindExporter, KindEvaluator)
		}
		if c.Kind.hasOrganization() && (c.Organization.System == "" || c.Organization.Value == "") {
			bad("%s: organization system and value are required", name)
		}
		if len(c.Scopes) == 0 {
			bad("%s: auth.scopes is empty; list the system scopes it may be granted, e.g. system/Task.rs", name)
		}
		for _, raw := range c.Scopes {
			sc, err := ParseScope(raw)
			if err != nil {
				bad("%s: auth.scopes: %v", name, err)
				continue
			}
			cl.scopes = append(cl.scopes, sc)
		}
		hasJWKS := len(c.JWKS) > 0 && string(c.JWKS) != "null"
		switch {
		case hasJWKS && c.JWKSURL != "":
			bad("%s: auth has both jwks and jwks_url; give exactly one", name)
		case hasJWKS:
			keys, err := parseJWKS(c.JWKS, true)
			if err != nil {
				bad("%s: auth.jwks: %v", name, err)
			}
			cl.inline = keys
		case c.JWKSURL != "":
			if u, err := url.Parse(c.JWKSURL); err != nil || !u.IsAbs() || u.Host == "" ||
				(u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
				bad("%s: auth.jwks_url %q must be an absolute http(s) URL without credentials", name, c.JWKSURL)
			}
			if o.HTTPClient == nil {
				bad("%s: auth.jwks_url needs Options.HTTPClient (an SSRF-safe client) to fetch it", name)
			}
			cl.remote = newRemoteKeySet()
		default:
			bad("%s: auth needs jwks (the client's public keys) or jwks_url", name)
		}
		if c.ID != "" {
			s.clients[c.ID] = cl
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Client returns the registered client with the given id.
func (s *Server) Client(id string) (Client, bool) {
	c, ok := s.clients[id]
	if !ok {
		return Client{}, false
	}
	return c.Client, true
}
