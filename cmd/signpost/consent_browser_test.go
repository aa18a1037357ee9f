package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// A provider's staff, in a real browser, never see what their share profile
// withholds (date of birth, NHS number, address, the narrative), on the
// inbox or the referral's page, and never see a referral held for consent.
func TestBrowserPortalShowsOnlyTheShareProfile(t *testing.T) {
	t.Parallel()
	alloc := browserAllocator(t)
	r := redistest.Start(t)
	conf := strings.Replace(testConfig, "    delivery: { kind: portal }\n  - id: link",
		"    delivery: { kind: portal }\n    consent: required\n    share: minimal\n  - id: link", 1) +
		"share_profiles:\n  minimal: [name, telecom, reasonCode, note]\n"
	cfg := writeFile(t, "signpost.yaml", conf)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})
	var out bytes.Buffer
	must(t, runUsers(context.Background(), []string{"add", "-config", cfg, "walking", "sam@example.org"}, getenv,
		strings.NewReader(browserPassword+"\n"), &out, io.Discard))
	srv := startSignpost(t, []string{"serve", "-config", cfg}, getenv)
	base := srv.base

	// One person consents to sharing with the walking group; another is
	// referred without consent on record.
	put(t, base+"/fhir/Patient/pt-share", `{"resourceType":"Patient","id":"pt-share",`+
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Robin Fairweather, born 1947-05-06</div>"},`+
		`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],`+
		`"name":[{"text":"Robin Fairweather"}],"telecom":[{"system":"phone","value":"0113 496 0077"}],`+
		`"birthDate":"1947-05-06","address":[{"line":["7 Withheld Road"],"city":"Leeds","postalCode":"LS1 4AP"}]}`, http.StatusCreated)
	post(t, base+"/fhir/Consent", `{"resourceType":"Consent","status":"active",`+
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IDSCL"}]}],`+
		`"patient":{"reference":"Patient/pt-share"},"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},"reference":{"reference":"Organization/walking"}}]}}`)
	shared := referralFor(t, base, "SHARE-WEB-1", "pt-share")
	put(t, base+"/fhir/Patient/pt-held", `{"resourceType":"Patient","id":"pt-held","name":[{"text":"Held Person"}],"telecom":[{"system":"phone","value":"0113 496 0099"}]}`, http.StatusCreated)
	referralFor(t, base, "SHARE-WEB-2", "pt-held")

	sam := newBrowser(t, alloc)
	must(t, chromedp.Do(sam, signIn(base, "sam@example.org"), chromedp.WaitVisible(chromedp.CSS("table.referrals"))))
	inbox := text(t, sam, "main")
	must(t, chromedp.Do(sam, chromedp.Navigate(base+"/portal/referrals/"+shared), chromedp.WaitVisible(chromedp.CSS("h1"))))
	page := text(t, sam, "main")
	html := evaluate[string](t, sam, `document.documentElement.outerHTML`)
	for what, body := range map[string]string{"the inbox": inbox, "the referral's page": page} {
		for _, want := range []string{"Robin Fairweather", "0113 496 0077"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %q, which the profile shares", what, want)
			}
		}
	}
	if !strings.Contains(page, "lives alone") {
		t.Errorf("the referral's page lacks its note, which the profile shares")
	}
	digits := strings.NewReplacer(" ", "", "\u00a0", "")
	for what, body := range map[string]string{"the inbox": inbox, "the referral's page": page, "the page's HTML": html} {
		for _, withheld := range []string{"1947", "May 1947", "9000000009", "Withheld Road", "LS1 4AP", "Date of birth", "NHS number", "Held Person"} {
			if strings.Contains(body, withheld) || strings.Contains(digits.Replace(body), withheld) {
				t.Errorf("%s shows %q, which the provider may not see", what, withheld)
			}
		}
	}
}

// referralFor sends a referral to the walking group for a Patient and
// returns its Task id (as the operator sees it).
func referralFor(t *testing.T, base, ident, pid string) string {
	t.Helper()
	sr := `{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"390893007"}]},` +
		`"subject":{"reference":"Patient/` + pid + `"},"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}},` +
		`"note":[{"text":"Referred because she lives alone"}]}`
	return postReferral(t, base, ident, sr)
}

func post(t *testing.T, url, body string) {
	t.Helper()
	res, err := http.Post(url, "application/fhir+json", strings.NewReader(body))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d", url, res.StatusCode)
	}
}
