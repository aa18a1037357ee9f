package structure

import (
	"slices"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir"

	"github.com/signpost-health/signpost/cmd/load/benchkit"
)

// The validator reads untrusted bodies: whatever it is given, it answers
// without panicking, within MaxIssues, and the same way twice.
func FuzzValidate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a, b := Validate(body), Validate(body)
		if len(a.Issues) > MaxIssues {
			t.Fatalf("%d issues", len(a.Issues))
		}
		if len(a.Issues) != len(b.Issues) || len(a.Modifiers) != len(b.Modifiers) {
			t.Fatalf("two answers for one body")
		}
	})
}

// ValidateChecked skips only what fhir.ParseResource refused already: for
// every body that check accepts, it answers as ValidateAs does.
func FuzzValidateChecked(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := fhir.ParseResource(body, fhir.ParseOptions{})
		if err != nil {
			return // never reaches ValidateChecked
		}
		a, b := ValidateAs(body, o.ResourceType()), ValidateChecked(body, o.ResourceType())
		if !slices.EqualFunc(a.Issues, b.Issues, func(x, y fhir.Issue) bool {
			return x.Code == y.Code && x.Diagnostics == y.Diagnostics && slices.Equal(x.Expression, y.Expression)
		}) || !slices.Equal(a.Modifiers, b.Modifiers) {
			t.Fatalf("ValidateAs %v, ValidateChecked %v", a.Issues, b.Issues)
		}
	})
}

// addSeeds starts a fuzz target from the valid resources and the mutants.
func addSeeds(f *testing.F) {
	f.Add([]byte(referral))
	f.Add([]byte(patient))
	for _, m := range mutants {
		f.Add(m.body)
	}
}

// BenchmarkValidateReferral is the cost per referral at the door.
func BenchmarkValidateReferral(b *testing.B) {
	body := []byte(referral)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !Validate(body).Valid() {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkValidateLargeExample is a larger, deeper resource: the official
// example Patient with every common element.
func BenchmarkValidateLargeExample(b *testing.B) {
	body := examples(b)["Patient-example.json"]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !Validate(body).Valid() {
			b.Fatal("invalid")
		}
	}
}

// The fast checks answer what R4's regular expressions answer, for any
// value: the expressions from the definitions stay the rule.
func FuzzFastChecksMatchR4(f *testing.F) {
	for _, s := range []string{"", " ", "a", "a b", "a  b", " a", "a ", "a\fb", "a\tb", "a\t\tb", "Patient/1", "x\u00a0y",
		"urn:uuid:0d1b6f3e", strings.Repeat("a", 64), strings.Repeat("a", 65), "a.b-c", "a_b", "\n", "é"} {
		f.Add(s)
	}
	defs, err := loaded()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, fast := range fastChecks {
			p := defs.primitives[name]
			if p == nil || p.format == nil {
				t.Fatalf("%s has no R4 expression to be held to", name)
			}
			if got, want := fast(s), p.format.MatchString(s); got != want {
				t.Errorf("%s %q: fast check %v, R4 expression %v", name, s, got, want)
			}
		}
	})
}

// BenchmarkValidateLoadBody is the referral the load generator sends (about
// 1.5 KB, with narrative, extensions and a primitive extension): what
// validation costs each referral in the intake figures.
func BenchmarkValidateLoadBody(b *testing.B) {
	body := benchkit.NewBodies("bench").Append(nil, 1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !Validate(body).Valid() {
			b.Fatal("invalid")
		}
	}
}
