package gateway

import (
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
)

// BenchmarkReadReferral is the typed view intake reads of every referral.
func BenchmarkReadReferral(b *testing.B) {
	body := []byte(`{"resourceType":"ServiceRequest","identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"REF-1"}],` +
		`"status":"active","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"871731000000106","display":"Referral to social prescribing service"}]},` +
		`"subject":{"reference":"Patient/pat-1","identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"},"display":"Synthetic Patient"},` +
		`"requester":{"reference":"Organization/A81001","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}},` +
		`"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"X1"}}],"authoredOn":"2026-06-01T09:00:00Z"}`)
	o, err := fhir.ParseResource(body, fhir.ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ReadReferral(o); err != nil {
			b.Fatal(err)
		}
	}
}

// referralTaskInputs are what intake builds a referral's Task from.
type referralTaskInputs struct {
	subject   []byte
	requester *models.Reference
	routing   *Routing
	now       time.Time
}

func newReferralTaskInputs(b *testing.B) referralTaskInputs {
	o, err := fhir.ParseResource([]byte(`{"resourceType":"ServiceRequest","requester":{"reference":"Organization/A81001","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}}`), fhir.ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	v, err := ReadReferral(o)
	if err != nil {
		b.Fatal(err)
	}
	return referralTaskInputs{subject: []byte(`{"reference":"Patient/pat-1","identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}}`),
		requester: v.Requester, routing: &Routing{Category: "social-connection", Provider: &Provider{ID: "leeds-walking", Name: "Leeds Walking"}},
		now: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
}

// BenchmarkNewReferralTask is the Task intake writes for every referral.
func BenchmarkNewReferralTask(b *testing.B) {
	in := newReferralTaskInputs(b)
	for b.Loop() {
		NewReferralTask("task-1", "sr-1", in.subject, in.requester, "routine", in.routing, in.now)
	}
}

// BenchmarkTaskVersion is the Task change every delivery records (its
// business status), built from the Task intake wrote.
func BenchmarkTaskVersion(b *testing.B) {
	in := newReferralTaskInputs(b)
	o, err := fhir.ParseResource(NewReferralTask("task-1", "sr-1", in.subject, in.requester, "routine", in.routing, in.now), fhir.ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cur := &Resource{Type: TypeTask, ID: "task-1", Version: 1, LastUpdated: in.now, Owner: "practice-a", Body: o.WithServerFields("task-1", "1", Instant(in.now))}
	view, err := ParseTask(cur.Body)
	if err != nil {
		b.Fatal(err)
	}
	c := NewCore(Options{Now: func() time.Time { return in.now.Add(time.Second) }})
	for b.Loop() {
		members := map[string]any{"businessStatus": map[string]any{"text": "delivered to Leeds Walking"}}
		c.TaskVersion(cur, view, members, nil, nil)
	}
}
