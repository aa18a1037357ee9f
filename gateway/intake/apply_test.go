package intake

import (
	"slices"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// What a plan says it stored (an answer's audit record after its commit,
// StoredError) is what its commit writes: an outcome resolved to what was
// held, a repeat or a Consent sent again unchanged, was stored by an
// earlier request.
func TestPlanStoredNamesOnlyWhatItsCommitWrites(t *testing.T) {
	t.Parallel()
	consent := &gateway.Resource{Type: gateway.TypeConsent, ID: "c1", Version: 2}
	repeat := &gateway.Resource{Type: gateway.TypeServiceRequest, ID: "sr1", Version: 1}
	pl := &plan{outcomes: []*gateway.Outcome{{Resource: consent}, {Resource: repeat}, nil}}
	pl.commit.Writes = []gateway.Write{{Resource: consent}, {Resource: &gateway.Resource{Type: gateway.TypeTask, ID: "t1", Version: 3}}}
	if got := pl.stored(); !slices.Equal(got, []string{"Consent/c1"}) {
		t.Errorf("stored %v, want [Consent/c1]", got)
	}
	pl.commit.Writes = nil
	if got := pl.stored(); len(got) != 0 {
		t.Errorf("stored %v by a commit that writes nothing, want nothing", got)
	}
}
