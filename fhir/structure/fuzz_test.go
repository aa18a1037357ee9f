package structure

import (
	"testing"
)

// The validator reads untrusted bodies: whatever it is given, it answers
// without panicking, within MaxIssues, and the same way twice.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(referral))
	f.Add([]byte(patient))
	for _, m := range mutants {
		f.Add(m.body)
	}
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
