package fhir

import "testing"

func TestValidNHSNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"9434765919", true},
		{"9000000009", true},
		{"3478526985", false}, // used in NHS England's own BaRS examples; fails Modulus 11
		{"9434765918", false},
		{"943476591", false},
		{"94347659190", false},
		{"943476591X", false},
		{"", false},
		{"0000000000", true},
		{"1000000010", false}, // nine digits whose check would be 10: no valid number
	} {
		if got := ValidNHSNumber(tc.in); got != tc.want {
			t.Errorf("ValidNHSNumber(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
