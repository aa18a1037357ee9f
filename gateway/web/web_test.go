package web_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/auditevent"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/usecases"
	"github.com/signpost-health/signpost/gateway/web"
)

// Synthetic people and organisations only.
const (
	nhsNumber   = "9434765919"
	practiceODS = "A81001"
	password    = "correct horse battery staple"
	odsSystem   = "https://fhir.nhs.uk/Id/ods-organization-code"
)

var providers = []gateway.Provider{
	{ID: "walking", Name: "Walking for Health", Organization: gateway.Identifier{System: odsSystem, Value: "X1A2B"},
		Categories: []string{"physical-activity"}},
	{ID: "advice", Name: "Money Advice", Organization: gateway.Identifier{System: odsSystem, Value: "X3C4D"},
		Categories: []string{"money-debt-benefits"}},
}

// directory names the practice and the providers, as config's
// OrganizationNames would from the tests' configuration.
var directory = map[string]string{practiceODS: "Example Surgery", "X1A2B": "Walking for Health", "X3C4D": "Money Advice"}

var practice = gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP, Organization: gateway.Identifier{System: odsSystem, Value: practiceODS}}

// env is Signpost's pages and API over their own redis-server.
type env struct {
	t     testing.TB
	redis *redistest.Server
	store *redisstore.Store
	svc   *usecases.Set
	srv   *httptest.Server
	clock atomic.Int64 // the pages' clock, Unix ms
}

// signInBurst is the sign-in attempts the tests' limiter allows before it
// refuses (production allows more; the tests need only see it refuse, and
// each attempt costs a bcrypt comparison).
const signInBurst = 4

func setup(t testing.TB, opts ...func(*httpapi.Options)) *env {
	t.Helper()
	return setupWith(t, func(_ *env, _ *web.Options, api *httpapi.Options) {
		for _, f := range opts {
			f(api)
		}
	})
}

// setupWith is setup with the pages' and the API's options changed by
// change, which may use the env's store.
func setupWith(t testing.TB, change func(e *env, pages *web.Options, api *httpapi.Options)) *env {
	t.Helper()
	return setupProviders(t, providers, change)
}

// setupProviders is setupWith for other providers (one that needs
// consent, say).
func setupProviders(t testing.TB, providers []gateway.Provider, change func(e *env, pages *web.Options, api *httpapi.Options)) *env {
	t.Helper()
	r := redistest.Start(t)
	e := &env{t: t, redis: r, store: redisstore.New(r.Client(), "signpost")}
	if redistest.SpreadForced() {
		e.store.SpreadReferrals() // as a cluster deployment runs (SIGNPOST_TEST_SPREAD)
	}
	e.clock.Store(time.Now().UnixMilli())
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.svc = usecases.New(gateway.Options{Store: e.store, Providers: providers, StrictNHSNumber: true, FHIRBase: e.srv.URL + "/fhir",
		Organizations: directory, MeasureRules: []gateway.MeasureRule{{Categories: []string{"*"}, Questionnaires: []string{"ons4", "ucla3"}, At: gateway.MeasurePoints}}})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	wo := web.Options{Portal: e.svc.Portal, Insights: e.svc.Insights, Accounts: e.store, Auditor: e.store, PublicURL: e.srv.URL,
		// signInBurst attempts, then one an hour: slow enough that no
		// test, however loaded the machine, sees one come back.
		Limiter: e.store.Limiter(1.0/3600, signInBurst), Logger: quiet, Now: func() time.Time { return time.UnixMilli(e.clock.Load()) }}
	o := httpapi.Options{
		UseCases: e.svc, PublicURL: e.srv.URL, Auditor: e.store, Logger: quiet,
		Caller: func(*http.Request) (gateway.Caller, error) { return practice, nil },
	}
	change(e, &wo, &o)
	o.Pages = web.New(wo)
	mux.Handle("/", httpapi.New(o))
	return e
}

// user adds an account (providerID "" for an operator).
func (e *env) user(providerID, email string) {
	e.t.Helper()
	addr, err := account.CanonicalEmail(email)
	if err != nil {
		e.t.Fatal(err)
	}
	// The password hashed at bcrypt's lowest cost rather than Signpost's: a
	// hash carries its cost, so sign-in checks it the same way, and tests
	// that sign in many times under the race detector do not spend minutes
	// hashing.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		e.t.Fatal(err)
	}
	u := account.PortalUser{Email: addr, ProviderID: providerID, PasswordHash: string(hash), Created: time.Now()}
	if err := e.store.AddUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
}

// refer sends a referral from the practice for a synthetic person and
// returns its Task id.
func (e *env) refer(ident, code, name string) string {
	e.t.Helper()
	ctx := context.Background()
	patientID := "pt-" + strings.ToLower(ident)
	patient := `{"resourceType":"Patient","id":"` + patientID + `",` +
		`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}],` +
		`"name":[{"text":` + quote(name) + `}],"telecom":[{"system":"phone","value":"0113 496 0000"}],"birthDate":"1950-01-01"}`
	if _, err := e.svc.Intake.Update(ctx, practice, gateway.TypePatient, patientID, []byte(patient), "", nil); err != nil {
		e.t.Fatal(err)
	}
	sr := `{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `","display":"Referral"}]},` +
		`"subject":{"reference":"Patient/` + patientID + `"},"note":[{"text":"Prefers mornings"}],` +
		`"requester":{"identifier":{"system":"` + odsSystem + `","value":"` + practiceODS + `"}}}`
	out, err := e.svc.Intake.Create(ctx, practice, gateway.TypeServiceRequest, []byte(sr), "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.svc.Search.Search(ctx, practice, gateway.TypeTask, url.Values{"focus": {"ServiceRequest/" + out.Resource.ID}}, false)
	if err != nil || len(res.Matches) != 1 {
		e.t.Fatalf("the referral's Task: %v", err)
	}
	return res.Matches[0].ID
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// browser is one person's browser: a cookie jar, no redirects followed
// (the tests look at them).
type browser struct {
	e      *env
	client *http.Client
	csrf   string // the last form token seen
	from   string // X-Forwarded-For to send, as a proxy in front would
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	if b.from != "" {
		req.Header.Set("X-Forwarded-For", b.from)
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfField.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return page{res.StatusCode, res.Header, string(body)}
}

func (b *browser) get(path string) page {
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form as the page's own would: with the last form token
// unless the form names its own, and with the site's Origin.
func (b *browser) post(path string, form url.Values) page {
	if !form.Has("csrf") {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.srv.URL)
	return b.do(req)
}

func (b *browser) signIn(email string) page {
	b.e.t.Helper()
	b.get("/portal/sign-in")
	return b.post("/portal/sign-in", url.Values{"email": {email}, "password": {password}})
}

// audited is the audit trail, oldest first, read over every partition's
// stream as the store keeps it (a spreading store's commits record theirs
// in their referral's partition).
func (e *env) audited() []gateway.AuditRecord {
	e.t.Helper()
	entries, err := e.store.AuditTail(context.Background(), 100_000)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]gateway.AuditRecord, len(entries))
	for i, en := range entries {
		out[i] = en.Record
	}
	return out
}

func (e *env) task(id string) *gateway.TaskView {
	e.t.Helper()
	r, err := e.store.Read(context.Background(), gateway.TypeTask, id)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := gateway.ParseTask(r.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) version(id string) int {
	r, err := e.store.Read(context.Background(), gateway.TypeTask, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Version
}

func TestSignInSetsASafeSessionCookie(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	b := e.browser()
	if p := b.get("/portal/referrals"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/sign-in" {
		t.Fatalf("signed out, the inbox answered %d to %q; want a redirect to sign in", p.status, p.header.Get("Location"))
	}
	p := b.signIn("Sam@Example.org")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/referrals" {
		t.Fatalf("sign-in answered %d to %q", p.status, p.header.Get("Location"))
	}
	var cookie string
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "signpost-session=") {
			cookie = c
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	// The store keeps the digest of the token, never the token.
	token := strings.TrimPrefix(strings.SplitN(cookie, ";", 2)[0], "signpost-session=")
	keys, _ := e.redis.Client().Keys(context.Background(), "*").Result()
	for _, k := range keys {
		if strings.Contains(k, token) {
			t.Errorf("the session token is in key %s", k)
		}
	}
	if p := b.get("/portal/referrals"); p.status != http.StatusOK || !strings.Contains(p.body, "Signed in as sam@example.org") {
		t.Fatalf("signed in, the inbox answered %d", p.status)
	}
	// Headers that keep the page from being framed, scripted or cached.
	p = b.get("/portal/referrals")
	for h, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
	} {
		if !strings.Contains(p.header.Get(h), want) {
			t.Errorf("%s: %q, want %q", h, p.header.Get(h), want)
		}
	}
	if csp := p.header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q allows more than it should", csp)
	}

	// Wrong password, unknown address, disabled account: one message for all.
	for _, c := range []struct{ email, password string }{{"sam@example.org", "wrong password here"}, {"nobody@example.org", password}} {
		o := e.browser()
		o.get("/portal/sign-in")
		p := o.post("/portal/sign-in", url.Values{"email": {c.email}, "password": {c.password}})
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "do not match an account") {
			t.Errorf("sign-in as %s: %d", c.email, p.status)
		}
	}

	// Signing out ends the session on the server: the old cookie is dead.
	old := b.client.Jar.Cookies(mustURL(e.srv.URL))
	b.post("/portal/sign-out", url.Values{})
	replay := e.browser()
	replay.client.Jar.SetCookies(mustURL(e.srv.URL), old)
	if p := replay.get("/portal/referrals"); p.status != http.StatusSeeOther {
		t.Errorf("a signed-out session's cookie still opens the inbox: %d", p.status)
	}
}

func TestSessionsEndAfterAWorkingDay(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	b := e.browser()
	b.signIn("sam@example.org")
	e.clock.Add((11 * time.Hour).Milliseconds())
	if p := b.get("/portal/referrals"); p.status != http.StatusOK {
		t.Fatalf("after 11 hours: %d", p.status)
	}
	e.clock.Add((time.Hour + time.Minute).Milliseconds())
	if p := b.get("/portal/referrals"); p.status != http.StatusSeeOther {
		t.Errorf("a session past 12 hours still opens the inbox: %d", p.status)
	}
}

// On https the cookies are Secure and __Host- prefixed (so no subdomain or
// plain-http page can set them), and the pages ask for HSTS. The public URL
// decides, as TLS usually ends at a proxy in front.
func TestCookiesOnHTTPSAreSecureAndHostOnly(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	const public = "https://signpost.example"
	pages := web.New(web.Options{Portal: e.svc.Portal, Insights: e.svc.Insights, Accounts: e.store, Auditor: e.store, PublicURL: public,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	serve := func(req *http.Request) *http.Response {
		req.Host = "signpost.example"
		rec := httptest.NewRecorder()
		pages.ServeHTTP(rec, req)
		return rec.Result()
	}
	checkCookie := func(res *http.Response, name string) *http.Cookie {
		t.Helper()
		for _, c := range res.Cookies() {
			if c.Name == name {
				if !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
					t.Errorf("cookie %s: Secure=%v HttpOnly=%v Path=%q Domain=%q; want Secure, HttpOnly, Path=/ and no Domain", name, c.Secure, c.HttpOnly, c.Path, c.Domain)
				}
				return c
			}
		}
		t.Fatalf("no %s cookie among %v", name, res.Header.Values("Set-Cookie"))
		return nil
	}
	form := serve(httptest.NewRequest(http.MethodGet, public+"/portal/sign-in", nil))
	if hsts := form.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("sign-in page on https without HSTS: %q", hsts)
	}
	signIn := checkCookie(form, "__Host-signpost-sign-in")
	post := httptest.NewRequest(http.MethodPost, public+"/portal/sign-in", strings.NewReader(url.Values{
		"email": {"sam@example.org"}, "password": {password}, "csrf": {signIn.Value}}.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.Header.Set("Origin", public)
	post.AddCookie(signIn)
	res := serve(post)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in on https: %d", res.StatusCode)
	}
	session := checkCookie(res, "__Host-signpost-session")
	// Signing in clears the sign-in form's token, and signing out the
	// session: a browser ignores a __Host- Set-Cookie without Secure, so
	// every one, clearing included, must carry it (with HttpOnly and
	// SameSite, as when it was set).
	cleared := false
	for _, c := range res.Cookies() {
		cleared = cleared || (c.Name == "__Host-signpost-sign-in" && c.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("sign-in on https does not clear the sign-in form's token: %v", res.Header.Values("Set-Cookie"))
	}
	inbox := httptest.NewRequest(http.MethodGet, public+"/portal/referrals", nil)
	inbox.AddCookie(session)
	page := serve(inbox)
	body, _ := io.ReadAll(page.Body)
	token := csrfField.FindStringSubmatch(string(body))
	if token == nil {
		t.Fatalf("the inbox on https has no form token: %d", page.StatusCode)
	}
	out := httptest.NewRequest(http.MethodPost, public+"/portal/sign-out", strings.NewReader(url.Values{"csrf": {token[1]}}.Encode()))
	out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	out.Header.Set("Origin", public)
	out.AddCookie(session)
	signOut := serve(out)
	if signOut.StatusCode != http.StatusOK {
		t.Fatalf("sign-out on https: %d", signOut.StatusCode)
	}
	for step, r := range map[string]*http.Response{"the sign-in form": form, "signing in": res, "signing out": signOut} {
		for _, c := range r.Header.Values("Set-Cookie") {
			if !strings.HasPrefix(c, "__Host-") {
				t.Errorf("a cookie on https without the __Host- prefix: %s", c)
				continue
			}
			for _, want := range []string{"; Secure", "; HttpOnly", "; SameSite=", "; Path=/"} {
				if !strings.Contains(c, want) {
					t.Errorf("%s: Set-Cookie %q lacks %s", step, c, strings.TrimPrefix(want, "; "))
				}
			}
		}
	}
}

func TestSignInIsRateLimited(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	guesser := e.browser()
	statuses := map[int]int{}
	for i := 0; i < signInBurst+2; i++ {
		guesser.get("/portal/sign-in")
		statuses[guesser.post("/portal/sign-in", url.Values{"email": {"sam@example.org"}, "password": {fmt.Sprintf("guess number %d", i)}}).status]++
	}
	if statuses[http.StatusUnauthorized] != signInBurst || statuses[http.StatusTooManyRequests] != 2 {
		t.Errorf("%d guesses answered %v; want %d refusals, then 429s", signInBurst+2, statuses, signInBurst)
	}
	// The account is limited wherever the guesses come from, so the right
	// password from a browser it has not been used on waits too.
	if p := e.browser().signIn("sam@example.org"); p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Errorf("the guessed account from a fresh browser: %d", p.status)
	}
}

// Guesses cannot lock a person out of their own browser: one that has
// signed in to the account before keeps an allowance of its own.
func TestGuessesDoNotLockOutABrowserThatSignedInBefore(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	sams := e.browser()
	if p := sams.signIn("sam@example.org"); p.status != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d", p.status)
	}
	sams.post("/portal/sign-out", url.Values{})
	guesser := e.browser() // same address as Sam: the address's allowance goes too
	for i := 0; i < signInBurst+2; i++ {
		guesser.get("/portal/sign-in")
		guesser.post("/portal/sign-in", url.Values{"email": {"sam@example.org"}, "password": {fmt.Sprintf("guess number %d", i)}})
	}
	if p := e.browser().signIn("sam@example.org"); p.status != http.StatusTooManyRequests {
		t.Fatalf("the guessed account from a fresh browser: %d, want 429", p.status)
	}
	if p := sams.signIn("sam@example.org"); p.status != http.StatusSeeOther {
		t.Errorf("Sam's own browser after the guesses: %d, want signed in (303)", p.status)
	}
	// Its allowance is its own, not a way round the limit: a device cookie
	// for another account counts for nothing there.
	e.user("walking", "alex@example.org")
	sams.post("/portal/sign-out", url.Values{})
	for i := 0; i < signInBurst; i++ {
		sams.get("/portal/sign-in")
		sams.post("/portal/sign-in", url.Values{"email": {"alex@example.org"}, "password": {"guess"}})
	}
	if p := sams.signIn("alex@example.org"); p.status != http.StatusTooManyRequests {
		t.Errorf("Sam's browser guessing another account: %d, want 429", p.status)
	}
}

// Behind a trusted proxy, attempts count against the address the proxy
// forwarded, so one guesser does not lock everyone behind the proxy out.
func TestSignInLimitIsPerForwardedAddressBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *httpapi.Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	e.user("walking", "sam@example.org")
	guesser := e.browser()
	guesser.from = "203.0.113.7"
	last := 0
	for i := 0; i < signInBurst+1; i++ { // a different account each time: only the address limit applies
		guesser.get("/portal/sign-in")
		last = guesser.post("/portal/sign-in", url.Values{"email": {fmt.Sprintf("nobody-%d@example.org", i)}, "password": {"guess"}}).status
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("guess %d from one address: %d, want 429", signInBurst+1, last)
	}
	sam := e.browser()
	sam.from = "198.51.100.20"
	if p := sam.signIn("sam@example.org"); p.status != http.StatusSeeOther {
		t.Errorf("another person behind the same proxy: %d, want signed in (303)", p.status)
	}
}

// Sign-in attempts whose email is not an address are limited by where they
// come from only: they share no account key, so guesses of junk from many
// places cannot throttle one another.
func TestMalformedEmailsShareNoSignInLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *httpapi.Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	for i := 0; i < signInBurst+2; i++ {
		b := e.browser()
		b.from = fmt.Sprintf("203.0.113.%d", i+1)
		b.get("/portal/sign-in")
		if st := b.post("/portal/sign-in", url.Values{"email": {"not an address"}, "password": {"guess"}}).status; st != http.StatusUnauthorized {
			t.Fatalf("attempt %d from its own address: %d, want 401", i+1, st)
		}
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestDisablingAnAccountEndsItsSessions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	b := e.browser()
	b.signIn("sam@example.org")
	if p := b.get("/portal/referrals"); p.status != http.StatusOK {
		t.Fatalf("inbox: %d", p.status)
	}
	if err := e.store.DisableUser(context.Background(), "sam@example.org"); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/portal/referrals"); p.status != http.StatusSeeOther {
		t.Errorf("a disabled account's session still opens the inbox: %d", p.status)
	}
	if p := e.browser().signIn("sam@example.org"); p.status != http.StatusUnauthorized {
		t.Errorf("a disabled account signed in: %d", p.status)
	}
}

func TestFormsWithoutTheirTokenAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	task := e.refer("CSRF-1", "390893007", "Alex Example")
	b := e.browser()
	b.signIn("sam@example.org")
	b.get("/portal/referrals/" + task)
	accept := func(csrf, origin string) page {
		form := url.Values{"action": {"accept"}, "version": {"1"}}
		if csrf != "-" {
			form.Set("csrf", csrf)
		}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/portal/referrals/"+task, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		return b.do(req)
	}
	for name, p := range map[string]page{
		"no token":          accept("-", ""),
		"a wrong token":     accept("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""),
		"another origin":    accept(b.csrf, "https://attacker.example"),
		"an empty token":    accept("", e.srv.URL),
		"no token, same-or": accept("-", e.srv.URL),
	} {
		if p.status != http.StatusForbidden {
			t.Errorf("a post with %s: %d, want 403", name, p.status)
		}
	}
	if got := e.task(task).Status; got != "requested" {
		t.Fatalf("a refused post changed the Task to %s", got)
	}
	// Sign-in has its own token: a sign-in form from elsewhere is refused.
	o := e.browser()
	if p := o.post("/portal/sign-in", url.Values{"email": {"sam@example.org"}, "password": {password}, "csrf": {"forged"}}); p.status != http.StatusForbidden {
		t.Errorf("a sign-in without the form's cookie: %d, want 403", p.status)
	}
	// With its token the same post works.
	if p := accept(b.csrf, e.srv.URL); p.status != http.StatusSeeOther {
		t.Fatalf("the page's own form: %d %s", p.status, p.body)
	}
}

func TestProviderActionsAreTaskTransitions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	accepted := e.refer("ACT-1", "390893007", "Alex Example")
	declined := e.refer("ACT-2", "390893007", "Jo Example")
	b := e.browser()
	b.signIn("sam@example.org")

	// act takes a step as the page's forms do: a step that closes the
	// referral first answers a page asking to confirm it, which changes
	// nothing, and then the confirming form.
	act := func(task, action string, extra url.Values) page {
		t.Helper()
		b.get("/portal/referrals/" + task)
		version := e.version(task)
		form := url.Values{"action": {action}, "version": {fmt.Sprint(version)}}
		for k, v := range extra {
			form[k] = v
		}
		p := b.post("/portal/referrals/"+task, form)
		if !portal.Action(action).Irreversible() || p.status != http.StatusOK {
			return p
		}
		if !strings.Contains(p.body, `name="confirm" value="yes"`) || !strings.Contains(p.body, "cannot be undone") {
			t.Fatalf("%s: a page that does not ask to confirm:\n%s", action, p.body)
		}
		if got := e.version(task); got != version {
			t.Fatalf("%s: asking to confirm changed the Task (version %d to %d)", action, version, got)
		}
		form.Set("confirm", "yes")
		return b.post("/portal/referrals/"+task, form)
	}
	// Task changes the GP hears of (the notify queue also carries the BaRS
	// responses to some of them, counted apart).
	notifications := func() int64 {
		jobs, _ := e.store.Queues(gateway.QueueNotify).List(context.Background())
		var n int64
		for _, j := range jobs {
			if j.Fields["event"] == "task-changed" {
				n++
			}
		}
		return n
	}
	before := notifications()
	if p := act(accepted, "accept", nil); p.status != http.StatusSeeOther {
		t.Fatalf("accept: %d %s", p.status, p.body)
	}
	if v := e.task(accepted); v.Status != "accepted" || e.version(accepted) != 2 {
		t.Errorf("after accept: %s v%d", v.Status, e.version(accepted))
	}
	act(accepted, "contact", nil)
	act(accepted, "first-session", nil)
	if p := act(accepted, "complete", url.Values{"code": {"goals-met"}, "text": {"Walks weekly now"}}); p.status != http.StatusSeeOther {
		t.Fatalf("complete: %d", p.status)
	}
	v := e.task(accepted)
	if v.Status != "completed" || len(v.Outputs) != 1 || v.Outputs[0].Concept[0].Code != "goals-met" || v.Outputs[0].Type.Code != "resulting-activity" {
		t.Errorf("after complete: %+v", v)
	}
	if e.version(accepted) != 5 {
		t.Errorf("accept, contact, first session, complete made version %d, want 5", e.version(accepted))
	}

	// Decline needs a coded reason; without one nothing changes.
	if p := act(declined, "decline", nil); p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "choose a reason") {
		t.Errorf("decline without a reason: %d", p.status)
	}
	if p := act(declined, "decline", url.Values{"code": {"no-capacity"}}); p.status != http.StatusSeeOther {
		t.Fatalf("decline: %d", p.status)
	}
	if v := e.task(declined); v.Status != "rejected" || v.StatusReasonCode != "no-capacity" || v.StatusReason == "" {
		t.Errorf("after decline: %+v", v)
	}
	// Every change queued the GP's notification, as an API update does.
	if got := notifications() - before; got != 5 {
		t.Errorf("%d notifications queued for 5 changes", got)
	}
	before = notifications()
	// A step on a stale page changes nothing.
	b.get("/portal/referrals/" + accepted)
	if p := b.post("/portal/referrals/"+accepted, url.Values{"action": {"did-not-attend"}, "version": {"2"}}); p.status != http.StatusPreconditionFailed {
		t.Errorf("a step on version 2 of version 5: %d", p.status)
	}
	// A step the status machine does not allow is refused by it, and one
	// the inbox does not offer for the status is refused too.
	if p := act(declined, "accept", nil); p.status != http.StatusConflict {
		t.Errorf("accepting a declined referral: %d", p.status)
	}
	if p := act(accepted, "contact", nil); p.status != http.StatusConflict || e.version(accepted) != 5 {
		t.Errorf("recording contact on a completed referral: %d, version %d", p.status, e.version(accepted))
	}
	long := e.refer("ACT-3", "390893007", "Kim Example")
	act(long, "accept", nil)
	if p := act(long, "hold", url.Values{"text": {strings.Repeat("x", 1001)}}); p.status != http.StatusUnprocessableEntity {
		t.Errorf("a 1,001-character hold reason: %d", p.status)
	}
	// A hold's reason is the hold's: resuming leaves the Task without it.
	act(long, "hold", url.Values{"text": {"Away for two weeks"}})
	if v := e.task(long); v.Status != "on-hold" || v.StatusReason != "Away for two weeks" {
		t.Fatalf("after hold: %s %q", v.Status, v.StatusReason)
	}
	act(long, "resume", nil)
	if v := e.task(long); v.Status == "on-hold" || v.StatusReason != "" {
		t.Errorf("after resume: %s with the hold's reason %q", v.Status, v.StatusReason)
	}
	// Each change has a Provenance naming the Task version, as over the API.
	prov, err := e.svc.Search.Search(context.Background(), practice, gateway.TypeProvenance, url.Values{"target": {"Task/" + accepted}}, false)
	if err != nil || prov.Total != 4 {
		t.Fatalf("Provenance of the accepted referral: %v, %v; want 4", prov, err)
	}
	// Each names the person who acted, for their organisation.
	for _, p := range prov.Matches {
		var body struct {
			Agent []struct {
				Who struct {
					Identifier struct{ System, Value string }
				}
				OnBehalfOf struct{ Reference string }
			}
		}
		if err := json.Unmarshal(p.Body, &body); err != nil || len(body.Agent) != 1 ||
			body.Agent[0].Who.Identifier.System != gateway.PortalUserSystem || body.Agent[0].Who.Identifier.Value != "sam@example.org" ||
			body.Agent[0].OnBehalfOf.Reference != "Organization/walking" {
			t.Errorf("Provenance does not name sam@example.org acting for Organization/walking: %s", p.Body)
		}
	}
}

func TestStaffSeeOnlyTheirProvidersReferrals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	e.user("advice", "kim@example.org")
	walking := e.refer("ISO-1", "390893007", "Alex Walker")
	advice := e.refer("ISO-2", "710913009", "Jo Adviser")

	kim := e.browser()
	kim.signIn("kim@example.org")
	list := kim.get("/portal/referrals")
	if !strings.Contains(list.body, "Jo Adviser") || strings.Contains(list.body, "Alex Walker") {
		t.Errorf("the advice inbox shows the wrong people:\n%s", list.body)
	}
	if p := kim.get("/portal/referrals/" + walking); p.status != http.StatusNotFound || strings.Contains(p.body, "Alex Walker") {
		t.Errorf("another provider's referral: %d", p.status)
	}
	if p := kim.post("/portal/referrals/"+walking, url.Values{"action": {"accept"}, "version": {"1"}}); p.status != http.StatusNotFound {
		t.Errorf("acting on another provider's referral: %d", p.status)
	}
	if e.task(walking).Status != "requested" {
		t.Error("another provider's staff changed the referral")
	}
	// The refused attempt is in the audit, with who made it.
	audited := false
	for _, r := range e.audited() {
		audited = audited || (r.User == "kim@example.org" && r.Interaction == "update" && r.Status == http.StatusNotFound && slices.Equal(r.What, []string{"Task/" + walking}))
	}
	if !audited {
		t.Error("a post at another provider's referral was not audited")
	}
	if p := kim.get("/portal/referrals/" + advice); p.status != http.StatusOK || !strings.Contains(p.body, "Jo Adviser") {
		t.Errorf("own referral: %d", p.status)
	}
	// Provider staff do not see the outcomes view.
	if p := kim.get("/insights/"); p.status != http.StatusForbidden {
		t.Errorf("provider staff opened the outcomes view: %d", p.status)
	}
}

func TestOnlyBareAddressesAreMailLinks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	ctx := context.Background()
	patient := `{"resourceType":"Patient","id":"pt-mail","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}],` +
		`"name":[{"text":"Mo Example"}],"telecom":[{"system":"email","value":"mo@example.org?bcc=someone@attacker.example"},{"system":"email","value":"mo2@example.org"}]}`
	if _, err := e.svc.Intake.Update(ctx, practice, gateway.TypePatient, "pt-mail", []byte(patient), "", nil); err != nil {
		t.Fatal(err)
	}
	sr := `{"resourceType":"ServiceRequest","status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"390893007"}]},"subject":{"reference":"Patient/pt-mail"}}`
	if _, err := e.svc.Intake.Create(ctx, practice, gateway.TypeServiceRequest, []byte(sr), "", nil); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn("sam@example.org")
	p := b.get("/portal/referrals")
	if strings.Contains(p.body, "mailto:mo@example.org?") || strings.Contains(p.body, "mailto:mo@example.org%3f") || !strings.Contains(p.body, `href="mailto:mo2@example.org"`) {
		t.Errorf("mail links:\n%s", p.body)
	}
}

func TestPatientDetailsAreEscapedAndEveryViewAudited(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	task := e.refer("ESC-1", "390893007", `<script>alert(1)</script> Example`)
	b := e.browser()
	b.signIn("sam@example.org")
	p := b.get("/portal/referrals/" + task)
	if strings.Contains(p.body, "<script>") || !strings.Contains(p.body, "&lt;script&gt;") {
		t.Errorf("the name was not escaped")
	}
	for _, want := range []string{"9434765919", "0113 496 0000", "Prefers mornings", "History"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the referral page lacks %q", want)
		}
	}
	b.get("/portal/referrals?list=new")
	var views []gateway.AuditRecord
	for _, r := range e.audited() {
		// Sam's sign-in has its own record (a login, not a view).
		if r.User == "sam@example.org" && r.Interaction != gateway.InteractionLogin {
			views = append(views, r)
		}
	}
	if len(views) != 2 {
		t.Fatalf("%d audit records of sam's views, want 2 (the referral, the list)", len(views))
	}
	for _, r := range views {
		if r.Client != "walking" || !strings.Contains(strings.Join(r.What, " "), "Task/"+task) || !strings.Contains(strings.Join(r.What, " "), "Patient/") {
			t.Errorf("audit record %+v does not name who saw which Task and Patient", r)
		}
		ev := string(auditevent.Render(r, e.srv.URL+"/fhir"))
		if !strings.Contains(ev, "humanuser") || strings.Contains(ev, "Example") || strings.Contains(ev, nhsNumber) {
			t.Errorf("AuditEvent %s", ev)
		}
	}
}

func TestOutcomesViewCountsTheFunnel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	e.user("", "lead@example.org")
	done := e.refer("OUT-1", "390893007", "Alex Example")
	no := e.refer("OUT-2", "390893007", "Jo Example")
	dna := e.refer("OUT-3", "390893007", "Sam Example")
	e.refer("OUT-4", "710913009", "Kim Example")
	staff := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	step := func(task string, s portal.Step) {
		t.Helper()
		s.Version = e.version(task)
		if _, err := e.svc.Portal.Progress(context.Background(), staff, task, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	step(done, portal.Step{Action: portal.ActionAccept})
	step(done, portal.Step{Action: portal.ActionContact})
	step(done, portal.Step{Action: portal.ActionFirstSession})
	step(done, portal.Step{Action: portal.ActionComplete, Code: "goals-met"})
	step(no, portal.Step{Action: portal.ActionDecline, Code: "person-declined"})
	step(dna, portal.Step{Action: portal.ActionAccept})
	step(dna, portal.Step{Action: portal.ActionDidNotAttend})

	lead := e.browser()
	if p := lead.signIn("lead@example.org"); p.header.Get("Location") != "/insights/" {
		t.Fatalf("an operator signed in to %q", p.header.Get("Location"))
	}
	p := lead.get("/insights/")
	if p.status != http.StatusOK || !strings.Contains(p.body, "<svg") || strings.Contains(p.body, "Alex Example") {
		t.Fatalf("outcomes view: %d", p.status)
	}
	if p := lead.get("/portal/referrals"); p.status != http.StatusForbidden {
		t.Errorf("an operator opened a provider's inbox: %d", p.status)
	}
	csvPage := lead.get("/insights/outcomes.csv")
	rows, err := csv.NewReader(strings.NewReader(csvPage.body)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("CSV: %v\n%s", err, csvPage.body)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	all := rows[1]
	for name, want := range map[string]string{"sent": "4", "delivered": "3", "accepted": "2", "started": "1", "completed": "1",
		"declined": "1", "did_not_attend": "1", "failed": "0", "accepted_n": "2", "first_contact_n": "1"} {
		if all[col[name]] != want {
			t.Errorf("CSV %s = %s, want %s", name, all[col[name]], want)
		}
	}
	mr := lead.get("/insights/MeasureReport")
	var report struct {
		ResourceType string `json:"resourceType"`
		Status, Type string
		Group        []struct {
			Code struct {
				Coding []struct{ Code string }
			}
			Population []struct{ Count int }
			Stratifier []struct {
				Stratum []struct {
					Value struct {
						Coding []struct{ Code string }
					}
					Population []struct{ Count int }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(mr.body), &report); err != nil || report.ResourceType != "MeasureReport" || report.Type != "summary" {
		t.Fatalf("MeasureReport: %v %s", err, mr.body)
	}
	counts := map[string]int{}
	for _, g := range report.Group {
		counts[g.Code.Coding[0].Code] = g.Population[0].Count
		if g.Code.Coding[0].Code == "declined" {
			found := false
			for _, s := range g.Stratifier {
				for _, st := range s.Stratum {
					found = found || (st.Value.Coding[0].Code == "person-declined" && st.Population[0].Count == 1)
				}
			}
			if !found {
				t.Error("the declined group has no person-declined stratum")
			}
		}
	}
	if counts["sent"] != 4 || counts["completed"] != 1 || counts["did-not-attend"] != 1 {
		t.Errorf("MeasureReport counts %v", counts)
	}
	// The page's download links carry the period chosen on the page.
	page := lead.get("/insights/?from=2020-01-01&to=2020-01-31")
	link := regexp.MustCompile(`href="(/insights/outcomes\.csv[^"]*)"`).FindStringSubmatch(page.body)
	if link == nil {
		t.Fatal("no CSV link on the page")
	}
	if p := lead.get(strings.ReplaceAll(link[1], "&amp;", "&")); !strings.Contains(p.body, "2020-01-01,2020-01-31,all,all,All referrals,0,") {
		t.Errorf("the CSV link %s gives another period:\n%s", link[1], p.body)
	}
	// A period before the referrals holds none of them.
	if p := lead.get("/insights/outcomes.csv?from=2020-01-01&to=2020-01-31"); !strings.Contains(p.body, ",all,all,All referrals,0,") {
		t.Errorf("an empty period:\n%s", p.body)
	}
	if p := lead.get("/insights/?from=yesterday"); p.status != http.StatusBadRequest {
		t.Errorf("a bad date: %d", p.status)
	}
}

// The address itself is a page for people, leading to the inbox, the
// outcomes view and the API (it was a FHIR OperationOutcome).
func TestWelcomePageLeadsOn(t *testing.T) {
	t.Parallel()
	e := setup(t)
	res, err := http.Get(e.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, link := range []string{`href="/portal/"`, `href="/insights/"`, `href="/fhir/metadata"`} {
		if !strings.Contains(string(body), link) {
			t.Errorf("the page has no %s", link)
		}
	}
	if res.Header.Get("Content-Security-Policy") == "" {
		t.Error("the page is served without the pages' security headers")
	}
}

// TestPagesSayNamesNotCodes: the inbox, the referral page and the header
// name organisations as people know them (issue 19): "From" is the
// directory's name with its ODS code, "Referred for" is the code table's
// words for the referral's code (the referral sent no text), the header
// names the organisation the person works for, and each history line says
// who acted.
func TestPagesSayNamesNotCodes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	task := e.refer("NAME-1", "390893007", "Alex Example")
	b := e.browser()
	b.signIn("sam@example.org")
	inbox := b.get("/portal/referrals")
	for _, want := range []string{"Example Surgery (" + practiceODS + ")", "Referral to physical activity program", `<strong class="org">Walking for Health</strong>`} {
		if !strings.Contains(inbox.body, want) {
			t.Errorf("the inbox lacks %q", want)
		}
	}
	if strings.Contains(inbox.body, `<td data-label="From">`+practiceODS+`</td>`) {
		t.Error("the inbox's From is a bare ODS code")
	}
	b.post("/portal/referrals/"+task, url.Values{"action": {"accept"}, "version": {"1"}})
	got := b.get("/portal/referrals/" + task)
	for _, want := range []string{
		`<td data-label="Who">Example Surgery (` + practiceODS + `)</td>`,           // the referral as it came
		`<td data-label="Who">sam@example.org, for Walking for Health (X1A2B)</td>`, // the person who accepted it
	} {
		if !strings.Contains(got.body, want) {
			t.Errorf("the history lacks %s:\n%s", want, got.body)
		}
	}
}

// TestClosingStepsAreConfirmed: declining, completing and "did not attend"
// answer a page that asks to confirm, with a plain form (no script), and
// change nothing until that form is sent; the others act at once.
func TestClosingStepsAreConfirmed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	task := e.refer("CONF-1", "390893007", "Jo Example")
	b := e.browser()
	b.signIn("sam@example.org")
	b.get("/portal/referrals/" + task)
	ask := b.post("/portal/referrals/"+task, url.Values{"action": {"decline"}, "version": {"1"}, "code": {"no-capacity"}, "text": {"Group full until spring"}})
	if ask.status != http.StatusOK {
		t.Fatalf("decline, unconfirmed: %d", ask.status)
	}
	for _, want := range []string{
		"<h1>Decline the referral for Jo Example?</h1>", "cannot be undone", "Example Surgery (" + practiceODS + ") will be told",
		`name="action" value="decline"`, `name="code" value="no-capacity"`, `name="text" value="Group full until spring"`,
		`name="version" value="1"`, `name="confirm" value="yes"`, `<button type="submit" class="ends">Yes, decline it</button>`,
		`<a href="/portal/referrals/` + task + `">No, go back without changing anything</a>`,
	} {
		if !strings.Contains(ask.body, want) {
			t.Errorf("the confirmation page lacks %s", want)
		}
	}
	if strings.Contains(ask.body, "<script") {
		t.Error("the confirmation page has a script")
	}
	if v := e.task(task); v.Status != "requested" || e.version(task) != 1 {
		t.Fatalf("asking to confirm changed the Task: %s v%d", v.Status, e.version(task))
	}
	// Going back changes nothing either; confirming declines.
	if p := b.get("/portal/referrals/" + task); p.status != http.StatusOK || e.version(task) != 1 {
		t.Fatalf("going back: %d, v%d", p.status, e.version(task))
	}
	form := url.Values{"action": {"decline"}, "version": {"1"}, "code": {"no-capacity"}, "text": {"Group full until spring"}, "confirm": {"yes"}}
	if p := b.post("/portal/referrals/"+task, form); p.status != http.StatusSeeOther {
		t.Fatalf("decline, confirmed: %d", p.status)
	}
	if v := e.task(task); v.Status != "rejected" || v.StatusReasonCode != "no-capacity" {
		t.Errorf("after confirming: %+v", v)
	}
	// The same confirmation sent twice (a double click) changes nothing more.
	if p := b.post("/portal/referrals/"+task, form); p.status == http.StatusSeeOther || e.version(task) != 2 {
		t.Errorf("confirming again: %d, v%d", p.status, e.version(task))
	}
	// A step that would be refused is refused before it is confirmed.
	other := e.refer("CONF-2", "390893007", "Sam Example")
	b.get("/portal/referrals/" + other)
	if p := b.post("/portal/referrals/"+other, url.Values{"action": {"decline"}, "version": {"1"}}); p.status != http.StatusUnprocessableEntity || strings.Contains(p.body, `name="confirm"`) {
		t.Errorf("a decline without a reason: %d", p.status)
	}
	// A closing step that does not apply to the referral as it stands is
	// refused, not confirmed (completing one not yet accepted).
	if p := b.post("/portal/referrals/"+other, url.Values{"action": {"complete"}, "version": {"1"}, "code": {"goals-met"}}); p.status != http.StatusConflict || strings.Contains(p.body, `name="confirm"`) {
		t.Errorf("completing a new referral: %d", p.status)
	}
	// Accepting is not closing: it acts at once.
	if p := b.post("/portal/referrals/"+other, url.Values{"action": {"accept"}, "version": {"1"}}); p.status != http.StatusSeeOther {
		t.Errorf("accept: %d", p.status)
	}
	b.get("/portal/referrals/" + other)
	dna := b.post("/portal/referrals/"+other, url.Values{"action": {"did-not-attend"}, "version": {"2"}})
	if dna.status != http.StatusOK || !strings.Contains(dna.body, "<h1>Record that Sam Example did not attend?</h1>") || e.version(other) != 2 {
		t.Errorf("did not attend, unconfirmed: %d v%d", dna.status, e.version(other))
	}
}
