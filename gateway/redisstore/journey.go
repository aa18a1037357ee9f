package redisstore

import (
	"strconv"

	"github.com/signpost-health/signpost/gateway"
)

// A referral Task's hash holds, beside its versions, what they recorded of
// its journey (gateway.Write.Step): journeyFrom, set by its first version,
// says they recorded it from the first; each milestone's field is set by
// the first version to reach it (commit.lua's HSETNX) and holds that
// version's lastUpdated (Unix ms), and for the end the status and reason
// that ended it: "<ms> <status> <reason>". About 50 bytes a referral.
const journeyFrom = "j"

var milestoneFields = [gateway.Milestones]string{
	gateway.MilestoneDelivered: "jd",
	gateway.MilestoneAccepted:  "ja",
	gateway.MilestoneContacted: "jc",
	gateway.MilestoneStarted:   "js",
	gateway.MilestoneEnded:     "je",
	gateway.MilestoneVoid:      "jx",
}

// appendMilestones appends a write's first-only fields as commit.lua takes
// them (a count, then field and value each): for a referral Task's version
// with its step, the milestones it reaches, and for its first version
// journeyFrom; none for any other write (a Task written without a step
// reads as one written before versions recorded their milestones).
func appendMilestones(args []any, w gateway.Write) []any {
	r := w.Resource
	if r.Type != gateway.TypeTask || w.Step.Status == "" {
		return append(args, 0)
	}
	at := len(args)
	args = append(args, 0)
	if r.Version == 1 {
		args = append(args, journeyFrom, 1)
	}
	ms := r.LastUpdated.UnixMilli()
	for m := range gateway.Milestones {
		if !w.Step.Reaches(m) {
			continue
		}
		var v any = ms
		if m == gateway.MilestoneEnded {
			v = strconv.FormatInt(ms, 10) + " " + string(w.Step.Status) + " " + w.Step.Reason
		}
		args = append(args, milestoneFields[m], v)
	}
	args[at] = (len(args) - at - 1) / 2
	return args
}
