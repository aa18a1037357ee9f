package gateway

import (
	"slices"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// A referral's journey (when it was delivered, accepted, first contacted,
// started, and how and when it ended) is read from its Task's versions:
// each milestone is the first version to reach it (since an operator's
// redrive took it back: TaskStep.Clears). Nothing bounds how many
// versions a Task has (every change a provider makes is one) nor, below the
// body limit, how large each is, so reading every version (the outcomes
// view's and retention's read did) cost what the Task's writers chose:
// 1,000 versions of 60 KB made one Task a 60 MB read. So each version's
// commit records, with it, the milestones it reaches (Write.Step), and the
// store keeps the first version's time of each: the journey is read from
// those and the first and current versions, a read whose size Signpost
// bounds, and it is the journey every version gives, to the millisecond.

// Milestone is a point of a referral's journey a Task version can reach.
type Milestone int

// The milestones, in the order a referral usually reaches them.
const (
	MilestoneDelivered Milestone = iota // the provider had it
	MilestoneAccepted
	MilestoneContacted // the first contact with the person
	MilestoneStarted
	MilestoneEnded // completed, rejected, failed or cancelled
	MilestoneVoid  // entered in error: no referral at all
	Milestones     // how many there are
)

// TaskStep is what one Task version says of its referral's journey.
type TaskStep struct {
	Status   TaskStatus
	Business string // businessStatus's first code
	Reason   string // statusReason's first code (how it ended)
	// Withheld: Signpost holds the referral from its provider (the
	// withheld tag: awaiting consent, or withdrawn), so the provider had
	// nothing, whatever the status says (a consent hold is on-hold).
	Withheld bool
}

// Reaches reports whether a version at st reaches m. A provider that acted
// on a referral had it; a started one was contacted (recorded or not), and
// a completed one was started (the provider may complete straight from
// accepted), so the funnel stays cumulative. A withheld version reaches
// none of the provider's milestones, only an ending or a voiding.
func (st TaskStep) Reaches(m Milestone) bool {
	if st.Withheld && m != MilestoneEnded && m != MilestoneVoid {
		return false
	}
	switch m {
	case MilestoneDelivered:
		return st.Business == BusinessDelivered || st.Status == TaskRejected || st.Reaches(MilestoneAccepted)
	case MilestoneAccepted:
		return st.Status == TaskAccepted || st.Status == TaskOnHold || st.Reaches(MilestoneStarted)
	case MilestoneContacted:
		return st.Business == BusinessContacted || st.Business == BusinessFirstSession || st.Reaches(MilestoneStarted)
	case MilestoneStarted:
		return st.Status == TaskInProgress || st.Status == TaskCompleted
	case MilestoneEnded:
		return st.Status.Terminal() && st.Status != TaskEnteredInError
	case MilestoneVoid:
		return st.Status == TaskEnteredInError
	}
	return false
}

// Clears reports whether a version at st takes back its referral's
// milestone m. An operator's redrive (requested again, business status
// redriven) sends a referral Signpost failed to deliver: that failure was
// not its end, so the ending is taken back and the referral's next one is
// its end. What it reached before the failure it did reach, and stays.
// Only the redrive takes an ended referral back to requested: a terminal
// status moves on to nothing but entered-in-error (CanMoveTo), a provider
// may not set requested, nor a GP system the business status. So no other
// ending (a provider's failure) is ever taken back, and another version
// like it (a provider's business status on a requested Task) has no
// ending to take back.
func (st TaskStep) Clears(m Milestone) bool {
	return m == MilestoneEnded && st.Status == TaskRequested && st.Business == BusinessRedriven
}

// TaskStepOf is what a Task's typed view says of its journey.
func TaskStepOf(t *models.Task) TaskStep {
	st := TaskStep{Status: TaskStatus(t.Status.Code())}
	if cs := codings(t.BusinessStatus); len(cs) > 0 {
		st.Business = cs[0].Code
	}
	if cs := codings(t.StatusReason); len(cs) > 0 {
		st.Reason = cs[0].Code
	}
	if t.Meta != nil {
		st.Withheld = slices.ContainsFunc(t.Meta.Tag, func(c models.Coding) bool {
			return c.System != nil && c.Code != nil && isWithheldTag(*c.System, *c.Code)
		})
	}
	return st
}

// ReadTaskStep reads what a stored Task version says of its journey;
// false if it cannot be read. Only the codes are decoded: the full Task
// view (samply) cost four fifths of the outcomes view's CPU.
func ReadTaskStep(body []byte) (TaskStep, bool) {
	var v struct {
		Status         TaskStatus   `json:"status"`
		BusinessStatus codedConcept `json:"businessStatus"`
		StatusReason   codedConcept `json:"statusReason"`
		Meta           struct {
			Tag []coding `json:"tag"`
		} `json:"meta"`
	}
	if jsonv2.Unmarshal(body, &v) != nil {
		return TaskStep{}, false
	}
	withheld := slices.ContainsFunc(v.Meta.Tag, func(c coding) bool { return isWithheldTag(c.System, c.Code) })
	return TaskStep{Status: v.Status, Business: v.BusinessStatus.first(), Reason: v.StatusReason.first(), Withheld: withheld}, true
}

// codedConcept is a CodeableConcept's codes, as ReadTaskStep reads them.
type codedConcept struct {
	Coding []coding `json:"coding"`
}

// coding is a Coding's system and code (jsonv2 matches names exactly).
type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

func (c codedConcept) first() string {
	if len(c.Coding) == 0 {
		return ""
	}
	return c.Coding[0].Code
}

// Reached is when a referral's Task versions first reached each milestone
// (zero: not yet), and the status and reason of the first to end it.
type Reached struct {
	At  [Milestones]time.Time
	End TaskStep // its Business is not kept
}

// Add records a version at st made at at, as the store records each
// version's: a milestone keeps the time of the first version to reach it
// since a version last took it back (TaskStep.Clears).
func (r *Reached) Add(st TaskStep, at time.Time) {
	for m := range Milestones {
		if st.Clears(m) {
			r.At[m] = time.Time{}
			if m == MilestoneEnded {
				r.End = TaskStep{}
			}
		}
		if r.At[m].IsZero() && st.Reaches(m) {
			r.At[m] = at
			if m == MilestoneEnded {
				r.End = TaskStep{Status: st.Status, Reason: st.Reason}
			}
		}
	}
}

// ReachedBy is what a Task's versions reach, read from their bodies, as
// their commits record it: the journey of a Task written before versions
// recorded their milestones. A version that does not read is passed over
// (every stored version passed the raw checks, so none should be).
func ReachedBy(versions []*Resource) Reached {
	var r Reached
	for _, v := range versions {
		if st, ok := ReadTaskStep(v.Body); ok {
			r.Add(st, v.LastUpdated)
		}
	}
	return r
}

// JourneyRecord is what a referral Task's journey is read from
// (Store.JourneyRecords).
type JourneyRecord struct {
	// Versions are oldest first: the first version held, then the current
	// one for a Task whose versions recorded their milestones (Reached),
	// else the newest the read's window holds (nil: the Task is not held).
	Versions []*Resource
	// Reached is what its versions recorded, nil for a Task whose first
	// version recorded nothing: it was written before versions did, and
	// its journey is read from Versions alone.
	Reached *Reached
}

// Journey is what the record's versions reached: as they recorded it, or,
// for a Task written before versions did, as the versions read give it.
func (r JourneyRecord) Journey() Reached {
	if r.Reached != nil {
		return *r.Reached
	}
	return ReachedBy(r.Versions)
}
