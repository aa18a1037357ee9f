package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// redisSent is how many bytes Redis has sent its clients.
func redisSent(t *testing.T, s *Store) int64 {
	t.Helper()
	info := s.rdb.Info(context.Background(), "stats").Val()
	for _, line := range strings.Split(info, "\r\n") {
		if n, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			v, _ := strconv.ParseInt(n, 10, 64)
			return v
		}
	}
	t.Fatal("INFO stats has no total_net_output_bytes")
	return 0
}

// A referral Task's journey record is read in what Signpost bounds, however
// many versions the Task has: of a Task whose 120 versions carry 10 KiB
// notes, Redis sends the milestones and two versions, not 120, and the
// milestones are those its every version gives (the first to reach each,
// the status and reason that ended it). A Task written before versions
// recorded milestones is read from its first version and a window of its
// newest; one not held is an empty record.
func TestJourneyRecordsReadTwoVersionsOfAnyTask(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run("spread="+strconv.FormatBool(spread), func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if spread {
				s.SpreadReferrals()
			}
			ctx := context.Background()
			note := strings.Repeat("x", 10<<10)
			steps := map[int]gateway.TaskStep{ // the rest are notes: the status as it was
				1: {Status: gateway.TaskRequested}, 2: {Status: gateway.TaskRequested, Business: gateway.BusinessDelivered},
				7: {Status: gateway.TaskAccepted}, 30: {Status: gateway.TaskAccepted, Business: gateway.BusinessContacted},
				55: {Status: gateway.TaskInProgress}, 70: {Status: gateway.TaskOnHold, Reason: "poorly"},
				90: {Status: gateway.TaskInProgress}, 119: {Status: gateway.TaskRejected, Reason: "no-capacity"},
			}
			task, older := s.Place("journey")+"t1", s.Place("journey")+"t0"
			var size int
			var step gateway.TaskStep
			for v := 1; v <= 120; v++ {
				if st, ok := steps[v]; ok {
					step = st
				}
				for _, id := range []string{task, older} {
					w := write("Task", id, v, v-1, "status="+string(step.Status))
					w.Resource.Body = []byte(`{"resourceType":"Task","id":"` + id + `","status":"` + string(step.Status) + `",` +
						`"businessStatus":{"coding":[{"code":"` + step.Business + `"}]},"statusReason":{"coding":[{"code":"` + step.Reason + `"}]},` +
						`"note":[{"text":"` + strconv.Itoa(v) + note + `"}]}`)
					w.Resource.Owner = "gp"
					if id == task {
						w.Step = step
					}
					if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
						t.Fatal(v, res, err)
					}
					size = max(size, len(w.Resource.Body))
				}
			}
			hs, err := s.Histories(ctx, "Task", []string{task})
			if err != nil || len(hs[0]) != 120 {
				t.Fatalf("the Task's versions: %d, %v", len(hs[0]), err)
			}
			var want gateway.Reached
			for _, v := range hs[0] {
				st, ok := gateway.ReadTaskStep(v.Body)
				if !ok {
					t.Fatalf("version %d does not read", v.Version)
				}
				want.Add(st, v.LastUpdated)
			}
			if want.At[gateway.MilestoneEnded].IsZero() || want.At[gateway.MilestoneContacted] != hs[0][29].LastUpdated {
				t.Fatalf("the versions' journey %+v is not the one written: the test proves nothing", want)
			}

			before := redisSent(t, s)
			recs, err := s.JourneyRecords(ctx, []string{task, older, "none"}, gateway.HistoryWindow{Versions: 50, Bytes: 5*size + size/2})
			moved := redisSent(t, s) - before
			if err != nil || len(recs) != 3 {
				t.Fatalf("%d records, %v", len(recs), err)
			}
			if r := recs[0]; r.Reached == nil || *r.Reached != want || len(r.Versions) != 2 || r.Versions[0].Version != 1 || r.Versions[1].Version != 120 ||
				r.Versions[1].Owner != "gp" || r.Versions[1].LastUpdated != hs[0][119].LastUpdated || string(r.Versions[1].Body) != string(hs[0][119].Body) {
				t.Errorf("the Task's record: reached %+v (want %+v), %d versions", r.Reached, want, len(r.Versions))
			}
			// Written before milestones were recorded: the first version and
			// the newest five the window's bytes hold, oldest first.
			if r := recs[1]; r.Reached != nil || len(r.Versions) != 6 || r.Versions[0].Version != 1 || r.Versions[1].Version != 116 || r.Versions[5].Version != 120 {
				var vs []int
				for _, v := range r.Versions {
					vs = append(vs, v.Version)
				}
				t.Errorf("the older Task's record: reached %+v, versions %v; want versions 1 and 116 to 120", r.Reached, vs)
			}
			if r := recs[2]; r.Reached != nil || r.Versions != nil {
				t.Errorf("a Task not held: %+v", r)
			}
			// Two versions and six, a few numbers each, the milestones, and
			// the first INFO's own reply (counted after it was read).
			if limit := int64(8*(size+64) + 4096); moved > limit {
				t.Errorf("Redis sent %d bytes for the records (at most %d: 8 versions of %d bytes)", moved, limit, size)
			}
		})
	}
}
