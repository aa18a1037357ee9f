package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// The web pages in a real browser: headless Chromium driven over the
// DevTools protocol, against `signpost serve` with its workers and a GP
// record that receives the write-back. CI installs Debian's chromium; a
// machine without it skips these tests, except under CI, where that fails.

// browserAllocator starts headless Chromium for a test.
func browserAllocator(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if path, err = exec.LookPath("chromium-browser"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("chromium is not installed; .ci/run installs it")
			}
			t.Skip("chromium is not installed (apt-get install chromium)")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900),
		// The machine's network is closed: nothing may try to reach Google.
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true))
	ctx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return ctx
}

// newBrowser is one person's browser: its own profile, so its own cookies.
func newBrowser(t *testing.T, alloc context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// A guard against a hung browser, not a speed check: on a loaded
	// two-CPU host, under -race and beside the other packages' tests, one
	// test's browser work has taken over a minute where alone it takes six
	// seconds, and a whole browser test 270 s on a host busier still. So
	// the guard is the test binary's own deadline (go test -timeout), less
	// a little for the test to report where it hung; four minutes only
	// when the run has no deadline longer than that.
	hangGuard := 4 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second > hangGuard {
		hangGuard = time.Until(d) - 30*time.Second
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, hangGuard)
	t.Cleanup(cancelTimeout)
	return ctx
}

// gpRecord is a GP system's FHIR server: it keeps every status Signpost
// writes back to its copy of each Task.
type gpRecord struct {
	mu       sync.Mutex
	statuses map[string][]string // Signpost Task id -> statuses written, in order
}

func (g *gpRecord) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var task struct {
		ResourceType string
		Status       string
		Identifier   []struct{ System, Value string }
	}
	if json.Unmarshal(body, &task) == nil && task.ResourceType == "Task" {
		g.mu.Lock()
		for _, id := range task.Identifier {
			if id.System == "https://signpost.health/fhir/Id/task" {
				g.statuses[id.Value] = append(g.statuses[id.Value], task.Status)
			}
		}
		g.mu.Unlock()
	}
	w.Header().Set("Location", "/fhir/"+task.ResourceType+"/gp-copy/_history/1")
	w.Header().Set("ETag", `W/"1"`)
	w.WriteHeader(http.StatusCreated)
}

// waitFor waits until the GP record has been told a Task's status.
func (g *gpRecord) waitFor(t *testing.T, taskID, status string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		got := slices.Contains(g.statuses[taskID], status)
		g.mu.Unlock()
		if got {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Errorf("the GP record was never told Task %s is %s; it was told %v", taskID, status, g.statuses[taskID])
}

// portalServer runs signpost serve with two portal providers, write-back to
// a GP record, and staff accounts for both providers and an operator.
func portalServer(t *testing.T) (*serving, *gpRecord) {
	t.Helper()
	gp := &gpRecord{statuses: map[string][]string{}}
	gpServer := httptest.NewServer(gp)
	t.Cleanup(gpServer.Close)
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", strings.Replace(testConfig, "value: \"A81001\" }\n",
		"value: \"A81001\" }\n    notify: { fhir_base: \""+gpServer.URL+"/fhir\" }\n", 1)+"outbound_allow: [\"127.0.0.0/8\"]\n"+
		"organizations: [{ ods: \"A81001\", name: \"Example Surgery\" }]\n"+
		"measures: [{ categories: [\"*\"], questionnaires: [ons4, ucla3], at: [first-contact, completion] }]\n")
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})
	for _, u := range [][]string{{"walking", "sam@example.org"}, {"link", "kim@example.org"}, {"-operator", "lead@example.org"}} {
		var out bytes.Buffer
		args := []string{"add", "-config", cfg, u[0], u[1]}
		must(t, runUsers(context.Background(), args, getenv, strings.NewReader(browserPassword+"\n"), &out, io.Discard))
	}
	return startSignpost(t, []string{"serve", "-config", cfg}, getenv), gp
}

const browserPassword = "correct horse battery staple"

// referPerson sends a referral for a synthetic person over the API and
// returns its Task id.
func referPerson(t *testing.T, base, ident, code, name, phone string) string {
	t.Helper()
	return referFor(t, base, ident, code, codeText[code], name, phone)
}

// referFor sends a referral whose code the GP describes in words (code.text;
// "" sends none, as GP systems often do).
func referFor(t *testing.T, base, ident, code, words, name, phone string) string {
	t.Helper()
	pid := "pt-" + strings.ToLower(ident)
	patient := `{"resourceType":"Patient","id":"` + pid + `","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],` +
		`"name":[{"text":"` + name + `"}],"telecom":[{"system":"phone","value":"` + phone + `"}],"birthDate":"1948-03-02"}`
	put(t, base+"/fhir/Patient/"+pid, patient, http.StatusCreated)
	sr := `{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]` + reasonText(words) + `},` +
		`"subject":{"reference":"Patient/` + pid + `"},"requester":{"display":"Leeds Road Surgery","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}},` +
		`"note":[{"text":"Lives alone; happy to be phoned in the mornings."}]}`
	return postReferral(t, base, ident, sr)
}

// postReferral POSTs a ServiceRequest body and returns the id of the Task
// the referral was given (as the operator sees it).
func postReferral(t *testing.T, base, ident, sr string) string {
	t.Helper()
	res, err := http.Post(base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(sr))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("referral %s: %d", ident, res.StatusCode)
	}
	_, after, _ := strings.Cut(res.Header.Get("Location"), "/ServiceRequest/")
	srID, _, _ := strings.Cut(after, "/")
	var bundle struct {
		Entry []struct {
			Resource struct{ ID string }
		}
	}
	getJSON(t, base+"/fhir/Task?focus=ServiceRequest/"+srID, &bundle)
	if len(bundle.Entry) != 1 {
		t.Fatalf("referral %s has %d Tasks", ident, len(bundle.Entry))
	}
	return bundle.Entry[0].Resource.ID
}

// reasonText is a code.text member of the GP's words; none for no words.
func reasonText(words string) string {
	if words == "" {
		return ""
	}
	return `,"text":"` + words + `"`
}

var codeText = map[string]string{
	"390893007": "Referral to physical activity program",
	"710913009": "Referral to financial service",
	"308463006": "Refer to community day center",
}

func put(t *testing.T, url, body string, want int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := http.DefaultClient.Do(req)
	must(t, err)
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("PUT %s: %d", url, res.StatusCode)
	}
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	res, err := http.Get(url)
	must(t, err)
	defer res.Body.Close()
	must(t, json.NewDecoder(res.Body).Decode(into))
}

// taskState reads a Task's status and version over the API.
func taskState(t *testing.T, base, id string) (string, string) {
	t.Helper()
	var task struct {
		Status string
		Meta   struct{ VersionID string }
	}
	getJSON(t, base+"/fhir/Task/"+id, &task)
	return task.Status, task.Meta.VersionID
}

// signIn signs a browser in through the form, as a person would.
func signIn(base, email string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/portal/sign-in"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), browserPassword),
		chromedp.Submit(chromedp.CSS("#password")),
	)
}

// actOn opens a referral and submits one of its action forms, after fill,
// confirms it on the page that asks when the step closes the referral,
// then waits for the page that answers.
func actOn(base, taskID, action string, fill ...chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/portal/referrals/" + taskID), chromedp.WaitVisible(chromedp.CSS("h1"))}
	steps = append(steps, fill...)
	steps = append(steps, chromedp.Click(chromedp.CSS(`form.action:has(input[name="action"][value="`+action+`"]) button`)))
	if portal.Action(action).Irreversible() {
		steps = append(steps, chromedp.Click(chromedp.CSS(`form.confirm-form button`)))
	}
	return chromedp.Steps(append(steps, chromedp.WaitVisible(chromedp.CSS(".message")))...)
}

// text reads an element's text.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	must(t, err)
	return s
}

func TestBrowserInboxClosesTheLoop(t *testing.T) {
	t.Parallel()
	alloc := browserAllocator(t)
	srv, gp := portalServer(t)
	base := srv.base
	acceptMe := referPerson(t, base, "WEB-1", "390893007", "Alex Morgan", "0113 496 0001")
	declineMe := referPerson(t, base, "WEB-2", "390893007", "Jo Bennett", "0113 496 0002")
	completeMe := referPerson(t, base, "WEB-3", "390893007", "Sam Patel", "0113 496 0003")
	referPerson(t, base, "WEB-4", "390893007", "Chris Evans", "0113 496 0004")
	referPerson(t, base, "WEB-5", "710913009", "Pat Lee", "0113 496 0005")

	sam := newBrowser(t, alloc)
	must(t, chromedp.Do(sam, signIn(base, "sam@example.org"), chromedp.WaitVisible(chromedp.CSS("table.referrals"))))
	inbox := text(t, sam, "main")
	for _, want := range []string{"Alex Morgan", "Jo Bennett", "Sam Patel", "0113 496 0001", "Referral to physical activity program", "Example Surgery (A81001)"} {
		if !strings.Contains(inbox, want) {
			t.Errorf("the inbox lacks %q", want)
		}
	}
	if strings.Contains(inbox, "Pat Lee") {
		t.Error("the walking inbox shows another provider's referral")
	}
	screenshot(t, sam, "inbox.png")

	checkAccessible(t, sam, "the inbox")

	// Accept one, with the keyboard alone: Tab first reaches the skip
	// link, and Enter on the focused button sends its form.
	must(t, chromedp.Do(sam, chromedp.Navigate(base+"/portal/referrals/"+acceptMe), chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.KeyEvent("\t")))
	if focused := evaluate[string](t, sam, `document.activeElement.textContent`); focused != "Skip to main content" {
		t.Errorf("the first Tab reaches %q, not the skip link", focused)
	}
	checkAccessible(t, sam, "a new referral")
	must(t, chromedp.Do(sam,
		chromedp.Focus(chromedp.CSS(`form.action:has(input[name="action"][value="accept"]) button`)),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(".message"))))
	if msg := text(t, sam, ".message"); !strings.Contains(msg, "Accepted") {
		t.Errorf("after accept the page says %q", msg)
	}
	// Decline another, with a coded reason.
	must(t, chromedp.Do(sam, actOn(base, declineMe, "decline",
		chromedp.SetValue(chromedp.CSS("#decline-code"), "no-capacity"),
		chromedp.SendKeys(chromedp.CSS("#decline-text"), "Group full until spring"))))
	// Take a third through to completion with an outcome.
	must(t, chromedp.Do(sam,
		actOn(base, completeMe, "accept"),
		actOn(base, completeMe, "contact"),
		actOn(base, completeMe, "first-session"),
		actOn(base, completeMe, "complete", chromedp.SetValue(chromedp.CSS("#complete-code"), "goals-met"))))
	screenshotPage(t, sam, base+"/portal/referrals/"+acceptMe, "referral.png")
	checkAccessible(t, sam, "an accepted referral")

	// On a phone the pages fit the screen: nothing scrolls sideways.
	must(t, chromedp.Do(sam, chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/portal/referrals?list=in-progress"), chromedp.WaitVisible(chromedp.CSS("h1"))))
	checkAccessible(t, sam, "the inbox on a phone")
	must(t, chromedp.Do(sam, chromedp.Navigate(base+"/portal/referrals/"+acceptMe), chromedp.WaitVisible(chromedp.CSS("h1"))))
	checkAccessible(t, sam, "a referral on a phone")
	must(t, chromedp.Do(sam, chromedp.EmulateReset()))

	for _, c := range []struct{ id, status, version string }{
		{acceptMe, "accepted", "3"}, {declineMe, "rejected", "3"}, {completeMe, "completed", "6"},
	} {
		// Version 1 is the referral, 2 its delivery to the portal; then one per action.
		if status, version := taskState(t, base, c.id); status != c.status || version != c.version {
			t.Errorf("Task %s is %s version %s; want %s version %s", c.id, status, version, c.status, c.version)
		}
		gp.waitFor(t, c.id, c.status)
	}

	// A form without its CSRF token is refused, and changes nothing.
	must(t, chromedp.Do(sam,
		chromedp.Navigate(base+"/portal/referrals/"+acceptMe),
		chromedp.WaitVisible(chromedp.CSS("form.action")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('input[name="csrf"]').forEach(e => e.remove()), 1`))
			return err
		}),
		chromedp.Click(chromedp.CSS(`form.action:has(input[name="action"][value="first-session"]) button`)),
		chromedp.WaitVisible(chromedp.CSS(".message"))))
	if refused := text(t, sam, ".message"); !strings.Contains(refused, "refused") {
		t.Errorf("a form without its token: %q", refused)
	}
	if status, version := taskState(t, base, acceptMe); status != "accepted" || version != "3" {
		t.Errorf("a refused form changed the Task: %s v%s", status, version)
	}

	// The other provider's staff see their own referral and not these.
	kim := newBrowser(t, alloc)
	must(t, chromedp.Do(kim, signIn(base, "kim@example.org"), chromedp.WaitVisible(chromedp.CSS("table.referrals"))))
	kimInbox := text(t, kim, "main")
	must(t, chromedp.Do(kim, chromedp.Navigate(base+"/portal/referrals/"+acceptMe), chromedp.WaitVisible(chromedp.CSS("h1"))))
	notTheirs := text(t, kim, "main")
	if !strings.Contains(kimInbox, "Pat Lee") || strings.Contains(kimInbox, "Alex Morgan") || strings.Contains(kimInbox, "Jo Bennett") {
		t.Errorf("the link workers' inbox:\n%s", kimInbox)
	}
	if strings.Contains(notTheirs, "Alex Morgan") || !strings.Contains(notTheirs, "not one of yours") {
		t.Errorf("another provider's referral opened:\n%s", notTheirs)
	}

	// The outcomes view counts what happened.
	lead := newBrowser(t, alloc)
	must(t, chromedp.Do(lead, signIn(base, "lead@example.org"), chromedp.WaitVisible(chromedp.CSS("figure.chart svg"))))
	outcomes := text(t, lead, "main")
	for _, want := range []string{"Referrals sent from", "How far referrals got", "Why referrals were declined", "Walking for Health"} {
		if !strings.Contains(outcomes, want) {
			t.Errorf("the outcomes view lacks %q", want)
		}
	}
	if strings.Contains(outcomes, "Alex Morgan") || strings.Contains(outcomes, "9000000009") {
		t.Error("the outcomes view shows a person")
	}
	checkAccessible(t, lead, "the outcomes view")
	screenshot(t, lead, "outcomes.png")
}

// evaluate runs JavaScript in the page through the DevTools protocol (the
// pages' own policy allows no scripts).
func evaluate[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	must(t, err)
	return v
}

// checkAccessible checks what can be checked mechanically: every visible
// control has a label, the page has one h1 and its headings skip no level,
// images and charts have text, and nothing overflows the screen sideways.
func checkAccessible(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	problems := evaluate[[]string](t, ctx, `(() => {
  const bad = [];
  document.querySelectorAll('input:not([type=hidden]), select, textarea').forEach(el => {
    if (!el.id || !document.querySelector('label[for="' + el.id + '"]')) bad.push('no label for ' + (el.name || el.tagName));
  });
  document.querySelectorAll('button').forEach(b => { if (!b.textContent.trim()) bad.push('a button with no text'); });
  if (document.querySelectorAll('h1').length !== 1) bad.push(document.querySelectorAll('h1').length + ' h1 elements');
  let last = 0;
  document.querySelectorAll('h1, h2, h3, h4').forEach(h => {
    const level = +h.tagName[1];
    if (level > last + 1) bad.push('heading ' + h.tagName + ' after h' + last);
    last = level;
  });
  document.querySelectorAll('svg').forEach(s => { if (s.getAttribute('role') !== 'img' || !s.querySelector('title')) bad.push('a chart with no text'); });
  if (!document.documentElement.lang) bad.push('no lang');
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth + 1) bad.push('wider than the screen: ' + document.documentElement.scrollWidth + 'px in ' + document.documentElement.clientWidth + 'px');
  return bad;
})()`)
	for _, p := range problems {
		t.Errorf("%s: %s", what, p)
	}
}

// screenshot saves the page as a PNG under $SIGNPOST_SCREENSHOTS, for the
// README (set it to gateway/web/screenshots to refresh them).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("SIGNPOST_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}

func screenshotPage(t *testing.T, ctx context.Context, url, name string) {
	t.Helper()
	if os.Getenv("SIGNPOST_SCREENSHOTS") == "" {
		return
	}
	must(t, chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("h1"))))
	screenshot(t, ctx, name)
}

// withoutScripts switches off JavaScript in a browser's pages, as some
// people and some organisations' browsers have it.
func withoutScripts() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	})
}

// fitsTheScreen checks that nothing scrolls sideways: the page is no wider
// than the screen, and no element reaches past its right edge.
func fitsTheScreen(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	wide := evaluate[[]string](t, ctx, `(() => {
  const doc = document.scrollingElement, bad = [];
  if (doc.scrollWidth > doc.clientWidth) bad.push('the page is ' + doc.scrollWidth + 'px wide in ' + doc.clientWidth + 'px');
  document.querySelectorAll('main *').forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > doc.clientWidth + 1) bad.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ' reaches ' + Math.round(r.right) + 'px');
  });
  return bad.slice(0, 5);
})()`)
	for _, w := range wide {
		t.Errorf("%s at 360px: %s", what, w)
	}
}

// TestBrowserConfirmsClosingStepsAndSaysNames: issue 19's pages in a real
// browser. Closing a referral asks first, on a page that works with
// JavaScript switched off and whose confirm button the keyboard reaches;
// the pages name organisations, not codes; the outcomes view reads dates
// in words and fits a 360px phone.
func TestBrowserConfirmsClosingStepsAndSaysNames(t *testing.T) {
	t.Parallel()
	alloc := browserAllocator(t)
	srv, gp := portalServer(t)
	base := srv.base
	declineMe := referPerson(t, base, "CONFIRM-1", "390893007", "Robin Hughes", "0113 496 0011")
	dnaMe := referPerson(t, base, "CONFIRM-2", "390893007", "Morgan Ellis", "0113 496 0012")
	referFor(t, base, "CONFIRM-3", "710913009", "", "Casey Doyle", "0113 496 0013") // sent without words: the code table's are shown

	sam := newBrowser(t, alloc)
	must(t, chromedp.Do(sam, withoutScripts(), signIn(base, "sam@example.org"), chromedp.WaitVisible(chromedp.CSS("table.referrals"))))
	if js := evaluate[string](t, sam, `typeof document.body.onclick`); js == "" {
		t.Fatal("no answer from the page")
	}
	if header := text(t, sam, "header.site"); !strings.Contains(header, "Walking for Health") || !strings.Contains(header, "sam@example.org") {
		t.Errorf("the header does not name the organisation: %q", header)
	}
	if from := text(t, sam, `td[data-label="From"]`); from != "Example Surgery (A81001)" {
		t.Errorf("From: %q", from)
	}

	// Decline: the first form asks, and nothing has changed yet.
	must(t, chromedp.Do(sam, chromedp.Navigate(base+"/portal/referrals/"+declineMe), chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.SetValue(chromedp.CSS("#decline-code"), "no-capacity"),
		chromedp.SendKeys(chromedp.CSS("#decline-text"), "Group full until spring"),
		chromedp.Click(chromedp.CSS(`form.action:has(input[name="action"][value="decline"]) button`)),
		chromedp.WaitVisible(chromedp.CSS("form.confirm-form"))))
	if h1 := text(t, sam, "h1"); h1 != "Decline the referral for Robin Hughes?" {
		t.Errorf("the confirmation asks %q", h1)
	}
	if status, version := taskState(t, base, declineMe); status != "requested" || version != "2" {
		t.Errorf("before confirming the Task is %s v%s", status, version)
	}
	checkAccessible(t, sam, "the confirmation page")
	screenshot(t, sam, "confirm.png")
	// "No" goes back and changes nothing.
	must(t, chromedp.Do(sam, chromedp.Click(chromedp.CSS(`form.confirm-form a`)), chromedp.WaitVisible(chromedp.CSS(`form.action`))))
	if status, version := taskState(t, base, declineMe); status != "requested" || version != "2" {
		t.Errorf("after going back the Task is %s v%s", status, version)
	}
	// Again, and confirm with the keyboard alone: Tab reaches the button.
	must(t, chromedp.Do(sam,
		chromedp.SetValue(chromedp.CSS("#decline-code"), "no-capacity"),
		chromedp.Click(chromedp.CSS(`form.action:has(input[name="action"][value="decline"]) button`)),
		chromedp.WaitVisible(chromedp.CSS("form.confirm-form"))))
	reached := false
	for range 12 {
		must(t, chromedp.Do(sam, chromedp.KeyEvent("\t")))
		if evaluate[bool](t, sam, `document.activeElement.matches('form.confirm-form button')`) {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatal("Tab never reaches the confirm button")
	}
	must(t, chromedp.Do(sam, chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(".message"))))
	if msg := text(t, sam, ".message"); !strings.Contains(msg, "Declined") {
		t.Errorf("after confirming: %q", msg)
	}
	gp.waitFor(t, declineMe, "rejected")
	// The history says who acted: the practice sent it, Signpost delivered
	// it, the signed-in person declined it.
	who := evaluate[[]string](t, sam, `[...document.querySelectorAll('table.history td[data-label="Who"]')].map(td => td.textContent)`)
	if want := []string{"Example Surgery (A81001)", "Signpost", "sam@example.org, for Walking for Health (X1A2B)"}; !slices.Equal(who, want) {
		t.Errorf("the history's Who: %q, want %q", who, want)
	}

	// Did not attend, on a phone: the confirmation fits and asks.
	must(t, chromedp.Do(sam, actOn(base, dnaMe, "accept"), chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/portal/referrals/"+dnaMe), chromedp.WaitVisible(chromedp.CSS("h1"))))
	fitsTheScreen(t, sam, "a referral with its history")
	must(t, chromedp.Do(sam, chromedp.Click(chromedp.CSS(`form.action:has(input[name="action"][value="did-not-attend"]) button`)),
		chromedp.WaitVisible(chromedp.CSS("form.confirm-form"))))
	fitsTheScreen(t, sam, "the confirmation page")
	if status, _ := taskState(t, base, dnaMe); status != "accepted" {
		t.Errorf("before confirming did-not-attend the Task is %s", status)
	}
	must(t, chromedp.Do(sam, chromedp.Click(chromedp.CSS(`form.confirm-form button`)), chromedp.WaitVisible(chromedp.CSS(".message")), chromedp.EmulateReset()))
	if status, _ := taskState(t, base, dnaMe); status != "failed" {
		t.Errorf("after confirming did-not-attend the Task is %s", status)
	}

	// The other provider's inbox: "Referred for" from the code table.
	kim := newBrowser(t, alloc)
	must(t, chromedp.Do(kim, signIn(base, "kim@example.org"), chromedp.WaitVisible(chromedp.CSS("table.referrals"))))
	if reason := text(t, kim, `td[data-label="Referred for"]`); !strings.HasPrefix(reason, "Referral to financial service") {
		t.Errorf("Referred for: %q", reason)
	}

	// The outcomes view: dates in words, a cumulative funnel said so,
	// pictures with text, names not codes, and all of it on a phone.
	lead := newBrowser(t, alloc)
	must(t, chromedp.Do(lead, signIn(base, "lead@example.org"), chromedp.WaitVisible(chromedp.CSS("figure.chart svg"))))
	outcomes := text(t, lead, "main")
	for _, want := range []string{"or any later stage", "Referrals sent each", "How referrals ended", "Still open", "Example Surgery (A81001)"} {
		if !strings.Contains(outcomes, want) {
			t.Errorf("the outcomes view lacks %q", want)
		}
	}
	if strings.Contains(outcomes, "UK dates") || regexp.MustCompile(`\d{4}-\d\d-\d\d`).MatchString(outcomes) {
		t.Errorf("the outcomes view shows ISO dates:\n%s", outcomes)
	}
	if !regexp.MustCompile(`Referrals sent from \d{1,2} [A-Z][a-z]+ \d{4} to \d{1,2} [A-Z][a-z]+ \d{4}`).MatchString(outcomes) {
		t.Errorf("the period is not in words:\n%s", outcomes)
	}
	charts := evaluate[[]string](t, lead, `[...document.querySelectorAll('svg')].map(s => s.querySelector('title').textContent + ' | ' + (s.querySelector('desc') || {}).textContent + ' | ' + s.querySelectorAll('text').length)`)
	if len(charts) < 3 {
		t.Errorf("charts: %q", charts)
	}
	for _, c := range charts {
		if strings.Contains(c, "| undefined |") || strings.HasSuffix(c, "| 0") {
			t.Errorf("a chart without a description or text labels: %q", c)
		}
	}
	must(t, chromedp.Do(lead, chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("figure.chart svg"))))
	fitsTheScreen(t, lead, "the outcomes view")
	checkAccessible(t, lead, "the outcomes view on a phone")
	screenshot(t, lead, "outcomes-phone.png")
}
