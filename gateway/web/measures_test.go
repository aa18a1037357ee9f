package web_test

import (
	"context"
	"encoding/csv"
	"html"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/portal"
)

// recordLife records ONS4 for a referral (its Task) at a point, through
// the API's use case, with life satisfaction life and the rest 5.
func (e *env) recordLife(task, point string, life int) {
	e.t.Helper()
	r, err := e.store.Read(context.Background(), gateway.TypeTask, task)
	if err != nil {
		e.t.Fatal(err)
	}
	view, _ := gateway.ParseTask(r.Body)
	body := `{"resourceType":"QuestionnaireResponse","questionnaire":"https://signpost.health/fhir/Questionnaire/ons4","status":"completed",` +
		`"extension":[{"url":"` + gateway.MeasurePointExtension + `","valueCode":"` + point + `"}],"basedOn":[{"reference":"` + view.Focus + `"}],"item":[` +
		`{"linkId":"life-satisfaction","answer":[{"valueInteger":` + strconv.Itoa(life) + `}]},{"linkId":"worthwhile","answer":[{"valueInteger":5}]},` +
		`{"linkId":"happiness","answer":[{"valueInteger":5}]},{"linkId":"anxiety","answer":[{"valueInteger":5}]}]}`
	if _, err := e.svc.Measures.Record(context.Background(), gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}, []byte(body), nil); err != nil {
		e.t.Fatal(err)
	}
}

func TestOutcomesViewShowsTheChangeInMeasures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.user("", "lead@example.org")
	staff := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	step := func(task string, s portal.Step) {
		t.Helper()
		s.Version = e.version(task)
		if _, err := e.svc.Portal.Progress(context.Background(), staff, task, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Six referrals measured before and after (changes +4 +3 +2 +1 +4 +2),
	// completed in the inbox; one measured before only.
	for i, p := range [][2]int{{3, 7}, {4, 7}, {5, 7}, {6, 7}, {2, 6}, {5, 7}} {
		task := e.refer("MEAS-"+strconv.Itoa(i), "390893007", "Alex Example")
		step(task, portal.Step{Action: portal.ActionAccept})
		e.recordLife(task, "first-contact", p[0])
		step(task, portal.Step{Action: portal.ActionFirstSession})
		e.recordLife(task, "completion", p[1])
		step(task, portal.Step{Action: portal.ActionComplete, Code: "goals-met"})
		// Completing in the inbox keeps the measures the Task names.
		if n := len(e.task(task).Outputs); n != 1+2*5 {
			t.Fatalf("after completion the Task has %d outputs, want the outcome and 2 responses with 4 scores each", n)
		}
	}
	open := e.refer("MEAS-OPEN", "390893007", "Jo Example")
	step(open, portal.Step{Action: portal.ActionAccept})
	e.recordLife(open, "first-contact", 2)

	lead := e.browser()
	lead.signIn("lead@example.org")
	p := lead.get("/insights/")
	for _, want := range []string{`id="changes-chart-title"`, "ONS4 life satisfaction", "median change +2.5 (95% CI +1 to +4), 6 pairs; higher is better", "Outcome measures, By provider"} {
		if !strings.Contains(html.UnescapeString(p.body), want) {
			t.Errorf("the outcomes view lacks %q", want)
		}
	}
	if strings.Contains(p.body, "Alex Example") {
		t.Error("the outcomes view names a person")
	}
	rows, err := csv.NewReader(strings.NewReader(lead.get("/insights/outcomes.csv").body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for name, want := range map[string]string{"ons4_life_satisfaction_pairs": "6", "ons4_life_satisfaction_change_median": "2.5",
		"ons4_life_satisfaction_change_ci95_low": "1", "ons4_life_satisfaction_change_ci95_high": "4", "ons4_anxiety_change_median": "0"} {
		if got := rows[1][col[name]]; got != want {
			t.Errorf("CSV %s = %q, want %q", name, got, want)
		}
	}
	mr := lead.get("/insights/MeasureReport")
	if res := structure.Validate([]byte(mr.body)); !res.Valid() {
		t.Errorf("MeasureReport is not valid R4: %v", res.Issues)
	}
	if !strings.Contains(mr.body, `"ons4-life-satisfaction"`) || !strings.Contains(mr.body, "confidence-interval-95") {
		t.Errorf("MeasureReport lacks the measure: %s", mr.body)
	}
}
