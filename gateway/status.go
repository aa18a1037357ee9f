package gateway

import "slices"

// TaskStatus is a referral Task's status: an R4 TaskStatus code (a
// required binding). Every rule about statuses is a method here, so a rule
// is spelled once and a status is never a bare string between layers.
type TaskStatus string

// The R4 TaskStatus codes.
const (
	TaskDraft          TaskStatus = "draft"
	TaskRequested      TaskStatus = "requested"
	TaskReceived       TaskStatus = "received"
	TaskAccepted       TaskStatus = "accepted"
	TaskRejected       TaskStatus = "rejected"
	TaskReady          TaskStatus = "ready"
	TaskCancelled      TaskStatus = "cancelled"
	TaskInProgress     TaskStatus = "in-progress"
	TaskOnHold         TaskStatus = "on-hold"
	TaskFailed         TaskStatus = "failed"
	TaskCompleted      TaskStatus = "completed"
	TaskEnteredInError TaskStatus = "entered-in-error"
)

// The Gravity SDOH Clinical Care IG (STU3) allows every R4 TaskStatus except
// "ready" and "received" on a referral Task, and this machine of transitions
// between them.
var taskTransitions = map[TaskStatus][]TaskStatus{
	TaskDraft:      {TaskRequested},
	TaskRequested:  {TaskAccepted, TaskRejected, TaskCancelled},
	TaskAccepted:   {TaskInProgress, TaskOnHold, TaskCompleted, TaskFailed, TaskCancelled},
	TaskInProgress: {TaskOnHold, TaskCompleted, TaskFailed, TaskCancelled},
	TaskOnHold:     {TaskInProgress, TaskCompleted, TaskFailed, TaskCancelled},
}

// TaskStatuses is the R4 TaskStatus value set (a required binding).
var TaskStatuses = NewValueSet(string(TaskDraft), string(TaskRequested), string(TaskReceived), string(TaskAccepted),
	string(TaskRejected), string(TaskReady), string(TaskCancelled), string(TaskInProgress), string(TaskOnHold),
	string(TaskFailed), string(TaskCompleted), string(TaskEnteredInError))

// CanMoveTo reports whether a referral Task may move from s to next. Any
// status may become entered-in-error; terminal statuses go nowhere else.
func (s TaskStatus) CanMoveTo(next TaskStatus) bool {
	if s == next {
		return true
	}
	if next == TaskEnteredInError {
		return s != TaskEnteredInError
	}
	return slices.Contains(taskTransitions[s], next)
}

// Terminal reports whether a referral Task in s is closed: it does not
// leave s, other than to entered-in-error (the referrer's correction).
func (s TaskStatus) Terminal() bool {
	switch s {
	case TaskRejected, TaskCompleted, TaskFailed, TaskCancelled, TaskEnteredInError:
		return true
	}
	return false
}

// NeedsReason reports whether Gravity asks for statusReason.text with s,
// so the GP learns why.
func (s TaskStatus) NeedsReason() bool {
	switch s {
	case TaskRejected, TaskCancelled, TaskOnHold, TaskFailed:
		return true
	}
	return false
}

// SetByRequester reports whether s is the referrer's to set (the GP
// system's side); the others are the performer's (the provider's side).
// Cancelled is both's: either side may end a referral.
func (s TaskStatus) SetByRequester() bool {
	switch s {
	case TaskDraft, TaskRequested, TaskCancelled, TaskEnteredInError:
		return true
	}
	return false
}

// SetByPerformer reports whether s is the provider's to set.
func (s TaskStatus) SetByPerformer() bool {
	switch s {
	case TaskAccepted, TaskRejected, TaskInProgress, TaskOnHold, TaskFailed, TaskCompleted, TaskCancelled:
		return true
	}
	return false
}

// RequestStatus is a ServiceRequest's status: an R4 RequestStatus code (a
// required binding). It is the requester's (Gravity), and says what the GP
// record shows of the referral; its rules are methods here, as the Task's
// are.
type RequestStatus string

// The R4 RequestStatus codes.
const (
	RequestDraft          RequestStatus = "draft"
	RequestActive         RequestStatus = "active"
	RequestOnHold         RequestStatus = "on-hold"
	RequestRevoked        RequestStatus = "revoked"
	RequestCompleted      RequestStatus = "completed"
	RequestEnteredInError RequestStatus = "entered-in-error"
	RequestUnknown        RequestStatus = "unknown"
)

// RequestStatuses is the R4 RequestStatus value set (a required binding).
var RequestStatuses = NewValueSet(string(RequestDraft), string(RequestActive), string(RequestOnHold), string(RequestRevoked),
	string(RequestCompleted), string(RequestEnteredInError), string(RequestUnknown))

// Terminal reports whether a referral in s is over (R4's request state
// machine): revoked (withdrawn by its requester), completed, or
// entered-in-error (it should never have existed). Its Task is cancelled
// or closed, and no provider acts on it, so it does not become draft,
// active, on-hold or unknown again; a new referral is sent instead.
func (s RequestStatus) Terminal() bool {
	switch s {
	case RequestRevoked, RequestCompleted, RequestEnteredInError:
		return true
	}
	return false
}

// Withdraws reports whether a referral moved to s is withdrawn by its
// requester: its Task is cancelled and its provider told.
func (s RequestStatus) Withdraws() bool { return s == RequestRevoked || s == RequestEnteredInError }

// CanMoveTo reports whether a referral may move from s to next. A status
// kept is no move (the referrer may still correct other elements, add a
// note, or send its withdrawal again); a terminal status goes nowhere but
// to entered-in-error, the referrer's correction, which itself is final.
// Draft is where a request starts (R4's request pattern), not where one
// that was acted on returns: an active referral has a Task its provider
// holds, which a draft would leave behind. The other statuses before a
// terminal one move freely.
func (s RequestStatus) CanMoveTo(next RequestStatus) bool {
	switch {
	case s == next:
		return true
	case s.Terminal():
		return next == RequestEnteredInError
	default:
		return next != RequestDraft
	}
}

func set(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// Code systems of what providers record. They are Signpost's own: there are
// no national codes for these steps, and STANDARDS forbids inventing SNOMED
// CT codes. Each coding also carries its text, so a receiver that does not
// know the system still reads what happened.
const (
	DeclineReasonSystem = "https://signpost.health/fhir/CodeSystem/referral-decline-reason"
	EndReasonSystem     = "https://signpost.health/fhir/CodeSystem/referral-end-reason"
	OutcomeSystem       = "https://signpost.health/fhir/CodeSystem/referral-outcome"
	// ResultingActivitySystem types Task.output on completion (Gravity).
	ResultingActivitySystem = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)

// CodeOption is one choice a provider picks from.
type CodeOption struct{ Code, Display string }

// DeclineReasons are why a provider declines a referral. They follow the
// reasons VCS services report most: the person's choice, eligibility,
// capacity, and not being able to reach them.
var DeclineReasons = []CodeOption{
	{"person-declined", "The person did not want the service"},
	{"not-eligible", "The person is not eligible for the service"},
	{"no-capacity", "The service has no capacity"},
	{"unable-to-contact", "The person could not be contacted"},
	{"not-suitable", "The service does not suit the person's needs"},
	{"duplicate", "The person was already referred"},
	{"other", "Another reason"},
}

// Outcomes are what came of a referral the provider completed.
var Outcomes = []CodeOption{
	{"goals-met", "The person met the goals agreed"},
	{"goals-partly-met", "The person met some of the goals agreed"},
	{"goals-not-met", "The person did not meet the goals agreed"},
	{"signposted-on", "The person was signposted to another service"},
	{"stopped-by-person", "The person chose to stop"},
}

// EndDidNotAttend is the end reason of a referral closed because the
// person did not attend, and how the outcomes view names that ending. Gravity has no status for it: it is recorded as
// status failed (the performer could not carry the task out) with this
// coded reason, so the GP record reads "failed: did not attend" and the
// outcomes view counts it apart from other failures.
const EndDidNotAttend = "did-not-attend"

// Business statuses the provider steps set (Task.businessStatus, in the
// system Signpost's delivery steps use), and the one a delivery sets.
const (
	BusinessDelivered    = "delivered"
	BusinessAccepted     = "accepted"
	BusinessContacted    = "contacted"
	BusinessFirstSession = "first-session-attended"
	BusinessOnHold       = "on-hold"
	BusinessResumed      = "resumed"
	BusinessCompleted    = "completed"
	BusinessDeclined     = "declined"
	BusinessDidNotAttend = "did-not-attend"
)

// BusinessRedriven is the business status of a referral an operator sent
// again after Signpost failed to deliver it: requested again, its journey
// reopened (TaskStep.Clears).
const BusinessRedriven = "redriven"

func OptionNamed(opts []CodeOption, code string) (CodeOption, bool) {
	for _, o := range opts {
		if o.Code == code {
			return o, true
		}
	}
	return CodeOption{}, false
}

// Profiles and code systems of the Gravity SDOH Clinical Care IG that the
// referral Task follows.
const (
	TaskProfile    = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
	TaskCodeSystem = "http://hl7.org/fhir/CodeSystem/task-code"
	// CategorySystem is the code system of Signpost's social prescribing
	// categories, as written on referral Tasks.
	CategorySystem    = "https://signpost.health/fhir/CodeSystem/social-prescribing-category"
	CategoryInputText = "Social prescribing category"
)

// StatusBusiness is the business status Signpost records for a status a
// change moved a Task to without saying one of its own.
var StatusBusiness = map[TaskStatus]CodeOption{
	TaskAccepted:       {BusinessAccepted, "Accepted by the provider"},
	TaskRejected:       {BusinessDeclined, "Declined by the provider"},
	TaskInProgress:     {string(TaskInProgress), "In progress"},
	TaskOnHold:         {BusinessOnHold, "On hold"},
	TaskCompleted:      {BusinessCompleted, "Completed"},
	TaskFailed:         {string(TaskFailed), "Could not be carried out"},
	TaskCancelled:      {string(TaskCancelled), "Cancelled"},
	TaskRequested:      {string(TaskRequested), "Requested"},
	TaskEnteredInError: {string(TaskEnteredInError), "Entered in error"},
}

// BusinessStatusSystem codes where a referral is in its journey between
// Signpost and the provider (Task.businessStatus).
const BusinessStatusSystem = "https://signpost.health/fhir/CodeSystem/referral-business-status"
