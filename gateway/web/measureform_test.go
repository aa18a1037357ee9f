package web_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/portal"
)

// The inbox's measure form records what the API would, refuses answers
// missing or out of range naming each question, and offers each measure
// once per point.
func TestInboxRecordsAMeasure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("walking", "sam@example.org")
	e.user("advice", "kim@example.org")
	task := e.refer("FORM-1", "390893007", "Alex Example")
	sam := e.browser()
	sam.signIn("sam@example.org")
	formPath := "/portal/referrals/" + task + "/measures/ons4/first-contact"
	// Not before the referral is accepted.
	if p := sam.get(formPath); p.status != http.StatusConflict {
		t.Errorf("the form of a requested referral: %d", p.status)
	}
	sam.get("/portal/referrals/" + task)
	sam.post("/portal/referrals/"+task, url.Values{"version": {"1"}, "action": {string(portal.ActionAccept)}})
	ref := sam.get("/portal/referrals/" + task)
	if !strings.Contains(ref.body, `href="`+formPath+`"`) || !strings.Contains(ref.body, "Outcome measures") {
		t.Fatalf("the referral page offers no ONS4 form:\n%s", ref.body)
	}
	form := sam.get(formPath)
	for _, want := range []string{`<fieldset id="item-life-satisfaction"`, `<legend>Overall, how satisfied are you with your life nowadays?</legend>`,
		`<input type="radio" id="item-life-satisfaction-10" name="item.life-satisfaction" value="10">`, `<label for="item-life-satisfaction-10">10</label>`} {
		if !strings.Contains(html.UnescapeString(form.body), html.UnescapeString(want)) {
			t.Errorf("the form lacks %s", want)
		}
	}
	// Missing and out-of-range answers are named; nothing is recorded.
	bad := sam.post(formPath, url.Values{"item.life-satisfaction": {"3"}, "item.worthwhile": {"11"}, "item.happiness": {"5"}})
	if bad.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad answers: %d", bad.status)
	}
	for _, want := range []string{`href="#item-worthwhile"`, `href="#item-anxiety"`, "Choose a number from 0 to 10.", "Answer this question.",
		`aria-describedby="item-anxiety-error"`, `value="3" checked`} {
		if !strings.Contains(bad.body, want) {
			t.Errorf("the refused form lacks %s", want)
		}
	}
	if n := len(e.task(task).Outputs); n != 0 {
		t.Errorf("a refused form recorded %d outputs", n)
	}
	// Another provider's staff cannot see or record it.
	kim := e.browser()
	kim.signIn("kim@example.org")
	if p := kim.post(formPath, url.Values{"item.life-satisfaction": {"3"}}); p.status == http.StatusSeeOther {
		t.Error("another provider recorded a measure")
	}
	ok := sam.post(formPath, url.Values{"item.life-satisfaction": {"3"}, "item.worthwhile": {"4"}, "item.happiness": {"5"}, "item.anxiety": {"8"}})
	if ok.status != http.StatusSeeOther || ok.header.Get("Location") != "/portal/referrals/"+task+"?done=measure" {
		t.Fatalf("recording: %d %s", ok.status, ok.header.Get("Location"))
	}
	after := sam.get(ok.header.Get("Location"))
	for _, want := range []string{"Answers recorded.", "ONS4 life satisfaction 3", "Outcome measure recorded"} {
		if !strings.Contains(html.UnescapeString(after.body), want) {
			t.Errorf("the referral page lacks %q", want)
		}
	}
	if strings.Contains(after.body, `href="`+formPath+`"`) {
		t.Error("a recorded measure is offered again")
	}
	if again := sam.post(formPath, url.Values{"item.life-satisfaction": {"3"}, "item.worthwhile": {"4"}, "item.happiness": {"5"}, "item.anxiety": {"8"}}); again.status != http.StatusConflict {
		t.Errorf("recording twice: %d", again.status)
	}
	// The Task names the response and its four scores, as over the API.
	outs := e.task(task).Outputs
	if len(outs) != 5 || outs[0].Type.Code != gateway.QuestionnaireResponseOutput {
		t.Errorf("Task outputs %+v", outs)
	}
}
