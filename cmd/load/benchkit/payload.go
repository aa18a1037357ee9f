// Package benchkit holds what Signpost's performance harness shares between
// the load generator (cmd/load), the floor server (cmd/floor) and the Go
// benchmarks of gateway/httpapi: the referral body sent, and the floor's
// handler. Everything here is synthetic test data.
package benchkit

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
)

// Synthetic identities used in every request body: a documented NHS test
// number and a made-up GP practice.
const (
	NHSNumber      = "9434765919"
	PracticeODS    = "A81001"
	IdentSystem    = "https://example-gp.nhs.uk/referral-id"
	ReferralCode   = "390893007" // Referral to physical activity program
	identSeparator = "-"
)

// The body is a realistic active social prescribing referral of about 1.5 KB:
// narrative, a profile, an extension, a primitive extension on authoredOn,
// SNOMED CT coding, the patient by NHS number and the requester by ODS code.
// Only identifier.value changes between requests; it sits between these two
// halves so a body is built with two appends.
const (
	bodyHead = `{"resourceType":"ServiceRequest",` +
		`"meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest"]},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Social prescribing referral ` +
		`to a physical activity programme (local walking group). The patient has agreed to be contacted by ` +
		`telephone on weekday mornings.</p></div>"},` +
		`"extension":[{"url":"https://example-gp.nhs.uk/fhir/StructureDefinition/referral-source",` +
		`"valueCodeableConcept":{"text":"Face-to-face GP consultation"}}],` +
		`"identifier":[{"system":"` + IdentSystem + `","value":"`
	bodyTail = `"}],` +
		`"status":"active","intent":"order","priority":"routine",` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"` + ReferralCode + `",` +
		`"display":"Referral to physical activity program"}],"text":"Social prescribing: physical activity"},` +
		`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + NHSNumber + `"}},` +
		`"authoredOn":"2026-11-20T09:30:00Z",` +
		`"_authoredOn":{"extension":[{"url":"https://example-gp.nhs.uk/fhir/StructureDefinition/entered-by-role",` +
		`"valueString":"GP partner"}]},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"` + PracticeODS + `"},` +
		`"display":"Example Surgery"},` +
		`"reasonCode":[{"text":"Low mood and social isolation; patient would like to become more active"}],` +
		`"patientInstruction":"The walking group will telephone you within two weeks to arrange a first session.",` +
		`"note":[{"text":"Synthetic test data for performance testing: no real patient is described."}]}`
)

// Bodies makes request bodies whose identifier values are unique: a random
// run prefix chosen at creation, then a counter. Signpost treats a repeated
// identifier from the same client as a repeat of the first request (200), so
// every body of a load test must carry its own.
type Bodies struct {
	prefix string
}

// NewBodies starts a series of bodies. label goes into the identifiers so
// that a Redis key tells which run wrote it.
func NewBodies(label string) *Bodies {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return &Bodies{prefix: "PERF-" + label + identSeparator + hex.EncodeToString(b[:]) + identSeparator}
}

// Append appends the body with the n-th identifier of the series to dst.
// Concurrent callers use distinct n (an atomic counter) and distinct dst.
func (s *Bodies) Append(dst []byte, n uint64) []byte {
	dst = append(dst, bodyHead...)
	dst = append(dst, s.prefix...)
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, bodyTail...)
}

// Size is the length of a body with identifier number n.
func (s *Bodies) Size(n uint64) int { return len(s.Append(nil, n)) }
