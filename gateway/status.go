package gateway

// The Gravity SDOH Clinical Care IG (STU3) allows every R4 TaskStatus except
// "ready" and "received" on a referral Task, and this machine of transitions
// between them.
var taskTransitions = map[string][]string{
	"draft":       {"requested"},
	"requested":   {"accepted", "rejected", "cancelled"},
	"accepted":    {"in-progress", "on-hold", "completed", "failed", "cancelled"},
	"in-progress": {"on-hold", "completed", "failed", "cancelled"},
	"on-hold":     {"in-progress", "completed", "failed", "cancelled"},
}

// TaskStatuses is the R4 TaskStatus value set (a required binding).
var TaskStatuses = NewValueSet("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
	"in-progress", "on-hold", "failed", "completed", "entered-in-error")

// TaskTransitionAllowed reports whether a referral Task may move from one
// status to another. Any status may become entered-in-error; terminal
// statuses (rejected, completed, failed, cancelled, entered-in-error) go
// nowhere else.
func TaskTransitionAllowed(from, to string) bool {
	if from == to {
		return true
	}
	if to == "entered-in-error" {
		return from != "entered-in-error"
	}
	for _, s := range taskTransitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// StatusNeedsReason lists the statuses for which Gravity asks for
// statusReason.text, so the GP learns why.
var StatusNeedsReason = set("rejected", "cancelled", "on-hold", "failed")

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
// system Signpost's delivery steps use).
const (
	BusinessAccepted     = "accepted"
	BusinessContacted    = "contacted"
	BusinessFirstSession = "first-session-attended"
	BusinessOnHold       = "on-hold"
	BusinessResumed      = "resumed"
	BusinessCompleted    = "completed"
	BusinessDeclined     = "declined"
	BusinessDidNotAttend = "did-not-attend"
)

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
var StatusBusiness = map[string]CodeOption{
	"accepted":         {BusinessAccepted, "Accepted by the provider"},
	"rejected":         {BusinessDeclined, "Declined by the provider"},
	"in-progress":      {"in-progress", "In progress"},
	"on-hold":          {BusinessOnHold, "On hold"},
	"completed":        {BusinessCompleted, "Completed"},
	"failed":           {"failed", "Could not be carried out"},
	"cancelled":        {"cancelled", "Cancelled"},
	"requested":        {"requested", "Requested"},
	"entered-in-error": {"entered-in-error", "Entered in error"},
}

// BusinessStatusSystem codes where a referral is in its journey between
// Signpost and the provider (Task.businessStatus).
const BusinessStatusSystem = "https://signpost.health/fhir/CodeSystem/referral-business-status"

// TaskTerminal are the statuses a referral Task does not leave (other than
// to entered-in-error, the referrer's correction).
var TaskTerminal = set("rejected", "completed", "failed", "cancelled", "entered-in-error")
