// Package httpapi is Signpost's HTTP interface: the FHIR R4 REST API at
// /fhir and the health endpoints, served with Gin. It turns requests into
// calls on the domain (gateway) and domain errors into OperationOutcomes;
// it holds no business rules of its own.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/usecases"
	"github.com/signpost-health/signpost/gateway/web"
)

// Options configure the API.
type Options struct {
	// UseCases are what the API calls.
	UseCases *usecases.Set
	// PublicURL is the externally visible base of the server; the FHIR base
	// is PublicURL + "/fhir".
	PublicURL    string
	MaxBodyBytes int64
	// Auth authenticates callers by bearer token (auth.mode smart). When it
	// is nil (auth.mode none, loopback only) Caller says who calls.
	Auth   *auth.Server
	Caller func(*http.Request) (gateway.Caller, error)
	// Limiter limits requests per client (nil: no limit).
	Limiter Limiter
	// AddressLimiter limits, per address, token requests and FHIR requests
	// without a valid token (nil: no limit).
	AddressLimiter Limiter
	// Auditor receives an AuditEvent per interaction (nil: none kept).
	Auditor Auditor
	// Metrics records request and referral metrics (nil: none). They are
	// served apart (metrics_listen), never on the API's listener.
	Metrics *telemetry.Metrics
	// Traced gives each request a span (and continues a caller's
	// traceparent). Off when tracing is off: it costs CPU on every request.
	Traced bool
	// Pages serves the web pages for people under /portal/ and /insights/
	// (nil: none). They share this server's recovery, access log and tracing.
	Pages http.Handler
	// TrustedProxies are the proxies whose X-Forwarded-For gives the
	// caller's address (config trusted_proxies); none by default.
	TrustedProxies []netip.Prefix
	// Capability describes the deployment for /fhir/metadata.
	Capability CapabilityInfo
	Logger     *slog.Logger
	Now        func() time.Time
}

// releaseMode sets Gin's process-wide mode once: Gin keeps it in a global,
// and setting it from every New would race between servers in one process.
var releaseMode sync.Once

// API holds the handlers.
type API struct {
	uc       *usecases.Set
	fhirBase string
	maxBody  int64
	caller   func(*http.Request) (gateway.Caller, error)
	metadata []byte
	// smartConfig is SMART discovery, its scopes_supported read from
	// metadata (scopesSupported).
	smartConfig []byte
	auth        *auth.Server
	tokenURL    string
	limiter     Limiter
	// addressLimiter counts callers not yet known, by address.
	addressLimiter Limiter
	auditor        Auditor
	metrics        *telemetry.Metrics
	log            *slog.Logger
}

// New builds the HTTP handler. Every route is listed here.
func New(o Options) http.Handler {
	releaseMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	a := &API{uc: o.UseCases, fhirBase: trimSlash(o.PublicURL) + "/fhir", maxBody: o.MaxBodyBytes, caller: o.Caller, log: o.Logger,
		auth: o.Auth, tokenURL: TokenURL(o.PublicURL), limiter: o.Limiter, addressLimiter: o.AddressLimiter, auditor: o.Auditor, metrics: o.Metrics}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.maxBody <= 0 {
		a.maxBody = 1 << 20
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	a.metadata = capabilityStatement(o.Capability, a.fhirBase, now())
	a.smartConfig = auth.SmartConfiguration(a.tokenURL, scopesSupported(a.metadata)...)

	r := gin.New()
	r.HandleMethodNotAllowed = true
	// The client address is the connection's, unless the connection comes
	// from a configured proxy: then it is the nearest address in its
	// X-Forwarded-For that is not itself a trusted proxy. The header from
	// anyone else would let a caller choose the address its rate limit and
	// audit record are counted by.
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	proxies := make([]string, len(o.TrustedProxies))
	for i, p := range o.TrustedProxies {
		proxies[i] = p.String()
	}
	if err := r.SetTrustedProxies(proxies); err != nil {
		// Cannot happen with a checked configuration. Gin would keep the
		// prefixes before the bad one; trust none instead.
		_ = r.SetTrustedProxies(nil)
	}
	// Tracing first, so the access log and everything after it share the
	// request's span. Probes are not traced: they are not work (/metrics is
	// served apart, on metrics_listen).
	if o.Traced {
		r.Use(otelgin.Middleware("signpost", otelgin.WithGinFilter(func(c *gin.Context) bool {
			switch c.FullPath() {
			case "/healthz", "/readyz":
				return false
			}
			return true
		})))
	}
	r.Use(a.recoverPanics, a.accessLog, a.correlation)
	r.NoRoute(a.noRoute)
	r.NoMethod(a.noMethod)

	r.GET("/healthz", a.healthz)
	r.GET("/readyz", a.readyz)
	if a.auth != nil {
		r.GET("/.well-known/smart-configuration", a.smartConfiguration)
		r.GET("/fhir/.well-known/smart-configuration", a.smartConfiguration)
		r.POST("/auth/token", a.limitByAddress, a.token)
	}

	if o.Pages != nil {
		// The pages are plain net/http; they get the address Gin worked out.
		pages := func(c *gin.Context) {
			o.Pages.ServeHTTP(c.Writer, c.Request.WithContext(web.WithClientAddress(c.Request.Context(), c.ClientIP())))
		}
		r.Any("/portal/*page", pages)
		r.Any("/insights/*page", pages)
		r.GET("/", pages) // a page for people who type the address
	}

	r.GET("/fhir/metadata", a.fhirHeaders, a.capabilities) // public, as FHIR and SMART discovery expect
	f := r.Group("/fhir", a.fhirHeaders, a.authenticate, a.limitByClient, a.exportOnlyExports)
	f.POST("", a.withBody, a.transaction)
	f.POST(strings.TrimPrefix(processMessageRoute, "/fhir"), a.withBody, a.processMessage)
	f.GET("/AuditEvent", a.disclosures) // a referral's disclosures, for its referrer
	f.GET("/:type", a.knownType, a.search)
	f.POST("/:type/_search", a.knownType, a.searchPost)
	f.POST("/:type", a.knownType, a.withBody, a.create)
	f.GET("/:type/:id", a.readableType, a.read)
	f.PUT("/:type/:id", a.knownType, a.withBody, a.update)
	f.PATCH("/:type/:id", a.knownType, a.withPatchBody, a.patch)
	f.GET("/:type/:id/_history/:vid", a.readableType, a.vread)
	f.GET("/:type/:id/$status", a.knownType, a.subscriptionStatus)
	f.DELETE("/:type/:id", a.knownType, a.endSubscription)
	// Bulk Data export (system level). Files are NDJSON, so their route
	// does not ask for FHIR JSON in Accept.
	f.GET(strings.TrimPrefix(exportRoute, "/fhir"), a.exportKickoff)
	f.GET(strings.TrimPrefix(exportStatusRoute, "/fhir"), a.exportStatus)
	f.DELETE(strings.TrimPrefix(exportStatusRoute, "/fhir"), a.exportCancel)
	r.GET(exportFileRoute, a.authenticate, a.limitByClient, a.exportFile)
	return r
}

// ClientLimits is the per-client rate limit l applies to the API, for the
// web pages (web.Options.ClientLimits) to count a provider's staff's
// changes against their provider's allowance: the same key, so the pages
// and the provider's own system share one allowance. nil when l is.
func ClientLimits(l Limiter) web.ClientLimiter {
	if l == nil {
		return nil
	}
	return clientLimits{l}
}

type clientLimits struct{ Limiter }

func (c clientLimits) AllowClient(ctx context.Context, clientID string) (bool, time.Duration, error) {
	return c.Allow(ctx, clientLimitKey(clientID))
}

// clientLimitKey is the rate limit key of a client (a GP system or a
// provider, by its registered id).
func clientLimitKey(clientID string) string { return "client:" + clientID }

// LocalClientHeader names, when authentication is off (auth.mode none,
// loopback only), the configured client or provider a request acts for.
const LocalClientHeader = "X-Signpost-Client"

// TokenURL is the token endpoint for a public URL: the exact audience
// client assertions must name.
func TokenURL(publicURL string) string { return trimSlash(publicURL) + "/auth/token" }

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
