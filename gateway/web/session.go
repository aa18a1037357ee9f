package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
)

// Signing in. A session is a random token in an HttpOnly, SameSite=Lax
// cookie (Secure and __Host- on https); the store keeps only its SHA-256
// digest, with the address and the session's CSRF token. Every request
// reads the account afresh, so disabling it signs the person out at once.
//
// Forgery: every form carries the session's CSRF token and every POST is
// refused without it (synchronizer token), and a POST whose Origin is
// another site's is refused before that. The sign-in form, which has no
// session yet, carries a token that must equal one in a short-lived cookie
// (double submit), so another site cannot sign a browser in as someone else.

// Who may use a page.
type role int

const (
	anyone        role = iota // any signed-in person
	providerStaff             // a provider's staff: the inbox
	operators                 // an operator: the outcomes view
)

// signedIn wraps a page that needs a signed-in person of a role. Without a
// session a GET is sent to sign in; a POST is refused. A POST must also
// carry the session's CSRF token.
func (p *Pages) signedIn(who role, next func(http.ResponseWriter, *http.Request, *account.WebSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !p.sameOrigin(r) {
			p.problem(w, r, nil, http.StatusForbidden, "This form was sent from another site, so it was refused.")
			return
		}
		s, err := p.session(r)
		if err != nil {
			p.failed(w, r, nil, err)
			return
		}
		if s == nil {
			if r.Method != http.MethodGet {
				p.problem(w, r, nil, http.StatusForbidden, "Your session has ended. Sign in again, then repeat what you were doing.")
				return
			}
			http.Redirect(w, r, "/portal/sign-in", http.StatusSeeOther)
			return
		}
		if (who == providerStaff && s.Operator()) || (who == operators && !s.Operator()) {
			p.problem(w, r, s, http.StatusForbidden, "Your account cannot use this page.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				p.problem(w, r, s, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), s.CSRF) {
				p.problem(w, r, s, http.StatusForbidden, "This form is out of date or did not come from Signpost, so it was refused. Go back, reload the page and try again.")
				return
			}
		}
		next(w, r, s)
	}
}

// countedAsProvider wraps a provider's page that reads or changes its
// referrals: each request counts against the API allowance of the
// provider the person works for (the same count as its own system's
// requests), so staff acting through the pages cannot send more changes,
// and GP notifications, than the API would take from their provider, nor
// have Redis read more for them than it would for the API (a referral's
// page reads its Task's history). Over it nothing is read, done or
// audited, as over the API: a flood cannot push older records out of the
// trail. Signing in and out, the stylesheet and the pages that read only
// the session are not counted: a provider's system that spends the
// allowance delays its staff's pages, and never keeps them from signing
// in (sign-in has limits of its own).
func (p *Pages) countedAsProvider(next func(http.ResponseWriter, *http.Request, *account.WebSession)) func(http.ResponseWriter, *http.Request, *account.WebSession) {
	return func(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
		if p.clientLimits == nil {
			next(w, r, s)
			return
		}
		ok, wait, err := p.clientLimits.AllowClient(r.Context(), p.caller(s).ClientID)
		if err != nil {
			p.failed(w, r, s, fmt.Errorf("%w: rate limit: %w", gateway.ErrUnavailable, err))
			return
		}
		if !ok {
			secs := max(1, int(wait.Seconds()+0.999))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			wait := "a second"
			if secs > 1 {
				wait = strconv.Itoa(secs) + " seconds"
			}
			if r.Method == http.MethodGet {
				p.problem(w, r, s, http.StatusTooManyRequests, "Your organisation has asked Signpost for too much in a short time (its pages and its own system share one allowance). Wait "+wait+", then reload the page.")
				return
			}
			p.problem(w, r, s, http.StatusTooManyRequests, "Nothing was changed: your organisation has sent Signpost too many changes in a short time. Wait "+wait+", then go back and send the form again.")
			return
		}
		next(w, r, s)
	}
}

// maxFormBytes bounds a form post: a note and a few fields.
const maxFormBytes = 16 << 10

// sameOrigin refuses a POST another site's page made. Browsers send Origin
// on every cross-site POST; one without it is from a tool, and its CSRF
// token still has to match.
func (p *Pages) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if p.origin != "" && origin == p.origin {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host
}

// session is the request's live session, or nil.
func (p *Pages) session(r *http.Request) (*account.WebSession, error) {
	c, err := r.Cookie(p.sessionCookie.name)
	if err != nil || len(c.Value) != tokenChars {
		return nil, nil
	}
	s, err := p.accounts.Session(r.Context(), digest(c.Value), sessionIdle)
	if err != nil || s == nil {
		return nil, err
	}
	if p.now().Sub(s.Created) > sessionLongest {
		return nil, p.accounts.EndSession(r.Context(), digest(c.Value), s.Email)
	}
	return s, nil
}

func (p *Pages) signInPage(w http.ResponseWriter, r *http.Request) {
	p.showSignIn(w, r, http.StatusOK, "", "")
}

// showSignIn renders the sign-in form with a fresh form token.
func (p *Pages) showSignIn(w http.ResponseWriter, r *http.Request, status int, email, message string) {
	p.render(w, r, status, "sign-in", page{Title: "Sign in", CSRF: p.freshSignInToken(w), Email: email, Message: message})
}

// signInFailed is all a failed sign-in says: which part was wrong would
// tell a guesser which addresses have accounts.
const signInFailed = "That email address and password do not match an account that can sign in."

func (p *Pages) signIn(w http.ResponseWriter, r *http.Request) {
	if !p.sameOrigin(r) {
		p.problem(w, r, nil, http.StatusForbidden, "This form was sent from another site, so it was refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.problem(w, r, nil, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c, err := r.Cookie(p.signInCookie.name)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), c.Value) {
		p.showSignIn(w, r, http.StatusForbidden, "", "The sign-in form was out of date. Please try again.")
		return
	}
	email, password := strings.TrimSpace(r.PostForm.Get("email")), r.PostForm.Get("password")
	addr, addrErr := account.CanonicalEmail(email)
	device := ""
	if addrErr == nil {
		if device, err = p.trustedDevice(r, addr); err != nil {
			p.failed(w, r, nil, err)
			return
		}
	}
	if p.limiter != nil {
		// A browser that has signed in to this account before is limited
		// on its own: guesses from elsewhere, which spend the account's
		// and their address's allowance, cannot lock its owner out (the
		// device cookies of OWASP's guidance on slowing online guessing).
		keys := []string{"web-sign-in-device:" + device}
		if device == "" {
			keys = []string{"web-sign-in:" + clientAddress(r)}
			if addrErr == nil {
				keys = append(keys, "web-sign-in-account:"+addr)
			}
		}
		for _, key := range keys {
			ok, wait, err := p.limiter.Allow(r.Context(), key)
			if err != nil {
				p.failed(w, r, nil, err)
				return
			}
			if !ok {
				p.auditLockout(r, key, addr, addrErr == nil)
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Seconds()+0.5))))
				p.showSignIn(w, r, http.StatusTooManyRequests, email, "Too many attempts to sign in. Wait a minute, then try again.")
				return
			}
		}
	}
	var user *account.PortalUser
	if addrErr == nil {
		user, err = p.accounts.User(r.Context(), addr)
		if err != nil && !errors.Is(err, account.ErrNoSuchUser) {
			p.failed(w, r, nil, err)
			return
		}
	}
	// Compare a password even when there is no account, so the time taken
	// does not tell whether an address has one.
	hash := dummyUser()
	if user != nil {
		hash = *user
	}
	matches := hash.PasswordMatches(password)
	if user == nil || user.Disabled || !matches {
		p.auditSignIn(r, gateway.InteractionLogin, http.StatusUnauthorized, user)
		p.showSignIn(w, r, http.StatusUnauthorized, email, signInFailed)
		return
	}
	token := newToken()
	sess := account.WebSession{Email: user.Email, ProviderID: user.ProviderID, CSRF: newToken(), Created: p.now()}
	if err := p.accounts.StartSession(r.Context(), digest(token), sess, sessionIdle, sessionLongest); errors.Is(err, account.ErrNoSuchUser) {
		p.auditSignIn(r, gateway.InteractionLogin, http.StatusUnauthorized, user)
		p.showSignIn(w, r, http.StatusUnauthorized, email, signInFailed)
		return
	} else if err != nil {
		p.failed(w, r, nil, err)
		return
	}
	p.auditSignIn(r, gateway.InteractionLogin, http.StatusSeeOther, user)
	if device == "" {
		// Trust is best effort: without it the next sign-in is limited as
		// a stranger's, nothing worse.
		deviceToken := newToken()
		if err := p.accounts.TrustDevice(r.Context(), digest(deviceToken), addr, deviceTrusted); err == nil {
			p.deviceCookie.set(w, deviceToken, deviceTrusted)
		}
	}
	p.sessionCookie.set(w, token, 0)
	p.signInCookie.clear(w)
	p.home(w, r, &sess)
}

// signInFormLife is how long a sign-in form's token lasts.
const signInFormLife = time.Hour

// cookie is one of the pages' cookies. Every Set-Cookie of it, setting or
// clearing, carries the same attributes: a browser ignores a __Host-
// cookie's Set-Cookie without Secure, so a clearing one without it would
// leave the token in place.
type cookie struct {
	name, path string
	sameSite   http.SameSite
	secure     bool // https: Secure, and the name __Host- prefixed
}

// set gives the cookie a value for maxAge (0: until the browser closes).
func (c cookie) set(w http.ResponseWriter, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: c.name, Value: value, Path: c.path, MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: c.secure, SameSite: c.sameSite})
}

// clear tells the browser to drop the cookie.
func (c cookie) clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: c.name, Path: c.path, MaxAge: -1, HttpOnly: true, Secure: c.secure, SameSite: c.sameSite})
}

// deviceTrusted is how long a browser that signed in to an account keeps
// its own sign-in allowance for that account.
const deviceTrusted = 90 * 24 * time.Hour

// trustedDevice returns the digest of the request's device token when it
// marks a browser that has signed in to the account before, else "".
func (p *Pages) trustedDevice(r *http.Request, account string) (string, error) {
	c, err := r.Cookie(p.deviceCookie.name)
	if err != nil || c.Value == "" {
		return "", nil
	}
	d := digest(c.Value)
	trusted, err := p.accounts.DeviceAccount(r.Context(), d)
	if err != nil || trusted != account {
		return "", err
	}
	return d, nil
}

func (p *Pages) signOut(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	if c, err := r.Cookie(p.sessionCookie.name); err == nil {
		if err := p.accounts.EndSession(r.Context(), digest(c.Value), s.Email); err != nil {
			p.failed(w, r, s, err)
			return
		}
	}
	p.auditSignIn(r, gateway.InteractionLogout, http.StatusOK, &account.PortalUser{Email: s.Email, ProviderID: s.ProviderID})
	p.sessionCookie.clear(w)
	p.render(w, r, http.StatusOK, "sign-in", page{Title: "Signed out", Message: "You have signed out.", CSRF: p.freshSignInToken(w)})
}

// freshSignInToken sets the sign-in form's cookie and returns its token.
func (p *Pages) freshSignInToken(w http.ResponseWriter) string {
	token := newToken()
	p.signInCookie.set(w, token, signInFormLife)
	return token
}

// dummyUser has a password hash nobody's password matches, compared when
// an address has no account. It is made on first use: a bcrypt hash costs
// a quarter of a second, which no other command should pay.
var dummyUser = sync.OnceValue(func() account.PortalUser {
	u, err := account.NewPortalUser("nobody@invalid.example", "", newToken()[:40], time.Time{})
	if err != nil {
		panic(err)
	}
	return u
})

// tokenChars is the length of a token: 32 random bytes, base64url.
const tokenChars = 43

func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func sameToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

type clientAddressKey struct{}

// WithClientAddress tells the pages the caller's address, as the server in
// front of them worked it out (the API server believes X-Forwarded-For from
// configured proxies only).
func WithClientAddress(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddressKey{}, addr)
}

// clientAddress is the address sign-in attempts are counted by and audit
// records name: the one the server in front worked out, or else the
// connection's. A forwarded header read here, from anyone, would let a
// guesser choose the address its attempts are counted by.
func clientAddress(r *http.Request) string {
	if a, _ := r.Context().Value(clientAddressKey{}).(string); a != "" {
		return a
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return host
}

// auditSignIn keeps the record of a sign-in (made or refused) or a
// sign-out. It names the account — its address, personal data of staff,
// which the trail already holds for every page they see — only when the
// account exists: what was typed for an address with no account may be a
// mistyped address or even a password, and is not kept. Never the
// password. A record that cannot be kept is logged, and the person is not
// held up by it.
func (p *Pages) auditSignIn(r *http.Request, interaction string, status int, user *account.PortalUser) {
	if p.auditor == nil {
		return
	}
	rec := &gateway.AuditRecord{Recorded: p.now(), Interaction: interaction, Action: "E", Status: status, Address: clientAddress(r)}
	if user != nil {
		c := p.caller(&account.WebSession{Email: user.Email, ProviderID: user.ProviderID})
		rec.Client, rec.Org, rec.User = c.ClientID, c.Organization, user.Email
	}
	if err := p.auditor.Audit(r.Context(), rec); err != nil {
		p.log.WarnContext(r.Context(), "auditing a sign-in", "error", err)
	}
}

// lockoutAuditKey prefixes the limiter key that bounds how often one
// lockout is audited.
const lockoutAuditKey = "web-lockout-audit:"

// auditLockout keeps the record of a sign-in refused by the limits (an
// address, an account or a browser over its allowance). Each is audited
// at most as often as the limit lets an attempt through, so a guesser
// hammering a locked account cannot flood the trail (and so push older
// records out of it); the account is named only when it exists.
func (p *Pages) auditLockout(r *http.Request, limitKey, addr string, addrOK bool) {
	if p.auditor == nil {
		return
	}
	if ok, _, err := p.limiter.Allow(r.Context(), lockoutAuditKey+limitKey); err != nil || !ok {
		return
	}
	var user *account.PortalUser
	if addrOK {
		if u, err := p.accounts.User(r.Context(), addr); err == nil {
			user = u
		}
	}
	p.auditSignIn(r, gateway.InteractionLogin, http.StatusTooManyRequests, user)
}
