package gateway

import (
	"testing"

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
