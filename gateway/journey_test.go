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

// Only an operator's redrive takes an ending back: the version it writes
// (requested again, redriven) clears the ending and nothing else, so what
// the referral reached before stays and its next ending is its end. A
// provider's failure, whatever business status it gives, takes nothing
// back, nor does a requested version that is no redrive.
func TestOnlyARedriveTakesAnEndingBack(t *testing.T) {
	t.Parallel()
	redrive := TaskStep{Status: TaskRequested, Business: BusinessRedriven}
	for _, st := range []TaskStep{
		redrive,
		{Status: TaskRequested},
		{Status: TaskRequested, Business: BusinessDelivered},
		{Status: TaskFailed, Business: BusinessRedriven},
		{Status: TaskFailed, Reason: EndDidNotAttend},
		{Status: TaskCancelled, Business: BusinessRedriven, Withheld: true},
	} {
		for m := range Milestones {
			if want := st == redrive && m == MilestoneEnded; st.Clears(m) != want {
				t.Errorf("%+v clears milestone %d: %v, want %v", st, m, st.Clears(m), want)
			}
		}
	}
	at := func(s int) time.Time { return time.Unix(1_700_000_000+int64(s), 0).UTC() }
	var r Reached
	r.Add(TaskStep{Status: TaskRequested, Business: BusinessDelivered}, at(1))
	r.Add(TaskStep{Status: TaskFailed, Business: "undeliverable"}, at(2))
	r.Add(redrive, at(3))
	if !r.At[MilestoneEnded].IsZero() || r.End != (TaskStep{}) || !r.At[MilestoneDelivered].Equal(at(1)) {
		t.Errorf("after the redrive: %+v; want no ending, delivered kept", r)
	}
	r.Add(TaskStep{Status: TaskCompleted}, at(4))
	if !r.At[MilestoneEnded].Equal(at(4)) || r.End.Status != TaskCompleted || !r.At[MilestoneDelivered].Equal(at(1)) {
		t.Errorf("completed after the redrive: %+v; want ended completed at the completion, delivered kept", r)
	}
}
