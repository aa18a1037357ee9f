package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// spreadReferral stores, in a spreading store, a referral in partition
// place for the Patient "pat" of client gp (stored in legacy, as Patients
// are), with its Task's fields in the shared hashes (a subscription
// number, a write-back); it returns the Task's id.
func spreadReferral(t *testing.T, s *Store, rdb redis.UniversalClient, place partition, n string) string {
	t.Helper()
	ctx := context.Background()
	sr, task := idPrefix(place)+"sr-"+n, idPrefix(place)+"task-"+n
	subject := gateway.SubjectTerm("Patient/pat")
	patient := write(gateway.TypePatient, gateway.PatientKey("gp", "pat"), 1, 0, gateway.PatientIDTerm("pat"))
	patient.Resource.Owner = "gp"
	if _, err := s.Read(ctx, gateway.TypePatient, patient.Resource.ID); errors.Is(err, gateway.ErrNotFound) {
		// In legacy, as stored before the store spread: by a store on the
		// same keys that does not spread (a new Patient of a spreading
		// store goes to its place: TestSpreadStorePlacesPatientsByTheirKey).
		before := New(rdb, strings.Trim(s.keys.ns, "{}"))
		if res, err := before.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{patient}}); err != nil || !res.OK() {
			t.Fatalf("patient: %+v %v", res, err)
		}
	}
	srw := write(gateway.TypeServiceRequest, sr, 1, 0, subject)
	taskw := write(gateway.TypeTask, task, 1, 0, subject, gateway.StatusTerm("completed"))
	srw.Resource.Owner, taskw.Resource.Owner = "gp", "gp"
	taskw.Resource.Body = []byte(`{"resourceType":"Task","id":"` + task + `","status":"completed","focus":{"reference":"ServiceRequest/` + sr + `"}}`)
	c := &gateway.Commit{Writes: []gateway.Write{srw, taskw},
		Unique: []gateway.UniqueKey{{Key: gateway.ReferralTaskKey(sr), Value: "Task/" + task}}}
	if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
		t.Fatalf("referral: %+v %v", res, err)
	}
	// What a write-back and a subscriber's notification leave, as they
	// leave it.
	if err := s.SetWriteBackState(ctx, "gp", task, gateway.WriteBackState{}); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, s.keys.subNumbered(), "Task/"+task, "1")
	return task
}

// A spread referral's removal is two steps: the referral (in its
// partition), then its Patient and its Task's fields (in legacy). A crash
// after either step leaves the removal recorded, and the next run
// (FinishRemovals) finishes it; run again, it finds nothing more to do.
// The Patient goes only once no referral in any partition names it, also
// one made between the crash and the next run.
func TestSpreadRemovalFinishesAfterACrash(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		first := spreadReferral(t, s, rdb, 5, "a")
		second := spreadReferral(t, s, rdb, 11, "b")
		patientKey := gateway.PatientKey("gp", "pat")
		crashAfter := func(steps int) {
			s.afterRemovalStep = func() error {
				if steps--; steps == 0 {
					return errors.New("crash")
				}
				return nil
			}
		}
		recorded := func(p partition) int64 { return rdb.HLen(ctx, s.in(p).leftovers()).Val() }
		// fields counts the Task's fields left in shared hashes, those in
		// its partition (its write-back state) and those outside (its
		// last numbered version, under the plain tag).
		fields := func(task string) (inside, outside int) {
			for _, f := range [][2]string{{s.writeBackOf("gp", task), task}, {s.keys.subNumbered(), "Task/" + task}} {
				switch {
				case !rdb.HExists(ctx, f[0], f[1]).Val():
				case s.partitionOfKey(f[0]) == s.partitionOf(task):
					inside++
				default:
					outside++
				}
			}
			return inside, outside
		}

		// The first referral goes; a crash before its legacy step.
		rm, err := s.ReadRemoval(ctx, first)
		if err != nil || rm.leftover == nil || rm.leftover.Patient != patientKey || rm.patientHash != "" {
			t.Fatalf("read: %+v %v (the Patient is named by another referral: not expected to go)", rm, err)
		}
		crashAfter(1)
		if err := s.RemoveReferral(ctx, rm); err == nil {
			t.Fatal("the crash was not reported")
		}
		s.afterRemovalStep = nil
		if _, err := s.Read(ctx, gateway.TypeTask, first); !errors.Is(err, gateway.ErrNotFound) {
			t.Errorf("the referral's step did not remove its Task: %v", err)
		}
		if in, out := fields(first); recorded(5) != 1 || in != 0 || out != 1 {
			t.Fatalf("after the crash: %d recorded, fields %d in its partition and %d outside; want the removal recorded, the one outside still there", recorded(5), in, out)
		}
		if n, err := s.FinishRemovals(ctx); err != nil || n.Finished != 1 || n.SetAside != 0 {
			t.Fatalf("FinishRemovals: %d %v", n, err)
		}
		if in, out := fields(first); recorded(5) != 0 || in+out != 0 {
			t.Errorf("finished: %d recorded, %d fields left", recorded(5), in+out)
		}
		if _, err := s.Read(ctx, gateway.TypePatient, patientKey); err != nil {
			t.Fatalf("the Patient went while a referral in another partition names it: %v", err)
		}

		// The second, its last referral: a crash after its step, then a
		// new referral for the Patient before the next run, which keeps it.
		rm, err = s.ReadRemoval(ctx, second)
		if err != nil || rm.leftover == nil || rm.patientHash == "" {
			t.Fatalf("read: %+v %v (the Patient's last referral)", rm, err)
		}
		crashAfter(1)
		if err := s.RemoveReferral(ctx, rm); err == nil {
			t.Fatal("the crash was not reported")
		}
		s.afterRemovalStep = nil
		third := spreadReferral(t, s, rdb, 2, "c")
		if n, err := s.FinishRemovals(ctx); err != nil || n.Finished != 1 || n.SetAside != 0 {
			t.Fatalf("FinishRemovals: %d %v", n, err)
		}
		if _, err := s.Read(ctx, gateway.TypePatient, patientKey); err != nil {
			t.Fatalf("the Patient went while a referral made after the crash names it: %v", err)
		}
		if in, out := fields(second); recorded(11) != 0 || in+out != 0 {
			t.Errorf("finished: %d recorded, %d fields left", recorded(11), in+out)
		}

		// The third, now its last: a crash after the legacy step (the
		// Patient gone), before the record is deleted.
		rm, err = s.ReadRemoval(ctx, third)
		if err != nil || rm.leftover == nil || rm.patientHash == "" {
			t.Fatalf("read: %+v %v (the Patient's last referral)", rm, err)
		}
		crashAfter(2)
		if err := s.RemoveReferral(ctx, rm); err == nil {
			t.Fatal("the crash was not reported")
		}
		s.afterRemovalStep = nil
		if _, err := s.Read(ctx, gateway.TypePatient, patientKey); !errors.Is(err, gateway.ErrNotFound) {
			t.Errorf("the Patient is still there after its last referral's legacy step: %v", err)
		}
		if recorded(2) != 1 {
			t.Fatalf("the record went before its last step")
		}
		for range 2 { // again, and again: nothing more
			if n, err := s.FinishRemovals(ctx); err != nil || n.Finished > 1 || n.SetAside != 0 {
				t.Fatalf("FinishRemovals: %d %v", n, err)
			}
		}
		if in, out := fields(third); recorded(2) != 0 || in+out != 0 {
			t.Errorf("finished: %d recorded, %d fields left", recorded(2), in+out)
		}
		if n := existing(rdb, s.keys.term(gateway.TypePatient, gateway.PatientIDTerm("pat")), s.keys.all(gateway.TypePatient)); n != 0 {
			t.Errorf("the Patient's index entries stayed (%d sets)", n)
		}
	})
}

// A leftover's record that can never be finished (one that cannot be
// decoded, one whose step Redis refuses whatever the state) is set aside,
// as recorded, where an operator can look at it, and the others are
// finished: before, the first such record stopped FinishRemovals, and so
// every retention run after it. An outage still stops the call and
// leaves the record for the next.
func TestSpreadLeftoverThatCannotBeFinishedIsSetAside(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		// Two removals a crash left half done, each recorded in its
		// referral's partition.
		for _, r := range []struct {
			p partition
			n string
		}{{5, "a"}, {11, "b"}} {
			rm, err := s.ReadRemoval(ctx, spreadReferral(t, s, rdb, r.p, r.n))
			if err != nil || rm.leftover == nil {
				t.Fatalf("read: %+v %v", rm, err)
			}
			s.afterRemovalStep = func() error { return errors.New("crash") }
			if err := s.RemoveReferral(ctx, rm); err == nil {
				t.Fatal("the crash was not reported")
			}
			s.afterRemovalStep = nil
		}
		recorded := func(p partition) int64 { return rdb.HLen(ctx, s.in(p).leftovers()).Val() }
		// An outage stops the call: nothing is set aside for it.
		s.afterRemovalStep = func() error { return fmt.Errorf("%w: lost", gateway.ErrUnavailable) }
		if _, err := s.FinishRemovals(ctx); !errors.Is(err, gateway.ErrUnavailable) {
			t.Fatalf("FinishRemovals during an outage: %v", err)
		}
		s.afterRemovalStep = nil
		for _, p := range []partition{5, 11} {
			if aside := rdb.HLen(ctx, s.in(p).leftoversAside()).Val(); aside != 0 || recorded(p) != 1 {
				t.Errorf("partition %d after an outage: %d set aside, %d recorded; want it recorded, for the next run", p, aside, recorded(p))
			}
		}
		// One record that is not one, and one naming a Patient whose hash
		// is another type of key: Redis refuses its step every time.
		undecodable := "{not a leftover"
		rdb.HSet(ctx, s.in(3).leftovers(), "p03-task-bad", undecodable)
		broken := gateway.PatientKey("gp", "broken")
		rdb.Set(ctx, s.in(s.partitionOf(broken)).resource(gateway.TypePatient, broken), "not a hash", 0)
		refused := string(leftover{Task: "p07-task-refused", Owner: "gp", Patient: broken}.encode())
		rdb.HSet(ctx, s.in(7).leftovers(), "p07-task-refused", refused)

		got, err := s.FinishRemovals(ctx)
		if err != nil || got.Finished != 2 || got.SetAside != 2 {
			t.Fatalf("FinishRemovals = %+v, %v; want the two removals finished and the two records set aside", got, err)
		}
		for _, p := range []partition{3, 5, 7, 11} {
			if n := recorded(p); n != 0 {
				t.Errorf("partition %d still records %d leftovers", p, n)
			}
		}
		for p, want := range map[partition][2]string{3: {"p03-task-bad", undecodable}, 7: {"p07-task-refused", refused}} {
			if v := rdb.HGet(ctx, s.in(p).leftoversAside(), want[0]).Val(); v != want[1] {
				t.Errorf("partition %d set aside %q, want the record as it was (%q)", p, v, want[1])
			}
		}
		if got, err := s.FinishRemovals(ctx); err != nil || got != (RemovalsFinished{}) {
			t.Errorf("FinishRemovals again = %+v, %v; want nothing to do", got, err)
		}
	})
}

// A spreading store's QueuedTasks sees the jobs of every partition: on a
// stream (unread or pending), put off, or a dead letter.
func TestQueuedTasksSeesEveryPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		qs := spreadingDeliveries(ctx, t, s)
		task := func(p partition, n string) string { return idPrefix(p) + "task-" + n }
		if _, err := s.queueIn(legacy, gateway.QueueNotify).Add(ctx, map[string]string{"task": "Task/legacy-task"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.queueIn(3, gateway.QueueDelivery).Add(ctx, map[string]string{"task": task(3, "waiting")}); err != nil {
			t.Fatal(err)
		}
		// Read (pending), then put off, then buried, each in its partition.
		for _, p := range []partition{7, 9, 12} {
			if _, err := s.queueIn(p, gateway.QueueDelivery).Add(ctx, map[string]string{"task": task(p, "read")}); err != nil {
				t.Fatal(err)
			}
		}
		var read []gateway.QueuedJob
		for len(read) < 4 {
			jobs, err := qs.Read(ctx, "w1", 10, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			read = append(read, jobs...)
		}
		for _, j := range read {
			switch j.Place {
			case idPrefix(9):
				if err := qs.Later(ctx, j, j.Fields, time.Now().Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			case idPrefix(12):
				if err := qs.Bury(ctx, j, "gone"); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := s.QueuedTasks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"legacy-task", task(3, "waiting"), task(7, "read"), task(9, "read"), task(12, "read")} {
			if !got[want] {
				t.Errorf("QueuedTasks does not name %s: %v", want, got)
			}
		}
	})
}

// Kept journeys are filed in their referral's partition and read from
// every partition, month by month and each month's by Task id, whatever
// partition holds them.
func TestKeptJourneysAreReadFromEveryPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		may, june := time.Date(2026, 5, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
		for _, j := range []struct {
			p    partition
			n    string
			sent time.Time
		}{{14, "b", may}, {legacy, "c", may}, {2, "z", may}, {2, "a", june}, {9, "a", may}} {
			task := spreadReferral(t, s, rdb, j.p, j.n)
			rm, err := s.ReadRemoval(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			rm.Keep = &gateway.KeptJourney{TaskID: task, Sent: j.sent, Summary: []byte(task)}
			if err := s.RemoveReferral(ctx, rm); err != nil {
				t.Fatal(err)
			}
			if !rdb.HExists(ctx, s.in(j.p).keptJourneys(journeyMonth(j.sent)), task).Val() {
				t.Errorf("%s's journey is not kept in its partition", task)
			}
		}
		got, err := s.KeptJourneys(ctx, may, june.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, b := range got {
			order = append(order, string(b))
		}
		want := []string{"p02-task-z", "p09-task-a", "p14-task-b", "task-c", "p02-task-a"} // May's by Task id, then June's
		if !slices.Equal(order, want) {
			t.Errorf("kept journeys %v, want %v", order, want)
		}
	})
}

// A leftover is set aside only for what Redis refuses on what the record
// names, each time: real refusals from a real Redis. Too few replicas to
// write (a cluster or a primary with min-replicas-to-write, while its
// replica is away) is an outage like any other: the record waits for the
// next run, and a request meeting it is answered 503.
func TestOnlyARefusalOfTheRecordSetsALeftoverAside(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	if err := rdb.Set(ctx, "a-string", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wrongType := rdb.HSet(ctx, "a-string", "f", "v").Err()
	scriptFailed := rdb.Eval(ctx, "return redis.call('HSET', KEYS[1], 'f', 'v')", []string{"a-string"}).Err()
	if err := rdb.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	noReplicas := rdb.Set(ctx, "another", "x", 0).Err()
	for _, c := range []struct {
		name        string
		err         error
		setAside    bool
		unavailable bool
	}{
		{"WRONGTYPE", wrongType, true, false},
		{"a script's error", scriptFailed, true, false},
		{"NOREPLICAS", noReplicas, false, true},
	} {
		if c.err == nil {
			t.Fatalf("%s: Redis refused nothing", c.name)
		}
		if got := unmendable(classify(c.err)); got != c.setAside {
			t.Errorf("%s (%v): set aside %v, want %v", c.name, c.err, got, c.setAside)
		}
		if got := errors.Is(classify(c.err), gateway.ErrUnavailable); got != c.unavailable {
			t.Errorf("%s (%v): unavailable %v, want %v", c.name, c.err, got, c.unavailable)
		}
	}
}

// A pipeline of reads reports only its first command's error: a miss
// there hides a later command's failure. readsFailed asks each.
func TestReadsFailedSeesPastAMiss(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	if err := rdb.HSet(ctx, "a-hash", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	var cmds []*redis.StringCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmds = append(cmds, p.Get(ctx, "missing"), p.Get(ctx, "a-hash"))
		return nil
	})
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("the pipeline reported %v, not its first command's miss", err)
	}
	if err := readsFailed(err, cmds); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("readsFailed = %v, want the second read's WRONGTYPE", err)
	}
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmds = []*redis.StringCmd{p.Get(ctx, "missing"), p.HGet(ctx, "a-hash", "f")}
		return nil
	})
	if err := readsFailed(err, cmds); err != nil {
		t.Errorf("a miss and a hit: readsFailed = %v, want none", err)
	}
}
