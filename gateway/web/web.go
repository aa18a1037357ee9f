// Package web is Signpost's pages for people: the referral inbox where a
// VCS provider's staff see and move on their referrals (/portal/), and the
// outcomes view for link workers and commissioners (/insights/). Pages are
// rendered on the server with html/template and work without JavaScript.
//
// Every change a page makes is a call on a use case (gateway/portal)
// under the provider's own Caller, so it follows exactly the rules, version
// checks and notifications of the FHIR API. The package holds no business
// rules; it must not import httpapi or redisstore.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/portal"
)

// Accounts keeps the people who sign in and their sessions.
type Accounts interface {
	User(ctx context.Context, email string) (*account.PortalUser, error)
	StartSession(ctx context.Context, digest string, s account.WebSession, idle, longest time.Duration) error
	// Session returns nil when the digest names no live session.
	Session(ctx context.Context, digest string, idle time.Duration) (*account.WebSession, error)
	EndSession(ctx context.Context, digest, email string) error
	// TrustDevice remembers a browser that signed in to an account (by its
	// device token's digest) for ttl; DeviceAccount names that account, or
	// "" when the digest names none.
	TrustDevice(ctx context.Context, digest, email string, ttl time.Duration) error
	DeviceAccount(ctx context.Context, digest string) (string, error)
}

// Auditor keeps audit records (redisstore: an append-only stream).
type Auditor interface {
	Audit(ctx context.Context, r *gateway.AuditRecord) error
}

// Limiter limits attempts per key (redisstore: GCRA across replicas).
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// ClientLimiter is the API's rate limit per client (httpapi.ClientLimits),
// counted by the client's id.
type ClientLimiter interface {
	AllowClient(ctx context.Context, clientID string) (ok bool, retryAfter time.Duration, err error)
}

// Options configure the pages.
type Options struct {
	// Portal is the inbox and the steps staff take; Insights the outcomes report.
	Portal   *portal.Service
	Insights *insights.Service
	Accounts Accounts
	Auditor  Auditor
	// Limiter slows password guessing: sign-in attempts are counted per
	// address and per account, or, from a browser that has signed in to the
	// account before, per that browser (nil: no limit).
	Limiter Limiter
	// ClientLimits is the API's per-client rate limit: every inbox page
	// and every form that changes a referral counts against the allowance
	// of the provider the person works for, which its own system's API
	// requests share, so the pages are no way round it (nil: no limit).
	ClientLimits ClientLimiter
	// PublicURL is the externally visible base; https there makes the
	// session cookie Secure and __Host- prefixed.
	PublicURL string
	Logger    *slog.Logger
	Now       func() time.Time
}

// Session lifetimes: an idle browser is signed out after half an hour, any
// browser after a working day.
const (
	sessionIdle    = 30 * time.Minute
	sessionLongest = 12 * time.Hour
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Pages serves the web pages.
type Pages struct {
	portal   *portal.Service
	outcomes *insights.Service
	accounts Accounts
	auditor  Auditor
	limiter  Limiter
	// clientLimits counts inbox pages and changes against the provider's
	// API allowance.
	clientLimits ClientLimiter
	secure       bool   // the public URL is https
	origin       string // scheme://host of the public URL, for the Origin check
	// sessionCookie carries the session's token, signInCookie the sign-in
	// form's; deviceCookie marks a browser that has signed in before.
	sessionCookie cookie
	signInCookie  cookie
	deviceCookie  cookie
	pages         map[string]*template.Template
	log           *slog.Logger
	now           func() time.Time
	mux           *http.ServeMux
}

// New builds the pages. Every route is listed here.
func New(o Options) *Pages {
	p := &Pages{portal: o.Portal, outcomes: o.Insights, accounts: o.Accounts, auditor: o.Auditor, limiter: o.Limiter, clientLimits: o.ClientLimits,
		log: o.Logger, now: o.Now}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if u, err := url.Parse(o.PublicURL); err == nil && u.Host != "" {
		p.secure = u.Scheme == "https"
		p.origin = u.Scheme + "://" + u.Host
	}
	prefix, signInPath := "", "/portal/sign-in"
	if p.secure {
		// __Host-: the browser keeps it only if Secure, Path=/ and no
		// Domain, so no other host or path can plant or read it.
		prefix, signInPath = "__Host-", "/"
	}
	p.sessionCookie = cookie{name: prefix + "signpost-session", path: "/", sameSite: http.SameSiteLaxMode, secure: p.secure}
	p.signInCookie = cookie{name: prefix + "signpost-sign-in", path: signInPath, sameSite: http.SameSiteStrictMode, secure: p.secure}
	p.deviceCookie = cookie{name: prefix + "signpost-device", path: signInPath, sameSite: http.SameSiteStrictMode, secure: p.secure}
	p.pages = parseTemplates()

	m := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	m.Handle("GET /portal/static/", http.StripPrefix("/portal/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", p.welcome)
	m.HandleFunc("GET /portal/sign-in", p.signInPage)
	m.HandleFunc("POST /portal/sign-in", p.signIn)
	m.HandleFunc("POST /portal/sign-out", p.signedIn(anyone, p.signOut))
	m.HandleFunc("GET /portal/{$}", p.signedIn(anyone, p.home))
	m.HandleFunc("GET /portal/referrals", p.signedIn(providerStaff, p.countedAsProvider(p.inbox)))
	m.HandleFunc("GET /portal/referrals/{id}", p.signedIn(providerStaff, p.countedAsProvider(p.referral)))
	m.HandleFunc("POST /portal/referrals/{id}", p.signedIn(providerStaff, p.countedAsProvider(p.act)))
	m.HandleFunc("GET /portal/referrals/{id}/measures/{questionnaire}/{point}", p.signedIn(providerStaff, p.countedAsProvider(p.measure)))
	m.HandleFunc("POST /portal/referrals/{id}/measures/{questionnaire}/{point}", p.signedIn(providerStaff, p.countedAsProvider(p.recordMeasure)))
	m.HandleFunc("GET /insights/{$}", p.signedIn(operators, p.insights))
	m.HandleFunc("GET /insights/outcomes.csv", p.signedIn(operators, p.insightsCSV))
	m.HandleFunc("GET /insights/MeasureReport", p.signedIn(operators, p.measureReport))
	m.HandleFunc("/", p.notFound)
	p.mux = m
	return p
}

// ServeHTTP answers every page with the headers that keep it safe to show:
// a Content-Security-Policy that allows only Signpost's own stylesheet and
// forms (no scripts at all), no framing, no sniffing, and no caching of
// pages that hold patient details.
func (p *Pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/portal/static/") {
		h.Set("Cache-Control", "no-store")
	}
	if p.secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	p.mux.ServeHTTP(w, r)
}

// welcome is the page at /: where a person who typed Signpost's address
// goes from here (the FHIR API's own answers are JSON for systems).
func (p *Pages) welcome(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "welcome", page{Title: "Welcome"})
}

func (p *Pages) home(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	if s.Operator() {
		http.Redirect(w, r, "/insights/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/portal/referrals", http.StatusSeeOther)
}

func (p *Pages) notFound(w http.ResponseWriter, r *http.Request) {
	p.problem(w, r, nil, http.StatusNotFound, "There is no such page.")
}

// problem shows a page that says what went wrong, in words for people.
func (p *Pages) problem(w http.ResponseWriter, r *http.Request, s *account.WebSession, status int, message string) {
	p.render(w, r, status, "problem", page{Title: http.StatusText(status), Session: s, Message: message})
}

// failed answers a domain error that has no better page of its own.
func (p *Pages) failed(w http.ResponseWriter, r *http.Request, s *account.WebSession, err error) {
	switch e := gateway.AsError(err); {
	case errors.Is(err, gateway.ErrNotFound) || e.Kind == gateway.KindNotFound:
		p.problem(w, r, s, http.StatusNotFound, "There is no such referral, or it is not one of yours.")
	case e.Kind == gateway.KindUnavailable:
		w.Header().Set("Retry-After", "5")
		p.problem(w, r, s, http.StatusServiceUnavailable, "Signpost cannot reach its store just now. Nothing was changed; please try again in a moment.")
	default:
		p.log.ErrorContext(r.Context(), "web page failed", "path", r.URL.Path, "error", err)
		p.problem(w, r, s, http.StatusInternalServerError, "Something went wrong on Signpost's side. Nothing was changed.")
	}
}
