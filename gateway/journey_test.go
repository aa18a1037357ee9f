package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// A Task version that does not say what it is of the journey is refused
// before the store: written, it would record no milestone, and the
// outcomes view would miss what it reached for good.
func TestTaskWriteWithoutItsStepIsRefused(t *testing.T) {
	t.Parallel()
	core := &Core{} // no store: the commit never gets there
	task := &Resource{Type: TypeTask, ID: "t1", Version: 2, LastUpdated: time.Now(), Body: []byte(`{"resourceType":"Task","status":"accepted"}`)}
	if _, err := core.Commit(context.Background(), &Commit{Writes: []Write{{Resource: task, Expect: 1}}}); !errors.Is(err, errTaskWithoutStep) {
		t.Errorf("a Task version without its step: %v", err)
	}
}

// The milestones a version reaches, as the outcomes view counts them: a
// provider that acted had the referral, a start is a contact and an
// acceptance, an ending is any final status but entered in error; a
// version withheld from the provider reaches only an ending or a voiding.
func TestTaskStepReachesItsMilestones(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		step TaskStep
		want []Milestone
	}{
		{TaskStep{Status: TaskRequested}, nil},
		{TaskStep{Status: TaskRequested, Business: BusinessDelivered}, []Milestone{MilestoneDelivered}},
		{TaskStep{Status: TaskAccepted}, []Milestone{MilestoneDelivered, MilestoneAccepted}},
		{TaskStep{Status: TaskAccepted, Business: BusinessContacted}, []Milestone{MilestoneDelivered, MilestoneAccepted, MilestoneContacted}},
		{TaskStep{Status: TaskOnHold}, []Milestone{MilestoneDelivered, MilestoneAccepted}},
		{TaskStep{Status: TaskInProgress}, []Milestone{MilestoneDelivered, MilestoneAccepted, MilestoneContacted, MilestoneStarted}},
		{TaskStep{Status: TaskCompleted}, []Milestone{MilestoneDelivered, MilestoneAccepted, MilestoneContacted, MilestoneStarted, MilestoneEnded}},
		{TaskStep{Status: TaskRejected, Reason: "no-capacity"}, []Milestone{MilestoneDelivered, MilestoneEnded}},
		{TaskStep{Status: TaskFailed, Reason: EndDidNotAttend}, []Milestone{MilestoneEnded}},
		{TaskStep{Status: TaskCancelled}, []Milestone{MilestoneEnded}},
		{TaskStep{Status: TaskEnteredInError}, []Milestone{MilestoneVoid}},
		// Held from the provider (awaiting consent, or withdrawn): it had
		// nothing, so only an ending or a voiding counts.
		{TaskStep{Status: TaskOnHold, Business: ReasonAwaitingConsent, Reason: ReasonAwaitingConsent, Withheld: true}, nil},
		{TaskStep{Status: TaskCancelled, Reason: ReasonConsentWithdrawn, Withheld: true}, []Milestone{MilestoneEnded}},
		{TaskStep{Status: TaskEnteredInError, Withheld: true}, []Milestone{MilestoneVoid}},
	} {
		var got []Milestone
		for m := range Milestones {
			if c.step.Reaches(m) {
				got = append(got, m)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%+v reaches %v, want %v", c.step, got, c.want)
		}
	}
}
