package mappings

import (
	"strings"
	"testing"
)

func TestDefaultConsentCodes(t *testing.T) {
	t.Parallel()
	c := DefaultConsent()
	for code, want := range map[string]string{"319951000000105": ConsentGiven, "425691002": ConsentGiven, "320011000000108": ConsentRefused, "871731000000106": ""} {
		if got := c.Lookup(SystemSNOMED, code); got != want {
			t.Errorf("%s = %q, want %q", code, got, want)
		}
	}
	if got := c.Lookup("http://example.org", "319951000000105"); got != "" {
		t.Errorf("another system's code counts: %q", got)
	}
}

func TestLoadConsentProblems(t *testing.T) {
	t.Parallel()
	_, err := LoadConsent(strings.NewReader(ConsentHeader+"\n"+
		"http://snomed.info/sct,319951000000106,bad check digit,given,somewhere\n"+
		"http://snomed.info/sct,425691002,x,maybe,somewhere\n"+
		"http://snomed.info/sct,425691002,x,given,\n"+
		"http://snomed.info/sct,320011000000108,x,refused,somewhere\n"+
		"http://snomed.info/sct,320011000000108,x,refused,somewhere\n"), "c.csv")
	if err == nil {
		t.Fatal("no error")
	}
	for _, line := range []string{"c.csv:2", "c.csv:3", "c.csv:4", "c.csv:6"} {
		if !strings.Contains(err.Error(), line) {
			t.Errorf("%s not named: %v", line, err)
		}
	}
	if strings.Contains(err.Error(), "c.csv:5") {
		t.Errorf("a good line is named: %v", err)
	}
}
