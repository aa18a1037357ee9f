package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

// A referral Task's hash holds, beside its versions, what they recorded of
// its journey (gateway.Write.Step): journeyFrom, set by its first version,
// says they recorded it from the first; each milestone's field is set by
// the first version to reach it (commit.lua's HSETNX) and holds that
// version's lastUpdated (Unix ms), and for the end the status and reason
// that ended it: "<ms> <status> <reason>". A version that takes a
// milestone back (gateway.TaskStep.Clears: an operator's redrive of a
// failed delivery takes back the failure as the referral's end) deletes
// its field in the same commit, before any is set, so the next version to
// reach it sets it again. At most seven short fields a
// referral; its journey is then read from them and two versions
// (journey.lua), never from every version.
const journeyFrom = "j"

var milestoneFields = [gateway.Milestones]string{
	gateway.MilestoneDelivered: "jd",
	gateway.MilestoneAccepted:  "ja",
	gateway.MilestoneContacted: "jc",
	gateway.MilestoneStarted:   "js",
	gateway.MilestoneEnded:     "je",
	gateway.MilestoneVoid:      "jx",
}

// milestoneArgs are milestoneFields as commit arguments, boxed once: a
// string boxed on each commit would be an allocation of each.
var milestoneArgs = func() (args [gateway.Milestones]any) {
	for m, f := range milestoneFields {
		args[m] = f
	}
	return args
}()

// journeyArgs are journey.lua's ARGV after the window: the field the first
// version sets, then the milestones' fields, counted.
var journeyArgs = append([]any{journeyFrom, len(milestoneArgs)}, milestoneArgs[:]...)

// appendMilestones appends a write's journey fields as commit.lua takes
// them: the first-only fields (a count, then field and value each): for a
// referral Task's version with its step, the milestones it reaches, and
// for its first version journeyFrom; none for any other write (a Task
// written without a step reads as one written before versions recorded
// their milestones). Then the fields it deletes first (a count, then each):
// the milestones its step takes back.
func appendMilestones(args []any, w gateway.Write) []any {
	n := milestonesWritten(w)
	args = append(args, n)
	if n > 0 {
		args = appendReached(args, w)
	}
	cleared := milestonesCleared(w)
	args = append(args, cleared)
	if cleared > 0 {
		for m := range gateway.Milestones {
			if w.Step.Clears(m) {
				args = append(args, milestoneArgs[m])
			}
		}
	}
	return args
}

// appendReached appends the first-only fields of a write with some.
func appendReached(args []any, w gateway.Write) []any {
	r := w.Resource
	if r.Version == 1 {
		args = append(args, journeyFrom, 1)
	}
	var ms any // boxed once, for the milestones reached
	for m := range gateway.Milestones {
		if !w.Step.Reaches(m) {
			continue
		}
		if ms == nil {
			ms = r.LastUpdated.UnixMilli()
		}
		v := ms
		if m == gateway.MilestoneEnded {
			v = strconv.FormatInt(r.LastUpdated.UnixMilli(), 10) + " " + string(w.Step.Status) + " " + w.Step.Reason
		}
		args = append(args, milestoneArgs[m], v)
	}
	return args
}

// milestonesWritten is how many first-only fields appendMilestones writes
// for w (commitSizes sizes the arguments with it).
func milestonesWritten(w gateway.Write) int {
	if w.Resource.Type != gateway.TypeTask || w.Step.Status == "" {
		return 0
	}
	n := 0
	if w.Resource.Version == 1 {
		n++
	}
	for m := range gateway.Milestones {
		if w.Step.Reaches(m) {
			n++
		}
	}
	return n
}

// milestonesCleared is how many milestone fields appendMilestones deletes
// for w.
func milestonesCleared(w gateway.Write) int {
	if w.Resource.Type != gateway.TypeTask {
		return 0
	}
	n := 0
	for m := range gateway.Milestones {
		if w.Step.Clears(m) {
			n++
		}
	}
	return n
}

// JourneyRecords implements gateway.Store with journey.lua, one script per
// Task, pipelined: each Task read consistently, the page in one round
// trip, as the versions of a page were read before (one HGETALL each).
func (s *Store) JourneyRecords(ctx context.Context, ids []string, older gateway.HistoryWindow) ([]gateway.JourneyRecord, error) {
	out := make([]gateway.JourneyRecord, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := append([]any{max(older.Versions, 0), max(older.Bytes, 0)}, journeyArgs...)
	keys, argv := make([][]string, len(ids)), make([][]any, len(ids))
	for i, id := range ids {
		keys[i], argv[i] = []string{s.in(s.partitionOf(id)).resource(gateway.TypeTask, id)}, args
	}
	cmds, err := s.scriptPipelined(ctx, journeyScript, keys, argv)
	if err != nil {
		return nil, err
	}
	for i, cmd := range cmds {
		reply, err := cmd.Slice()
		if err != nil {
			return nil, classify(err)
		}
		if out[i], err = journeyRecord(ids[i], reply); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// journeyRecord reads journey.lua's reply for the Task id.
func journeyRecord(id string, reply []any) (gateway.JourneyRecord, error) {
	var rec gateway.JourneyRecord
	if reply[0].(int64) == 0 {
		return rec, nil
	}
	owner := reply[1].(string)
	values := reply[3 : 3+gateway.Milestones]
	if reply[2].(int64) == 1 {
		rec.Reached = &gateway.Reached{}
		for m, v := range values {
			if v, ok := v.(string); ok {
				if err := parseMilestone(rec.Reached, gateway.Milestone(m), v); err != nil {
					return rec, err
				}
			}
		}
	}
	rest := reply[3+gateway.Milestones:]
	for k := 0; k+2 < len(rest); k += 3 {
		rec.Versions = append(rec.Versions, &gateway.Resource{Type: gateway.TypeTask, ID: id, Version: int(rest[k].(int64)),
			LastUpdated: time.UnixMilli(rest[k+1].(int64)).UTC(), Body: []byte(rest[k+2].(string)), Owner: owner})
	}
	// The first, then newest first: oldest first, as callers read them.
	slices.SortFunc(rec.Versions, func(a, b *gateway.Resource) int { return a.Version - b.Version })
	return rec, nil
}

// parseMilestone reads a milestone's field (appendMilestones) into r.
func parseMilestone(r *gateway.Reached, m gateway.Milestone, v string) error {
	msText, end, _ := strings.Cut(v, " ")
	ms, err := strconv.ParseInt(msText, 10, 64)
	if err != nil {
		return fmt.Errorf("redisstore: a Task's milestone field %s holds no time", milestoneFields[m])
	}
	r.At[m] = time.UnixMilli(ms).UTC()
	if m == gateway.MilestoneEnded {
		status, reason, _ := strings.Cut(end, " ")
		r.End = gateway.TaskStep{Status: gateway.TaskStatus(status), Reason: reason}
	}
	return nil
}
