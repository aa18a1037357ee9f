package export

import (
	"strings"
	"testing"
)

// The full export changes nothing of a resource but Patients' ids: the
// Patient's own, and the id in each reference to a Patient of Signpost's,
// however it is written (relative, absolute under Signpost's base,
// versioned, with an escaped '/'), read as the owner's; a reference to
// another server's Patient is kept, members keep their order, numbers their
// digits, a contained Patient its local id.
func TestExportedPatientIDs(t *testing.T) {
	t.Parallel()
	a := exportedPatientID("practice-a", "1")
	if a == exportedPatientID("practice-b", "1") || a == exportedPatientID("practice-a", "2") || len(a) != 52 {
		t.Fatalf("ids not of owner and id, or not 52 characters: %s", a)
	}
	cases := []struct{ typ, in, want string }{
		{"Patient", `{"resourceType":"Patient","id":"1","name":[{"text":"Ann"}]}`,
			`{"resourceType":"Patient","id":"` + a + `","name":[{"text":"Ann"}]}`},
		{"ServiceRequest", "{\"resourceType\":\"ServiceRequest\",\n \"subject\":{\"reference\":\"Patient\\/1\"},\"quantityQuantity\":{\"value\":1.50},\"id\":\"1\"}",
			`{"resourceType":"ServiceRequest","subject":{"reference":"Patient/` + a + `"},"quantityQuantity":{"value":1.50},"id":"1"}`},
		{"Task", `{"resourceType":"Task","for":{"reference":"http://signpost.test/fhir/Patient/1/_history/2"},"focus":{"reference":"ServiceRequest/1"}}`,
			`{"resourceType":"Task","for":{"reference":"http://signpost.test/fhir/Patient/` + a + `/_history/2"},"focus":{"reference":"ServiceRequest/1"}}`},
		{"Task", `{"resourceType":"Task","for":{"reference":"http://gp.example/fhir/Patient/1"}}`,
			`{"resourceType":"Task","for":{"reference":"http://gp.example/fhir/Patient/1"}}`},
		{"ServiceRequest", `{"resourceType":"ServiceRequest","contained":[{"resourceType":"Patient","id":"1"}],"subject":{"reference":"#1"},"note":[{"text":"see Patient/1"}]}`,
			`{"resourceType":"ServiceRequest","contained":[{"resourceType":"Patient","id":"1"}],"subject":{"reference":"#1"},"note":[{"text":"see Patient/1"}]}`},
		{"Task", "{\"resourceType\":\"Task\",\r\n\"id\":\"t\"}", `{"resourceType":"Task","id":"t"}`},
	}
	for _, c := range cases {
		got, err := withExportedPatientIDs([]byte(c.in), c.typ, "practice-a", "http://signpost.test/fhir")
		if err != nil || string(got) != c.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c.in, got, err, c.want)
		}
		if strings.ContainsAny(string(got), "\r\n") {
			t.Errorf("%s: not one line", got)
		}
	}
}
