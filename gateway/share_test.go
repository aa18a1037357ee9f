package gateway_test

import (
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
)

// A referral whose patient is named in its references and contained
// resources: a profile that withholds the name and the identifier leaves
// neither in a reference's display, cuts a contained Patient as it cuts a
// Patient, leaves out a contained resource of a type it does not share
// (a reference to it says it was withheld) and every contained resource
// nothing shared references; what is left is valid R4.
func TestShareProfileCutsPatientReferencesAndContained(t *testing.T) {
	t.Parallel()
	sr := `{"resourceType":"ServiceRequest","id":"sr1",` +
		`"contained":[` +
		`{"resourceType":"Patient","id":"p","name":[{"family":"Containedname"}],"telecom":[{"system":"phone","value":"07700 900456"}]},` +
		`{"resourceType":"Condition","id":"c","subject":{"reference":"#p","display":"Sam Conditionname"},"note":[{"text":"ConditionNoteSentinel"}]},` +
		`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"note":[{"text":"UnreferencedSentinel"}]}],` +
		`"status":"active","intent":"order","code":{"text":"walking"},` +
		`"subject":{"reference":"#p","display":"Sam Sharename"},` +
		`"reasonReference":[{"reference":"#c"}],"reasonCode":[{"text":"lonely"}],"note":[{"text":"RequestNoteSentinel"}]}`
	task := `{"resourceType":"Task","id":"t1","status":"requested","intent":"order",` +
		`"for":{"reference":"Patient/p1","display":"Sam Sharename","identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}}}`
	cond := `{"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p1","display":"Sam Sharename"}}`

	p := gateway.NewShareProfile("nonames", []string{"telecom", "reasonCode", "reasonReference", "Condition"})
	for _, c := range []struct {
		r       *gateway.Resource
		absent  []string
		present []string
	}{
		{&gateway.Resource{Type: gateway.TypeServiceRequest, ID: "sr1", Body: []byte(sr)},
			[]string{"Sharename", "Containedname", "Conditionname", "RequestNoteSentinel", "UnreferencedSentinel", `"Observation"`},
			[]string{"07700 900456", "ConditionNoteSentinel", `"#p"`, `"#c"`, "SUBSETTED"}},
		{&gateway.Resource{Type: gateway.TypeTask, ID: "t1", Body: []byte(task)},
			[]string{"Sharename", "9000000009"}, []string{`"Patient/p1"`, "SUBSETTED"}},
		{&gateway.Resource{Type: "Condition", ID: "c2", Body: []byte(cond)},
			[]string{"Sharename"}, []string{`"Patient/p1"`}},
	} {
		got := p.Cut(c.r)
		if got == nil {
			t.Fatalf("%s: nothing shared", c.r.Type)
		}
		for _, s := range c.absent {
			if strings.Contains(string(got.Body), s) {
				t.Errorf("%s: %q is there though the profile withholds it: %s", c.r.Type, s, got.Body)
			}
		}
		for _, s := range c.present {
			if !strings.Contains(string(got.Body), s) {
				t.Errorf("%s: %q is missing: %s", c.r.Type, s, got.Body)
			}
		}
		for _, is := range structure.Validate(got.Body).Issues {
			t.Errorf("%s cut is not valid R4: %s %v: %s", c.r.Type, is.Code, is.Expression, is.Diagnostics)
		}
	}

	// A type the profile does not share is left out, and a reference to it
	// says so rather than dangling.
	q := gateway.NewShareProfile("reasons", []string{"reasonReference"})
	got := q.Cut(&gateway.Resource{Type: gateway.TypeServiceRequest, ID: "sr1", Body: []byte(sr)})
	if strings.Contains(string(got.Body), "ConditionNoteSentinel") || !strings.Contains(string(got.Body), "withheld by the provider's share profile") {
		t.Errorf("a contained Condition the profile does not share: %s", got.Body)
	}
	for _, is := range structure.Validate(got.Body).Issues {
		t.Errorf("cut is not valid R4: %s %v: %s", is.Code, is.Expression, is.Diagnostics)
	}
}
