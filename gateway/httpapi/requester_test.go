package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/portal"
)

// A GP system refers in its own name: a requester naming another
// organisation is refused (the provider's inbox shows it as who the
// referral is from); the practice's own identifier, one of its people, or
// no requester at all are accepted. Operators are not checked.
func TestRequesterIsTheCallersOrganisation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	const ods = `"system":"https://fhir.nhs.uk/Id/ods-organization-code"`
	own := `"requester":{"identifier":{` + ods + `,"value":"` + practiceODS + `"}}`
	n := 0
	send := func(requester string, who []string) *response {
		t.Helper()
		n++
		body := strings.Replace(string(referral("REQ-"+ident(n), "390893007")), own, requester, 1)
		if requester != "" && !strings.Contains(body, requester) {
			t.Fatalf("the test referral has no requester to replace: %s", body)
		}
		return e.post("/ServiceRequest", []byte(body), who...)
	}
	for name, requester := range map[string]string{
		"another practice's ODS code":     `"requester":{"identifier":{` + ods + `,"value":"B82002"},"display":"Practice B"}`,
		"an Organization reference":       `"requester":{"reference":"Organization/practice-b","display":"Practice B"}`,
		"a contained other Organization":  `"contained":[{"resourceType":"Organization","id":"org","identifier":[{` + ods + `,"value":"B82002"}]}],"requester":{"reference":"#org"}`,
		"a Patient":                       `"requester":{"reference":"Patient/someone"}`,
		"an identifier of another system": `"requester":{"identifier":{"system":"https://example.org/practices","value":"` + practiceODS + `"}}`,
	} {
		res := send(requester, a)
		if res.status != http.StatusUnprocessableEntity || !strings.Contains(string(res.body), `"ServiceRequest.requester.`) ||
			!strings.Contains(string(res.body), `"business-rule"`) || !strings.Contains(string(res.body), practiceODS) {
			t.Errorf("%s: %d %s", name, res.status, res.body)
		}
	}
	if got := total(t, e.get("/ServiceRequest", a...)); got != 0 {
		t.Errorf("refused referrals stored: %d", got)
	}
	for name, requester := range map[string]string{
		"its own ODS code":               own,
		"its own, with a display":        `"requester":{"identifier":{` + ods + `,"value":"` + practiceODS + `"},"display":"Leeds Road Surgery"}`,
		"its own, with another's name":   `"requester":{"identifier":{` + ods + `,"value":"` + practiceODS + `"},"display":"Practice B"}`,
		"a PractitionerRole":             `"requester":{"reference":"PractitionerRole/dr-testdoctor","display":"Dr Test Doctor"}`,
		"a contained Practitioner":       `"contained":[{"resourceType":"Practitioner","id":"gp","name":[{"family":"Testdoctor"}]}],"requester":{"reference":"#gp"}`,
		"its own contained Organization": `"contained":[{"resourceType":"Organization","id":"org","identifier":[{` + ods + `,"value":"` + practiceODS + `"}]}],"requester":{"reference":"#org"}`,
	} {
		res := send(requester, a)
		if res.status != http.StatusCreated {
			t.Errorf("%s: %d %s", name, res.status, res.body)
			continue
		}
		// The Task Signpost makes names the requester in a form it can
		// hold: not a reference into the ServiceRequest's contained
		// resources, which it does not copy (ref-1).
		task := e.referralTask(t, res.json(t)["id"].(string))
		for _, is := range structure.Validate(mustJSON(task)).Issues {
			t.Errorf("%s: the referral's Task is not valid R4: %v %s", name, is.Expression, is.Diagnostics)
		}
		// It is found by the requester it names.
		if id, ok := task["requester"].(map[string]any)["identifier"].(map[string]any); ok {
			q := "/Task?_id=" + task["id"].(string) + "&requester:identifier=" + id["system"].(string) + "|" + id["value"].(string)
			if n := total(t, e.get(q, a...)); n != 1 {
				t.Errorf("%s: %s finds %d Tasks; want its own", name, q, n)
			}
		}
	}
	// The inbox shows the checked identifier beside the sender's display.
	page, err := e.svc.Portal.Inbox(context.Background(), gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}, portal.InboxNew, 0)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, r := range page.Referrals {
		shown[r.Practice] = true
	}
	if shown["Practice B"] || !shown["Practice B ("+practiceODS+")"] || !shown["Leeds Road Surgery ("+practiceODS+")"] || !shown[practiceODS] {
		t.Errorf("the inbox shows referrals from %v", shown)
	}
	// No requester: Signpost records the caller's organisation.
	body := strings.Replace(string(referral("REQ-NONE", "390893007")), own+",", "", 1)
	e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated)
	// The operator is not checked.
	send(`"requester":{"identifier":{`+ods+`,"value":"B82002"}}`, nil).must(t, http.StatusCreated)

	// A client's own referral Task, in the same transaction, is checked the same way.
	task := strings.Replace(ownTask("urn:uuid:sr", "x"), `,"for":{"reference":"x"}`, `,"requester":{"identifier":{`+ods+`,"value":"B82002"}}`, 1)
	res := e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("REQ-TASK", "390893007"))), entry("urn:uuid:task", "Task", task)), a...)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(string(res.body), `"Bundle.entry[1].resource.requester.identifier"`) {
		t.Errorf("a Task naming another practice as requester: %d %s", res.status, res.body)
	}
}
