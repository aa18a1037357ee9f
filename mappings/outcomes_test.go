package mappings

import (
	"strings"
	"testing"
)

func TestDefaultOutcomes(t *testing.T) {
	t.Parallel()
	o := DefaultOutcomes()
	if e, ok := o.Code(OutcomeDeclined); !ok || e.Code != "871711000000103" {
		t.Errorf("declined = %+v", e)
	}
	if e, ok := o.Code(OutcomeAccepted); !ok || e.Code != "871731000000106" {
		t.Errorf("accepted = %+v", e)
	}
	// No verified codes for these: none is invented.
	for _, out := range []string{OutcomeCompleted, OutcomeDidNotAttend} {
		if _, ok := o.Code(out); ok {
			t.Errorf("%s has a code", out)
		}
	}
}

func TestLoadOutcomesProblems(t *testing.T) {
	t.Parallel()
	_, err := LoadOutcomes(strings.NewReader(OutcomeHeader+"\nhttp://snomed.info/sct,871711000000104,x,declined\nhttp://snomed.info/sct,871731000000106,y,finished\n"), "o.csv")
	if err == nil || !strings.Contains(err.Error(), "o.csv:2") || !strings.Contains(err.Error(), "o.csv:3") {
		t.Errorf("want both lines named: %v", err)
	}
}
