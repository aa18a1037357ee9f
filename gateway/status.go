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

// taskStatuses is the R4 TaskStatus value set (a required binding).
var taskStatuses = newValueSet("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
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

// statusNeedsReason lists the statuses for which Gravity asks for
// statusReason.text, so the GP learns why.
var statusNeedsReason = set("rejected", "cancelled", "on-hold", "failed")

func set(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}
