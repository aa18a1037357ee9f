package redisstore

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
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
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{patient}}); err != nil || !res.OK() {
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
	for _, f := range s.taskFields(task, "gp") {
		rdb.HSet(ctx, f[0], f[1], "1")
	}
	return task
}

// A spread referral's removal is two steps: the referral (in its
// partition), then its Patient and its Task's fields (in legacy). A crash
// after either step leaves the removal recorded, and the next run
// (FinishRemovals) finishes it; run again, it finds nothing more to do.
// The Patient goes only once no referral in any partition names it.
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
		fields := func(task string) int {
			n := 0
			for _, f := range s.taskFields(task, "gp") {
				if rdb.HExists(ctx, f[0], f[1]).Val() {
					n++
				}
			}
			return n
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
		if recorded(5) != 1 || fields(first) != 2 {
			t.Fatalf("after the crash: %d recorded, %d fields; want the removal recorded, the fields still there", recorded(5), fields(first))
		}
		if n, err := s.FinishRemovals(ctx); err != nil || n != 1 {
			t.Fatalf("FinishRemovals: %d %v", n, err)
		}
		if recorded(5) != 0 || fields(first) != 0 {
			t.Errorf("finished: %d recorded, %d fields left", recorded(5), fields(first))
		}
		if _, err := s.Read(ctx, gateway.TypePatient, patientKey); err != nil {
			t.Fatalf("the Patient went while a referral in another partition names it: %v", err)
		}

		// The second, its last referral: a crash after the legacy step
		// (the Patient gone), before the record is deleted.
		rm, err = s.ReadRemoval(ctx, second)
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
		if recorded(11) != 1 {
			t.Fatalf("the record went before its last step")
		}
		for range 2 { // again, and again: nothing more
			if n, err := s.FinishRemovals(ctx); err != nil || n > 1 {
				t.Fatalf("FinishRemovals: %d %v", n, err)
			}
		}
		if recorded(11) != 0 || fields(second) != 0 {
			t.Errorf("finished: %d recorded, %d fields left", recorded(11), fields(second))
		}
		if n := existing(rdb, s.keys.term(gateway.TypePatient, gateway.PatientIDTerm("pat")), s.keys.all(gateway.TypePatient)); n != 0 {
			t.Errorf("the Patient's index entries stayed (%d sets)", n)
		}
	})
}
