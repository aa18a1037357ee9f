package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
)

// askMeasures asks ONS4 and UCLA3 of every referral, before and after.
func askMeasures(o *options) {
	o.measures = []gateway.MeasureRule{{Categories: []string{"*"}, Questionnaires: []string{"ons4", "ucla3"},
		At: []gateway.MeasurePoint{gateway.MeasureFirstContact, gateway.MeasureCompletion}}}
}

// acceptedReferral sends a walking referral and has its provider accept
// it; it returns the ServiceRequest's and the Task's ids.
func acceptedReferral(t *testing.T, e *env, ident string) (srID, taskID string) {
	t.Helper()
	sr := e.post("/ServiceRequest", referral(ident, "390893007")).must(t, http.StatusCreated).json(t)
	srID = sr["id"].(string)
	tasks := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+srID, callerHeader, "walking").must(t, http.StatusOK), "match")
	if len(tasks) != 1 {
		t.Fatalf("%d Tasks for the referral", len(tasks))
	}
	taskID = tasks[0]["id"].(string)
	e.providerMoves(t, taskID, "accepted", "")
	return srID, taskID
}

// ons4Response is a response to ONS4 for a referral at a point; answers are
// the four items' values in order (a value that is not a number is sent as
// the JSON given).
func ons4Response(srID, point string, answers ...string) []byte {
	items := []string{}
	for i, link := range []string{"life-satisfaction", "worthwhile", "happiness", "anxiety"} {
		if i >= len(answers) || answers[i] == "" {
			continue
		}
		items = append(items, `{"linkId":"`+link+`","answer":[{`+answerJSON(answers[i])+`}]}`)
	}
	return []byte(`{"resourceType":"QuestionnaireResponse","questionnaire":"https://signpost.health/fhir/Questionnaire/ons4",` +
		`"status":"completed","authored":"2026-11-25T10:00:00Z",` +
		`"extension":[{"url":"` + gateway.MeasurePointExtension + `","valueCode":"` + point + `"}],` +
		`"basedOn":[{"reference":"ServiceRequest/` + srID + `"}],"item":[` + strings.Join(items, ",") + `]}`)
}

func answerJSON(v string) string {
	if strings.HasPrefix(v, `"value`) {
		return v
	}
	return `"valueInteger":` + v
}

// uclaResponse answers the three UCLA items with the given codes.
func uclaResponse(srID, point string, codes ...string) []byte {
	items := []string{}
	for i, link := range []string{"lack-companionship", "left-out", "isolated"} {
		items = append(items, `{"linkId":"`+link+`","answer":[{"valueCoding":{"system":"https://signpost.health/fhir/CodeSystem/ucla3-answer","code":"`+codes[i]+`"}}]}`)
	}
	return []byte(`{"resourceType":"QuestionnaireResponse","questionnaire":"https://signpost.health/fhir/Questionnaire/ucla3|1","status":"completed",` +
		`"extension":[{"url":"` + gateway.MeasurePointExtension + `","valueCode":"` + point + `"}],` +
		`"basedOn":[{"reference":"ServiceRequest/` + srID + `"}],"item":[` + strings.Join(items, ",") + `]}`)
}

func TestQuestionnairesAreServedReadOnly(t *testing.T) {
	e := setup(t)
	q := e.get("/Questionnaire/ons4", callerHeader, "walking").must(t, http.StatusOK)
	if res := structure.Validate(q.body); !res.Valid() {
		t.Errorf("ONS4 is not valid R4: %v", res.Issues)
	}
	if q.header.Get("ETag") != `W/"1"` || q.json(t)["url"] != "https://signpost.health/fhir/Questionnaire/ons4" {
		t.Errorf("read: %s %s", q.header.Get("ETag"), q.body)
	}
	e.get("/Questionnaire/ons4/_history/1").must(t, http.StatusOK)
	e.get("/Questionnaire/ons4/_history/2").must(t, http.StatusNotFound)
	e.get("/Questionnaire/phq9").must(t, http.StatusNotFound)
	all := bundleEntries(t, e.get("/Questionnaire").must(t, http.StatusOK), "match")
	if len(all) != 2 {
		t.Errorf("%d Questionnaires, want ons4 and ucla3", len(all))
	}
	byURL := bundleEntries(t, e.get("/Questionnaire?url=https://signpost.health/fhir/Questionnaire/ucla3|1").must(t, http.StatusOK), "match")
	if len(byURL) != 1 || byURL[0]["id"] != "ucla3" {
		t.Errorf("by url: %v", byURL)
	}
	e.get("/Questionnaire?title=x").must(t, http.StatusBadRequest)
	e.post("/Questionnaire", q.body).must(t, http.StatusMethodNotAllowed)
	e.put("/Questionnaire/ons4", q.body).must(t, http.StatusMethodNotAllowed)
}

// issuesOf returns the OperationOutcome's issues as "expression: diagnostics".
func issuesOf(t *testing.T, r *response) []string {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Expression  []string `json:"expression"`
			Diagnostics string   `json:"diagnostics"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", r.body)
	}
	var out []string
	for _, is := range oo.Issue {
		out = append(out, strings.Join(is.Expression, ",")+": "+is.Diagnostics)
	}
	return out
}

func hasIssue(issues []string, expr, words string) bool {
	return slices.ContainsFunc(issues, func(s string) bool { return strings.HasPrefix(s, expr+": ") && strings.Contains(s, words) })
}

func TestMeasureThatBreaksItsQuestionnaireIsRefused(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-BAD")
	_, _, before := e.taskStatus(t, taskID)
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		expr   string
		words  string
	}{
		{"missing item", ons4Response(srID, "first-contact", "3", "4", "5"), 422, "QuestionnaireResponse.item", `item "anxiety"`},
		{"out of range", ons4Response(srID, "first-contact", "3", "11", "5", "6"), 422, "QuestionnaireResponse.item[1].answer[0].valueInteger", "outside 0 to 10"},
		{"wrong type", ons4Response(srID, "first-contact", "3", "4", `"valueString":"five"`, "6"), 422, "QuestionnaireResponse.item[2].answer[0].valueString", "takes valueInteger"},
		{"decimal for integer", ons4Response(srID, "first-contact", "3", "4", "5", `"valueDecimal":6.5`), 422, "QuestionnaireResponse.item[3].answer[0].valueDecimal", "takes valueInteger"},
		{"unknown item", []byte(strings.Replace(string(ons4Response(srID, "first-contact", "3", "4", "5", "6")), `"linkId":"happiness"`, `"linkId":"mood"`, 1)), 422, "QuestionnaireResponse.item[2].linkId", "not an item of Questionnaire ons4"},
		{"choice not an option", uclaResponse(srID, "first-contact", "often", "never", "often"), 422, "QuestionnaireResponse.item[1].answer[0].valueCoding", "not one of its options"},
		{"no point", []byte(strings.Replace(string(ons4Response(srID, "first-contact", "3", "4", "5", "6")), gateway.MeasurePointExtension, "https://example.org/other", 1)), 422, "QuestionnaireResponse.extension", "first-contact or completion"},
		{"unknown questionnaire", []byte(strings.Replace(string(ons4Response(srID, "first-contact", "3", "4", "5", "6")), "Questionnaire/ons4", "Questionnaire/phq9", 1)), 422, "QuestionnaireResponse.questionnaire", "ons4"},
		{"not finished", []byte(strings.Replace(string(ons4Response(srID, "first-contact", "3", "4", "5", "6")), `"completed"`, `"in-progress"`, 1)), 422, "QuestionnaireResponse.status", "completed"},
		{"no referral", []byte(strings.Replace(string(ons4Response(srID, "first-contact", "3", "4", "5", "6")), srID, "no-such-referral", 1)), 422, "QuestionnaireResponse.basedOn", "no referral"},
		{"not R4", []byte(strings.Replace(string(ons4Response(srID, "first-contact", "3", "4", "5", "6")), `"valueInteger":3`, `"valueInteger":"3"`, 1)), 400, "QuestionnaireResponse.item[0].answer[0].valueInteger", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.post("/QuestionnaireResponse", c.body, callerHeader, "walking")
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if is := issuesOf(t, r); !hasIssue(is, c.expr, c.words) {
				t.Errorf("no issue at %s saying %q: %v", c.expr, c.words, is)
			}
		})
	}
	// Nothing was stored: the Task is as it was, and no measure is held.
	if _, _, after := e.taskStatus(t, taskID); after != before {
		t.Errorf("the Task moved from version %s to %s", before, after)
	}
	// Another provider's referral is not found, the same answer as none;
	// a GP system does not record measures.
	e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "6"), callerHeader, "advice").must(t, http.StatusUnprocessableEntity)
	e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "6"), callerHeader, "practice-a").must(t, http.StatusForbidden)
}

func TestMeasureNotAskedOrTooEarlyIsRefused(t *testing.T) {
	e := setup(t, func(o *options) {
		o.measures = []gateway.MeasureRule{{Categories: []string{"money-debt-benefits"}, Questionnaires: []string{"ons4"}, At: []gateway.MeasurePoint{gateway.MeasureFirstContact}}}
	})
	sr := e.post("/ServiceRequest", referral("M-EARLY", "390893007")).must(t, http.StatusCreated).json(t)
	srID := sr["id"].(string)
	// Still requested: not yet the provider's to measure.
	r := e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "6"), callerHeader, "walking").must(t, http.StatusUnprocessableEntity)
	if !hasIssue(issuesOf(t, r), "QuestionnaireResponse.basedOn", "requested") {
		t.Errorf("%s", r.body)
	}
	_, _ = acceptedReferral(t, e, "M-NOTASKED")
	srID2 := bundleEntries(t, e.get("/ServiceRequest?identifier="+gpIdentSystem+"|M-NOTASKED").must(t, http.StatusOK), "match")[0]["id"].(string)
	r = e.post("/QuestionnaireResponse", ons4Response(srID2, "first-contact", "3", "4", "5", "6"), callerHeader, "walking").must(t, http.StatusUnprocessableEntity)
	if !hasIssue(issuesOf(t, r), "QuestionnaireResponse.questionnaire", "not asked") {
		t.Errorf("%s", r.body)
	}
}

// observationsOf reads the Observations a Task's outputs name, by code.
func observationsOf(t *testing.T, e *env, taskID, caller string) map[string][]map[string]any {
	t.Helper()
	task := e.get("/Task/"+taskID, callerHeader, caller).must(t, http.StatusOK).json(t)
	out := map[string][]map[string]any{}
	for _, o := range task["output"].([]any) {
		vr, _ := o.(map[string]any)["valueReference"].(map[string]any)
		ref, _ := vr["reference"].(string)
		if !strings.HasPrefix(ref, "Observation/") {
			continue
		}
		obs := e.get("/"+ref, callerHeader, caller).must(t, http.StatusOK)
		if res := structure.Validate(obs.body); !res.Valid() {
			t.Errorf("%s is not valid R4: %v", ref, res.Issues)
		}
		m := obs.json(t)
		code := m["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		out[code] = append(out[code], m)
	}
	return out
}

func TestMeasurePairIsRecordedAsCodedObservations(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-PAIR")
	before := e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusCreated)
	if res := structure.Validate(before.body); !res.Valid() {
		t.Errorf("stored response is not valid R4: %v", res.Issues)
	}
	resp := before.json(t)
	if resp["subject"] == nil || resp["author"] == nil || resp["meta"].(map[string]any)["versionId"] != "1" {
		t.Errorf("response lacks subject, author or meta: %s", before.body)
	}
	// The same response again is the one stored; another at the same point conflicts.
	again := e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusOK)
	if again.json(t)["id"] != resp["id"] {
		t.Errorf("a repeat made another response")
	}
	e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "2", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusConflict)
	e.post("/QuestionnaireResponse", uclaResponse(srID, "first-contact", "often", "often", "some-of-the-time"), callerHeader, "walking").must(t, http.StatusCreated)

	e.providerMoves(t, taskID, "in-progress", "")
	e.providerMoves(t, taskID, "completed", "")
	e.post("/QuestionnaireResponse", ons4Response(srID, "completion", "7", "7", "8", "3"), callerHeader, "walking").must(t, http.StatusCreated)
	e.post("/QuestionnaireResponse", uclaResponse(srID, "completion", "hardly-ever", "some-of-the-time", "hardly-ever"), callerHeader, "walking").must(t, http.StatusCreated)

	// The GP system reads every score, coded, through its Task.
	obs := observationsOf(t, e, taskID, "practice-a")
	life := obs["ons4-life-satisfaction"]
	if len(life) != 2 {
		t.Fatalf("life satisfaction observations: %d, want 2", len(life))
	}
	got := map[string]float64{}
	for _, o := range life {
		point := o["extension"].([]any)[0].(map[string]any)["valueCode"].(string)
		got[point] = o["valueInteger"].(float64)
		if o["subject"] == nil || o["basedOn"].([]any)[0].(map[string]any)["reference"] != "ServiceRequest/"+srID ||
			!strings.HasPrefix(o["derivedFrom"].([]any)[0].(map[string]any)["reference"].(string), "QuestionnaireResponse/") ||
			o["focus"].([]any)[0].(map[string]any)["reference"] != "Task/"+taskID {
			t.Errorf("observation does not name the patient, referral, Task and response: %v", o)
		}
	}
	if got["first-contact"] != 3 || got["completion"] != 7 {
		t.Errorf("life satisfaction %v, want 3 then 7", got)
	}
	ucla := obs["ucla3-total"]
	if len(ucla) != 2 {
		t.Fatalf("UCLA totals: %d", len(ucla))
	}
	for _, o := range ucla {
		point := o["extension"].([]any)[0].(map[string]any)["valueCode"].(string)
		want := map[string]float64{"first-contact": 8, "completion": 4}[point]
		if o["valueInteger"].(float64) != want {
			t.Errorf("UCLA at %s = %v, want %v", point, o["valueInteger"], want)
		}
	}
	// A provider that was not sent the referral sees none of it.
	for _, o := range life {
		e.get(fmt.Sprintf("/Observation/%s", o["id"]), callerHeader, "advice").must(t, http.StatusNotFound)
	}
	// Each recording is audited once, naming the response, its scores and
	// the Task it changed; the answers themselves are not in the trail.
	_, raw := e.audit(t)
	if n := strings.Count(raw, `"QuestionnaireResponse/`+resp["id"].(string)); n < 2 { // the create, and the repeat
		t.Errorf("the response is named in %d audit records, want the create's and the repeat's:\n%s", n, raw)
	}
	if !strings.Contains(raw, `"Observation/`) || strings.Contains(raw, "life-satisfaction") {
		t.Errorf("the audit trail does not name the scores, or holds answers:\n%s", raw)
	}
	// Every version of the Task is recorded with who made it.
	prov := bundleEntries(t, e.get("/Provenance?target=Task/"+taskID, callerHeader, "practice-a").must(t, http.StatusOK), "match")
	if len(prov) < 7 {
		t.Errorf("%d Provenances, want one per Task version", len(prov))
	}
}

func TestMeasureIsCorrectedAsANewVersion(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-FIX")
	first := e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusCreated).json(t)
	id := first["id"].(string)
	fixed := strings.Replace(string(ons4Response(srID, "first-contact", "2", "4", "5", "8")), `{"resourceType":"QuestionnaireResponse",`, `{"resourceType":"QuestionnaireResponse","id":"`+id+`",`, 1)
	fixed = strings.Replace(fixed, `"completed"`, `"amended"`, 1)
	e.put("/QuestionnaireResponse/"+id, []byte(fixed), callerHeader, "walking", "If-Match", `W/"2"`).must(t, http.StatusPreconditionFailed)
	r := e.put("/QuestionnaireResponse/"+id, []byte(fixed), callerHeader, "walking", "If-Match", `W/"1"`).must(t, http.StatusOK)
	if r.header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag %s", r.header.Get("ETag"))
	}
	e.get("/QuestionnaireResponse/"+id+"/_history/1", callerHeader, "practice-a").must(t, http.StatusOK)
	life := observationsOf(t, e, taskID, "practice-a")["ons4-life-satisfaction"]
	if len(life) != 1 || life[0]["valueInteger"].(float64) != 2 || life[0]["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("corrected observation: %v", life)
	}
}

// lifeSatisfaction finds ONS4 life satisfaction Observations in resources,
// by measure point, checking each is valid R4.
func lifeSatisfaction(t *testing.T, resources [][]byte) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, b := range resources {
		var o struct {
			ResourceType string
			Extension    []struct{ ValueCode string }
			Code         struct{ Coding []struct{ Code string } }
			ValueInteger float64
			Subject      map[string]any
			BasedOn      []struct{ Reference string }
		}
		if json.Unmarshal(b, &o) != nil || o.ResourceType != "Observation" || len(o.Code.Coding) == 0 || o.Code.Coding[0].Code != "ons4-life-satisfaction" {
			continue
		}
		if res := structure.Validate(b); !res.Valid() {
			t.Errorf("Observation sent is not valid R4: %v", res.Issues)
		}
		if o.Subject == nil || len(o.BasedOn) == 0 || !strings.HasPrefix(o.BasedOn[0].Reference, "http") {
			t.Errorf("Observation sent without its patient or an absolute referral: %s", b)
		}
		out[o.Extension[0].ValueCode] = o.ValueInteger
	}
	return out
}

// The scores reach the GP system as the referral ends: written back into
// its record, and in the BaRS response that tells it of the completion.
func TestMeasuresReachTheGPByWriteBackAndBaRS(t *testing.T) {
	onOneRedisAndSpreadOnCluster(t, testMeasuresReachTheGPByWriteBackAndBaRS)
}

func testMeasuresReachTheGPByWriteBackAndBaRS(t *testing.T, on ...func(*options)) {
	e := setup(t, append([]func(*options){withBaRSService, withWarnNHS, askMeasures}, on...)...)
	gp, sender := newGPRecord(t), newBarsSender(t, 0)
	e.startNotifyWorker(gp, sender, "practice-a")
	taskID := e.sendExample(t)
	task := e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK).json(t)
	srID := strings.TrimPrefix(task["focus"].(map[string]any)["reference"].(string), "ServiceRequest/")
	e.providerMoves(t, taskID, "accepted", "")
	e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusCreated)
	e.providerMoves(t, taskID, "in-progress", "")
	e.post("/QuestionnaireResponse", ons4Response(srID, "completion", "7", "7", "8", "3"), callerHeader, "walking").must(t, http.StatusCreated)
	e.providerMoves(t, taskID, "completed", "")

	eventually(t, "both scores in the GP record", func() bool {
		g := gp
		g.mu.Lock()
		defer g.mu.Unlock()
		got := lifeSatisfaction(t, g.observations)
		return got["first-contact"] == 3 && got["completion"] == 7
	})
	eventually(t, "the BaRS response of the completion with both scores", func() bool {
		for _, c := range sender.received() {
			var b struct {
				Entry []struct{ Resource json.RawMessage } `json:"entry"`
			}
			_ = json.Unmarshal(c.body, &b)
			var resources [][]byte
			completed := false
			for _, en := range b.Entry {
				resources = append(resources, en.Resource)
				var r struct{ ResourceType, Status string }
				_ = json.Unmarshal(en.Resource, &r)
				completed = completed || (r.ResourceType == "Task" && r.Status == "completed")
			}
			if got := lifeSatisfaction(t, resources); completed && got["first-contact"] == 3 && got["completion"] == 7 {
				if res := structure.Validate(c.body); !res.Valid() {
					t.Errorf("the response message is not valid R4: %v", res.Issues)
				}
				return true
			}
		}
		return false
	})
	// Each score is filed once, however many changes the Task went through.
	e.waitNotifyDrained(t)
	gp.mu.Lock()
	defer gp.mu.Unlock()
	if n := len(gp.observations); n > 8+1 { // 4 scores at 2 points, and the acceptance's outcome code
		t.Errorf("%d Observations filed, want each score once", n)
	}
}

// The de-identified export carries the scores, so an evaluation can pair
// them as the outcomes view does, without the patient's NHS number.
func TestDeidentifiedExportCarriesTheMeasures(t *testing.T) {
	testDeidentifiedExportCarriesTheMeasures(t)
}

// The same on a store that spreads referrals (one Redis and a cluster):
// the scores are made in the referral's partition, and exported from it.
func TestSpreadDeidentifiedExportCarriesTheMeasures(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) { testDeidentifiedExportCarriesTheMeasures(t, on, spread) })
}

func testDeidentifiedExportCarriesTheMeasures(t *testing.T, opts ...func(*options)) {
	e := setup(t, append(opts, askMeasures, func(o *options) { o.pseudonymKey = keyA })...)
	srID, taskID := acceptedReferral(t, e, "M-EXPORT")
	e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusCreated)
	e.providerMoves(t, taskID, "in-progress", "")
	e.post("/QuestionnaireResponse", ons4Response(srID, "completion", "7", "7", "8", "3"), callerHeader, "walking").must(t, http.StatusCreated)
	_, files := e.exportAll(t, "?_deidentify=true&_type=Task,Observation,QuestionnaireResponse")
	got := map[string]float64{}
	for _, o := range files["Observation"] {
		b, _ := json.Marshal(o)
		if strings.Contains(string(b), nhsNumber) {
			t.Errorf("a de-identified Observation holds the NHS number: %s", b)
		}
		if o["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] == "ons4-life-satisfaction" &&
			o["focus"].([]any)[0].(map[string]any)["reference"] == "Task/"+taskID {
			got[o["extension"].([]any)[0].(map[string]any)["valueCode"].(string)] = o["valueInteger"].(float64)
		}
	}
	if got["first-contact"] != 3 || got["completion"] != 7 || len(files["QuestionnaireResponse"]) != 2 {
		t.Errorf("exported life satisfaction %v, %d responses; want 3 then 7, 2 responses", got, len(files["QuestionnaireResponse"]))
	}
	for _, r := range files["QuestionnaireResponse"] {
		if b, _ := json.Marshal(r); strings.Contains(string(b), nhsNumber) {
			t.Errorf("a de-identified response holds the NHS number: %s", b)
		}
	}
}

// Recordings at once: two measures for one referral both land in the Task
// (neither output lost), and two different answers for one measure and
// point are one response, the other refused.
func TestConcurrentMeasuresLoseNothing(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-RACE")
	bodies := [][]byte{
		ons4Response(srID, "first-contact", "3", "4", "5", "8"),
		uclaResponse(srID, "first-contact", "often", "often", "some-of-the-time"),
		ons4Response(srID, "first-contact", "9", "9", "9", "1"),
	}
	statuses := make([]int, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, e.base+"/QuestionnaireResponse", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set(callerHeader, "walking")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		}()
	}
	wg.Wait()
	if statuses[1] != http.StatusCreated || !(statuses[0] == http.StatusCreated && statuses[2] == http.StatusConflict || statuses[0] == http.StatusConflict && statuses[2] == http.StatusCreated) {
		t.Fatalf("statuses %v; want UCLA created and one of the two ONS4 answers, the other 409", statuses)
	}
	obs := observationsOf(t, e, taskID, "walking")
	if len(obs["ons4-life-satisfaction"]) != 1 || len(obs["ucla3-total"]) != 1 || len(obs) != 5 {
		t.Errorf("the Task names %v; want each of the five scores once", obs)
	}
}

// A provider's update that replaces Task.output with its outcome keeps the
// measures the Task names: they are put back after its own.
func TestTaskUpdateKeepsTheMeasures(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-KEEP")
	e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusCreated)
	e.providerMoves(t, taskID, "in-progress", "")
	patch := `[{"op":"replace","path":"/status","value":"completed"},{"op":"add","path":"/output","value":[{"type":{"coding":[{"system":"http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes","code":"resulting-activity"}]},"valueCodeableConcept":{"text":"walked"}}]}]`
	done := e.do(http.MethodPatch, "/Task/"+taskID, []byte(patch), callerHeader, "walking", "Content-Type", "application/json-patch+json").must(t, http.StatusOK).json(t)
	outs := done["output"].([]any)
	if len(outs) != 6 || outs[0].(map[string]any)["valueCodeableConcept"] == nil {
		t.Errorf("outputs after completion: %v; want the outcome, then the response and its four scores", outs)
	}
	if obs := observationsOf(t, e, taskID, "practice-a"); len(obs) != 4 {
		t.Errorf("the GP reads %d scores through the Task, want 4", len(obs))
	}
}

// scoreOutput is a Task.output linking a score, as Signpost writes it.
func scoreOutput(obsID string) string {
	return `{"type":{"coding":[{"system":"` + gateway.MeasureOutputSystem + `","code":"` + gateway.MeasureScoreOutput + `"}]},"valueReference":{"reference":"Observation/` + obsID + `"}}`
}

// A provider cannot link a score (or a response) to a Task itself: an
// output naming another referral's score would carry that patient's score
// to this referral's GP. Signpost alone adds these outputs.
func TestTaskUpdateCannotLinkAMeasure(t *testing.T) {
	e := setup(t, askMeasures)
	srA, taskA := acceptedReferral(t, e, "M-LINK-A")
	e.post("/QuestionnaireResponse", ons4Response(srA, "first-contact", "1", "2", "3", "9"), callerHeader, "walking").must(t, http.StatusCreated)
	obsA := observationsOf(t, e, taskA, "walking")["ons4-life-satisfaction"][0]["id"].(string)
	_, taskB := acceptedReferral(t, e, "M-LINK-B")
	_, _, before := e.taskStatus(t, taskB)
	for name, out := range map[string]string{
		"score":             scoreOutput(obsA),
		"score, 2nd coding": strings.Replace(scoreOutput(obsA), `"coding":[`, `"coding":[{"system":"https://example.org/x","code":"y"},`, 1),
		"response":          `{"type":{"coding":[{"system":"` + gateway.SDCTaskCodeSystem + `","code":"` + gateway.QuestionnaireResponseOutput + `"}]},"valueReference":{"reference":"QuestionnaireResponse/x"}}`,
	} {
		patch := `[{"op":"add","path":"/output","value":[` + out + `]},{"op":"replace","path":"/status","value":"in-progress"}]`
		r := e.do(http.MethodPatch, "/Task/"+taskB, []byte(patch), callerHeader, "walking", "Content-Type", "application/json-patch+json")
		if r.status != http.StatusUnprocessableEntity || !hasIssue(issuesOf(t, r), "Task.output[0]", "Signpost adds it") {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if _, _, after := e.taskStatus(t, taskB); after != before {
		t.Errorf("the Task moved from version %s to %s", before, after)
	}
	// The outputs Signpost linked may be sent back as they are.
	task := e.get("/Task/"+taskA, callerHeader, "walking").must(t, http.StatusOK)
	e.put("/Task/"+taskA, task.body, callerHeader, "walking", "If-Match", task.header.Get("ETag")).must(t, http.StatusOK)
}

// The scores that travel with a Task to the GP side are this referral's
// only, whatever its outputs name.
func TestMeasureScoresAreTheReferralsOwn(t *testing.T) {
	e := setup(t, askMeasures)
	ctx := context.Background()
	srA, taskA := acceptedReferral(t, e, "M-OWN-A")
	e.post("/QuestionnaireResponse", ons4Response(srA, "first-contact", "1", "2", "3", "9"), callerHeader, "walking").must(t, http.StatusCreated)
	obsA := observationsOf(t, e, taskA, "walking")["ons4-life-satisfaction"][0]["id"].(string)
	srB, taskB := acceptedReferral(t, e, "M-OWN-B")
	e.post("/QuestionnaireResponse", ons4Response(srB, "first-contact", "5", "5", "5", "5"), callerHeader, "walking").must(t, http.StatusCreated)
	task, err := e.store.Read(ctx, gateway.TypeTask, taskB)
	if err != nil {
		t.Fatal(err)
	}
	// A Task version whose outputs also name A's score (as one stored
	// before outputs were checked could).
	forged := *task
	forged.Body = []byte(strings.Replace(string(task.Body), `"output":[`, `"output":[`+scoreOutput(obsA)+`,`, 1))
	scores, err := e.svc.Core.MeasureScores(ctx, &forged)
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 4 {
		t.Errorf("%d scores, want B's four", len(scores))
	}
	for _, o := range scores {
		if o.ID == obsA || !strings.Contains(string(o.Body), `"Task/`+taskB+`"`) {
			t.Errorf("a score of another referral travels with B's Task: %s", o.Body)
		}
	}
}

// withMember adds members (JSON text, ending in a comma) to a response
// after its status.
func withMember(body []byte, members string) []byte {
	return []byte(strings.Replace(string(body), `"status":"completed",`, `"status":"completed",`+members, 1))
}

// A recording holds only what Signpost checks and needs; anything else is
// refused by name (the sender learns it was not kept), and nothing is stored.
func TestMeasureRecordingKeepsOnlyWhatItChecks(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-KEPT")
	_, _, before := e.taskStatus(t, taskID)
	good := ons4Response(srID, "first-contact", "3", "4", "5", "6")
	for _, c := range []struct {
		name string
		body []byte
		expr string
	}{
		{"client number", withMember(good, `"identifier":{"system":"https://walking.example/client","value":"SYNTH-ANNA-1961"},`), "QuestionnaireResponse.identifier"},
		{"who answered", withMember(good, `"source":{"display":"Anna Synthetic"},`), "QuestionnaireResponse.source"},
		{"narrative", withMember(good, `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Anna</div>"},`), "QuestionnaireResponse.text"},
		{"own extension", []byte(strings.Replace(string(good), `"extension":[`, `"extension":[{"url":"https://walking.example/x","valueHumanName":{"family":"Synthetic"}},`, 1)), "QuestionnaireResponse.extension[0]"},
		{"meta tag", withMember(good, `"meta":{"tag":[{"system":"https://walking.example/t","code":"anna"}]},`), "QuestionnaireResponse.meta.tag"},
		{"item text of its own", []byte(strings.Replace(string(good), `{"linkId":"worthwhile",`, `{"linkId":"worthwhile","text":"Anna said: fine",`, 1)), "QuestionnaireResponse.item[1].text"},
		{"answer extension", []byte(strings.Replace(string(good), `"valueInteger":5`, `"valueInteger":5,"extension":[{"url":"https://walking.example/n","valueString":"Anna"}]`, 1)), "QuestionnaireResponse.item[2].answer[0].extension"},
		{"option display of its own", uclaResponseDisplay(srID, "Anna"), "QuestionnaireResponse.item[0].answer[0].valueCoding.display"},
		{"another organisation as author", withMember(good, `"author":{"reference":"Organization/advice"},`), "QuestionnaireResponse.author"},
		{"another referral too", []byte(strings.Replace(string(good), `"basedOn":[`, `"basedOn":[{"reference":"ServiceRequest/`+srID+`"},`, 1)), "QuestionnaireResponse.basedOn"},
		{"basedOn display", []byte(strings.Replace(string(good), `{"reference":"ServiceRequest/`+srID+`"}`, `{"reference":"ServiceRequest/`+srID+`","display":"Anna"}`, 1)), "QuestionnaireResponse.basedOn[0]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.post("/QuestionnaireResponse", c.body, callerHeader, "walking")
			if r.status != http.StatusUnprocessableEntity || !hasIssue(issuesOf(t, r), c.expr, "") {
				t.Errorf("status %d, want 422 at %s: %s", r.status, c.expr, r.body)
			}
			if strings.Contains(string(r.body), "Anna") {
				t.Errorf("the refusal quotes the client's text: %s", r.body)
			}
		})
	}
	if _, _, after := e.taskStatus(t, taskID); after != before {
		t.Errorf("the Task moved from version %s to %s", before, after)
	}
	// The Questionnaire's own item text, the option's own display, and the
	// provider as author (in any form naming it) are taken; the author is
	// stored in Signpost's form.
	withText := strings.Replace(string(good), `{"linkId":"life-satisfaction",`, `{"linkId":"life-satisfaction","text":"`+ons4Text(t, e, "life-satisfaction")+`",`, 1)
	r := e.post("/QuestionnaireResponse", withMember([]byte(withText), `"author":{"reference":"Organization/walking"},`), callerHeader, "walking").must(t, http.StatusCreated).json(t)
	if a := r["author"].(map[string]any); a["identifier"] == nil || a["reference"] != "Organization/walking" {
		t.Errorf("author stored as %v, want the provider in Signpost's form", a)
	}
	e.post("/QuestionnaireResponse", uclaResponseDisplay(srID, ""), callerHeader, "walking").must(t, http.StatusCreated)
}

// uclaResponseDisplay is a UCLA3 response whose first answer carries a
// display: the option's own when display is "".
func uclaResponseDisplay(srID, display string) []byte {
	if display == "" {
		display = "Often"
	}
	return []byte(strings.Replace(string(uclaResponse(srID, "first-contact", "often", "often", "some-of-the-time")), `"code":"often"}`, `"code":"often","display":"`+display+`"}`, 1))
}

// ons4Text is the text of an ONS4 item as the served Questionnaire has it.
func ons4Text(t *testing.T, e *env, linkID string) string {
	t.Helper()
	var q struct {
		Item []struct{ LinkID, Text string }
	}
	if err := json.Unmarshal(e.get("/Questionnaire/ons4").must(t, http.StatusOK).body, &q); err != nil {
		t.Fatal(err)
	}
	for _, it := range q.Item {
		if it.LinkID == linkID {
			return it.Text
		}
	}
	t.Fatalf("ONS4 has no item %s", linkID)
	return ""
}

// Every line of a de-identified export of a referral with its measures is
// free of the patient's NHS number and of a business identifier built from
// their name: a referral's and a response's own identifiers are
// pseudonymised, like the patient's.
func TestDeidentifiedMeasuresExportHoldsNoIdentifiers(t *testing.T) {
	e := setup(t, askMeasures, func(o *options) { o.pseudonymKey = keyA })
	const ident = "SYNTH-ANNA-19610304"
	srID, taskID := acceptedReferral(t, e, ident)
	e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusCreated)
	e.providerMoves(t, taskID, "in-progress", "")
	e.post("/QuestionnaireResponse", uclaResponseDisplay(srID, ""), callerHeader, "walking").must(t, http.StatusCreated)
	m, files := e.exportAll(t, "?_deidentify=true")
	if len(files["QuestionnaireResponse"]) != 2 || len(files["ServiceRequest"]) != 1 {
		t.Fatalf("exported %d responses, %d referrals", len(files["QuestionnaireResponse"]), len(files["ServiceRequest"]))
	}
	lines := 0
	for _, o := range m.Output {
		body := e.get(o.URL).must(t, http.StatusOK).body
		for i, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			lines++
			for _, n := range []string{nhsNumber, ident, `"source"`} {
				if bytes.Contains(line, []byte(n)) {
					t.Errorf("%s line %d holds %q: %s", o.Type, i+1, n, line)
				}
			}
		}
	}
	if lines < 6 {
		t.Errorf("%d lines exported", lines)
	}
}

// A correction names the version it replaces, and one that changes nothing
// makes no new version of the response, its scores or the Task.
func TestMeasureCorrectionNeedsIfMatchAndChangesSomething(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-NOOP")
	first := e.post("/QuestionnaireResponse", ons4Response(srID, "first-contact", "3", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusCreated).json(t)
	id := first["id"].(string)
	correction := func(answers ...string) []byte {
		b := strings.Replace(string(ons4Response(srID, "first-contact", answers...)), `{"resourceType":"QuestionnaireResponse",`, `{"resourceType":"QuestionnaireResponse","id":"`+id+`",`, 1)
		return []byte(strings.Replace(b, `"completed"`, `"amended"`, 1))
	}
	_, _, before := e.taskStatus(t, taskID)
	provenances := len(bundleEntries(t, e.get("/Provenance?target=Task/"+taskID, callerHeader, "practice-a").must(t, http.StatusOK), "match"))

	r := e.put("/QuestionnaireResponse/"+id, correction("2", "4", "5", "8"), callerHeader, "walking").must(t, http.StatusPreconditionRequired)
	if !slices.ContainsFunc(issuesOf(t, r), func(s string) bool { return strings.Contains(s, "If-Match") }) {
		t.Errorf("the refusal does not name If-Match: %s", r.body)
	}
	for i := 0; i < 3; i++ {
		same := e.put("/QuestionnaireResponse/"+id, correction("3", "4", "5", "8"), callerHeader, "walking", "If-Match", `W/"1"`).must(t, http.StatusOK)
		if same.header.Get("ETag") != `W/"1"` {
			t.Errorf("an identical correction made version %s", same.header.Get("ETag"))
		}
	}
	if _, _, after := e.taskStatus(t, taskID); after != before {
		t.Errorf("the Task moved from version %s to %s", before, after)
	}
	if n := len(bundleEntries(t, e.get("/Provenance?target=Task/"+taskID, callerHeader, "practice-a").must(t, http.StatusOK), "match")); n != provenances {
		t.Errorf("%d Provenances, %d before", n, provenances)
	}
	life := observationsOf(t, e, taskID, "practice-a")["ons4-life-satisfaction"]
	if len(life) != 1 || life[0]["meta"].(map[string]any)["versionId"] != "1" {
		t.Errorf("score after identical corrections: %v", life)
	}
	// A real correction still makes its versions.
	e.put("/QuestionnaireResponse/"+id, correction("2", "4", "5", "8"), callerHeader, "walking", "If-Match", `W/"1"`).must(t, http.StatusOK)
	if _, _, after := e.taskStatus(t, taskID); after == before {
		t.Errorf("a correction did not version the Task")
	}
}

// A refusal costs less than the request: no more items than the
// Questionnaire holds are read, the issues listed are bounded, and no
// linkId the client made up is repeated back.
func TestMeasureRefusalIsBounded(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-BOUND")
	_, _, before := e.taskStatus(t, taskID)
	good := string(ons4Response(srID, "first-contact", "3", "4", "5", "6"))
	many := func(item string, n int) []byte {
		return []byte(strings.Replace(good, `"item":[`, `"item":[`+strings.Repeat(item+",", n), 1))
	}
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"36,000 unknown items", many(`{"linkId":"secret-anna"}`, 36000)},
		{"38,000 display items", many(`{"linkId":"instructions"}`, 38000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.post("/QuestionnaireResponse", c.body, callerHeader, "walking").must(t, http.StatusUnprocessableEntity)
			if len(r.body) > 2000 || !hasIssue(issuesOf(t, r), "QuestionnaireResponse.item", "were sent") {
				t.Errorf("%d-byte answer to a %d-byte body: %.300s", len(r.body), len(c.body), r.body)
			}
		})
	}
	// Within the item bound: an unknown linkId is named by its position.
	r := e.post("/QuestionnaireResponse", []byte(strings.Replace(good, `"linkId":"happiness"`, `"linkId":"secret-anna"`, 1)), callerHeader, "walking").must(t, http.StatusUnprocessableEntity)
	if strings.Contains(string(r.body), "secret-anna") || !hasIssue(issuesOf(t, r), "QuestionnaireResponse.item[2].linkId", "not an item") {
		t.Errorf("unknown linkId: %s", r.body)
	}
	// Many faults in one item's answers: at most structure.MaxIssues listed.
	answers := strings.Repeat(`{"valueInteger":5,"extension":[{"url":"https://walking.example/x","valueCode":"y"}]},`, 5000)
	r = e.post("/QuestionnaireResponse", []byte(strings.Replace(good, `"answer":[{"valueInteger":5}]`, `"answer":[`+strings.TrimSuffix(answers, ",")+`]`, 1)), callerHeader, "walking").must(t, http.StatusUnprocessableEntity)
	if n := len(issuesOf(t, r)); n > structure.MaxIssues {
		t.Errorf("%d issues listed, %d bytes", n, len(r.body))
	}
	if _, _, after := e.taskStatus(t, taskID); after != before {
		t.Errorf("the Task moved from version %s to %s", before, after)
	}
}

// Each item of a measure is listed once, answered or not, text items too.
func TestMeasureItemsAreListedOnce(t *testing.T) {
	e := setup(t, askMeasures)
	srID, _ := acceptedReferral(t, e, "M-ONCE")
	good := string(ons4Response(srID, "first-contact", "3", "4", "5", "6"))
	for name, body := range map[string]string{
		"an unanswered copy first": strings.Replace(good, `"item":[`, `"item":[{"linkId":"life-satisfaction"},`, 1),
		"answered twice":           strings.Replace(good, `"item":[`, `"item":[{"linkId":"anxiety","answer":[{"valueInteger":1}]},`, 1),
		"a text item twice":        strings.Replace(string(ons4Response(srID, "first-contact", "3", "4", "5")), `"item":[`, `"item":[{"linkId":"instructions"},{"linkId":"instructions"},`, 1),
	} {
		r := e.post("/QuestionnaireResponse", []byte(body), callerHeader, "walking")
		if r.status != http.StatusUnprocessableEntity || !slices.ContainsFunc(issuesOf(t, r), func(s string) bool { return strings.Contains(s, "listed twice") }) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	e.post("/QuestionnaireResponse", []byte(strings.Replace(good, `"item":[`, `"item":[{"linkId":"instructions"},`, 1)), callerHeader, "walking").must(t, http.StatusCreated)
}

// A recording sent again after the referral was cancelled is answered with
// the response stored, as any repeat is; a new one is still refused.
func TestMeasureRetriedAfterCancellationIsTheOneStored(t *testing.T) {
	e := setup(t, askMeasures)
	srID, taskID := acceptedReferral(t, e, "M-RETRY")
	body := ons4Response(srID, "first-contact", "3", "4", "5", "6")
	first := e.post("/QuestionnaireResponse", body, callerHeader, "walking").must(t, http.StatusCreated).json(t)
	cancel := `[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/statusReason","value":{"text":"moved away"}}]`
	e.do(http.MethodPatch, "/Task/"+taskID, []byte(cancel), callerHeader, "practice-a", "Content-Type", "application/json-patch+json").must(t, http.StatusOK)
	again := e.post("/QuestionnaireResponse", body, callerHeader, "walking").must(t, http.StatusOK).json(t)
	if again["id"] != first["id"] {
		t.Errorf("the retry answered %v, want %v", again["id"], first["id"])
	}
	r := e.post("/QuestionnaireResponse", uclaResponse(srID, "first-contact", "often", "often", "often"), callerHeader, "walking").must(t, http.StatusUnprocessableEntity)
	if !hasIssue(issuesOf(t, r), "QuestionnaireResponse.basedOn", "cancelled") {
		t.Errorf("%s", r.body)
	}
}
