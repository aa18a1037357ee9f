package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// A referral Signpost holds for consent was never sent: its held versions
// (on-hold, withheld from the provider) reach no milestone, so the
// outcomes view counts it as sent, not delivered or accepted, whether the
// GP changes it while it is held or not, and its versions read whole say
// the same as what they recorded.
func TestHeldReferralReachesNoMilestone(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	ctx := context.Background()
	srID := e.post("/ServiceRequest", referral("HELD-1", "390893007"), as("practice-a")...).must(t, http.StatusCreated).json(t)["id"].(string)
	task := e.referralTask(t, srID)
	taskID := task["id"].(string)
	if task["status"] != "on-hold" || reasonCode(task) != gateway.ReasonAwaitingConsent {
		t.Fatalf("Task %v, reason %q; want on-hold awaiting-consent", task["status"], reasonCode(task))
	}
	// The GP makes it urgent while it waits for consent.
	e.do(http.MethodPatch, "/Task/"+taskID, []byte(`[{"op":"replace","path":"/priority","value":"urgent"}]`),
		callerHeader, "practice-a", "Content-Type", "application/json-patch+json").must(t, http.StatusOK)

	versions, err := e.store.Histories(ctx, gateway.TypeTask, []string{taskID})
	if err != nil {
		t.Fatal(err)
	}
	whole := gateway.ReachedBy(versions[0])
	recs, err := e.store.JourneyRecords(ctx, []string{taskID}, gateway.HistoryWindow{Versions: 50, Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	got := recs[0].Reached
	if got == nil {
		t.Fatal("the held referral's versions recorded nothing")
	}
	for _, r := range []struct {
		name    string
		reached gateway.Reached
	}{{"recorded", *got}, {"read whole", whole}} {
		for m := range gateway.Milestones {
			if !r.reached.At[m].IsZero() {
				t.Errorf("%d versions of a held referral (%s) reach milestone %d", len(versions[0]), r.name, m)
			}
		}
	}
}
