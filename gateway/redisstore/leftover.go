package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// A referral's removal on a store that spreads referrals takes more than
// one script: its own keys are all in its partition and go in one step
// (remove.lua, as on a store that does not spread), but
//
//   - its Patient may be in another partition (placed by its key, beside
//     the referrals naming it by reference, but one stored before the
//     store spread is in legacy, and a referral placed by something else
//     its change updated may be elsewhere), and may be named by referrals
//     in any partition, so whether it goes is known only by looking at
//     every partition once the referral is gone;
//   - the Task's fields in shared hashes (taskFields) are in the partition
//     their hashes are in, not necessarily the referral's.
//
// What is left is the removal's leftover. The referral's step records it
// (in the hash leftovers of the referral's partition, in the same script,
// so the referral never goes without it), then a step in each other
// partition concerned removes its part, and the referral's partition's
// step deletes the record last. A crash between steps leaves the record;
// FinishRemovals (at the start of every retention run) takes every
// recorded leftover and runs its steps again. Each step is idempotent: it
// reads what is there now, removes what is still there, and a Patient
// named meanwhile stays.
//
// What weakens against one script: the referral's partition's step cannot
// see the other partitions, so a referral for the same Patient made in
// another partition between the read of every partition and the Patient's
// step (a few milliseconds) finds its Patient gone. Since Patients are
// placed by their key and new referrals naming one beside it, only such a
// referral placed elsewhere (beside something else its change updated)
// can.

// leftover is what of a removed referral goes after it, as recorded: the
// Task (its fields in shared hashes are named by its id and owner) and the
// Patient the referral named, if one was held. Its JSON is the record's
// codec.
type leftover struct {
	Task    string `json:"task"`              // the Task's id
	Owner   string `json:"owner"`             // the Task's owner
	Patient string `json:"patient,omitempty"` // the Patient's store key (gateway.PatientKey)
}

func (lo leftover) encode() []byte {
	b, _ := json.Marshal(lo)
	return b
}

// errUndecodable is a leftover's record that is not one: no run can
// finish it (FinishRemovals sets it aside).
var errUndecodable = errors.New("redisstore: a removal's leftover record cannot be decoded")

func decodeLeftover(b []byte) (leftover, error) {
	var lo leftover
	if err := json.Unmarshal(b, &lo); err != nil || lo.Task == "" {
		// The record's text is not quoted: it names a Patient.
		return lo, errUndecodable
	}
	return lo, nil
}

// partitionOfKey is the partition a key built by keys is in (by its hash
// tag), or legacy.
func (s *Store) partitionOfKey(key string) partition {
	tag := clusterHashed(key)
	for _, p := range s.partitionsInUse() {
		if clusterHashed(s.in(p).ns) == tag {
			return p
		}
	}
	return legacy
}

// patientRead is a Patient as a leftover's step reads it: its hash's
// version and index entries, in its own partition, and how many
// ServiceRequests and Tasks name it (their subject sets) and how many
// Consents (their patient sets) in each partition.
type patientRead struct {
	resource removedResource
	place    partition
	hash     *redis.SliceCmd
	// old is its hash in legacy, read too for a Patient that may have been
	// stored there before the store spread (mayBeInLegacy): held() takes
	// it when its place holds none.
	old   *redis.SliceCmd
	oldIn removedResource // its hash in legacy
	parts []partition
	named []*redis.IntCmd // by parts: the ServiceRequests', then the Tasks'
	// consents are by parts too: the Consents naming it.
	consents []*redis.IntCmd
	sets     []string // the subject and Consent sets of its own partition
	oldSets  []string // legacy's
}

// readPatient queues in p the reads of the Patient under store key key.
func (s *Store) readPatient(ctx context.Context, p redis.Pipeliner, key string) *patientRead {
	r := &patientRead{place: s.partitionOf(key), parts: s.partitionsInUse()}
	k := s.in(r.place)
	r.resource = k.removed(gateway.TypePatient, key)
	r.hash = p.HMGet(ctx, r.resource.hash, "v", "x")
	if s.mayBeInLegacy(key) {
		r.oldIn = s.keys.removed(gateway.TypePatient, key)
		r.old = p.HMGet(ctx, r.oldIn.hash, "v", "x")
	}
	id := key
	if i := strings.LastIndexByte(key, '|'); i >= 0 {
		id = key[i+1:]
	}
	ref := gateway.TypePatient + "/" + id
	for _, part := range r.parts {
		subjects, consents := s.in(part).patientNamers(ref)
		for _, set := range subjects {
			r.named = append(r.named, p.ZCard(ctx, set))
		}
		r.consents = append(r.consents, p.ZCard(ctx, consents))
		sets := append(subjects, consents)
		if part == r.place {
			r.sets = append(r.sets, sets...)
		}
		if part == legacy {
			r.oldSets = append(r.oldSets, sets...)
		}
	}
	return r
}

// consented is how many Consents name the Patient, in every partition.
// Retention keeps Consents, so one keeps the Patient too (see
// readLastReferralsPatient); those filed under the referral being removed
// go in its own step, before the Patient's.
func (r *patientRead) consented() int64 {
	var n int64
	for _, c := range r.consents {
		n += c.Val()
	}
	return n
}

// held reports whether the Patient is stored, and fills in its version
// and index entries, and its partition: legacy when it is there and not
// in its place.
func (r *patientRead) held() bool {
	got := readVersions([]removedResource{r.resource}, []*redis.SliceCmd{r.hash})
	if len(got) == 0 && r.old != nil {
		if got = readVersions([]removedResource{r.oldIn}, []*redis.SliceCmd{r.old}); len(got) > 0 {
			r.place, r.sets = legacy, r.oldSets
		}
	}
	if len(got) == 0 {
		return false
	}
	r.resource = got[0]
	return true
}

// namedOutside is how many ServiceRequests and Tasks name the Patient
// outside partition place, and inside it the most of either.
func (r *patientRead) namedOutside(place partition) (outside, inside int64) {
	for i, c := range r.named {
		if r.parts[i/2] == place {
			inside = max(inside, c.Val())
		} else {
			outside += c.Val()
		}
	}
	return outside, inside
}

// readLeftover fills in, for a store that spreads referrals, what of the
// referral goes after it: its Task's fields outside its partition (those
// inside go in its step), and its Patient when held. Nothing is recorded
// when neither may be there (the fields are not read: one may be written
// between the read and the removal).
func (s *Store) readLeftover(ctx context.Context, rm *Removal) error {
	lo := &leftover{Task: rm.Task.ID, Owner: rm.Task.Owner}
	record := false
	for _, f := range s.taskFields(rm.Task.ID, rm.Task.Owner) {
		if s.partitionOfKey(f[0]) == rm.place {
			rm.fields = append(rm.fields, f)
		} else {
			record = true
		}
	}
	patientID := rm.patientID(s.in(rm.place))
	if patientID == "" {
		if record {
			rm.leftover = lo
		}
		return nil
	}
	var patient *patientRead
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		patient = s.readPatient(ctx, p, gateway.PatientKey(rm.ServiceRequest.Owner, patientID))
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return classify(err)
	}
	if patient.held() {
		record = true
		lo.Patient = patient.resource.id
		// Expected to go with it when only this referral (and the
		// Consents filed under it) name it.
		_, consents := s.in(rm.place).patientNamers(gateway.TypePatient + "/" + patientID)
		if outside, inside := patient.namedOutside(rm.place); outside == 0 && inside <= 1 && patient.consented() <= rm.consentsIn(consents) {
			rm.patientHash = patient.resource.hash
		}
	}
	if record {
		rm.leftover = lo
	}
	return nil
}

// finishRemoval removes the leftover of a referral removed from partition
// place, in one step per partition it touches (remove.lua: each removes
// what is still there, as read just before), the record in place last.
// The Patient goes only if no ServiceRequest, Task or Consent in any
// partition names it; its step checks, in the same script, that its own partition's
// still do not and that it is unchanged. A step refused because something
// changed is read and run again, up to maxRereads times (ErrKeptChanging:
// the record stays, for the next run).
func (s *Store) finishRemoval(ctx context.Context, place partition, lo leftover) error {
	for range maxRereads {
		steps := map[partition]*Removal{}
		at := func(p partition) *Removal {
			if steps[p] == nil {
				steps[p] = &Removal{place: p}
			}
			return steps[p]
		}
		if lo.Patient != "" {
			var patient *patientRead
			if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				patient = s.readPatient(ctx, p, lo.Patient)
				return nil
			}); err != nil && !errors.Is(err, redis.Nil) {
				return classify(err)
			}
			if patient.held() {
				// held() first: it finds the partition it is in.
				if outside, inside := patient.namedOutside(patient.place); outside == 0 && inside == 0 && patient.consented() == 0 {
					st := at(patient.place)
					st.resources = append(st.resources, patient.resource)
					for _, set := range patient.sets {
						st.sets = append(st.sets, setCount{key: set, card: 0})
					}
				}
			}
		}
		for _, f := range s.taskFields(lo.Task, lo.Owner) {
			if p := s.partitionOfKey(f[0]); p != place {
				at(p).fields = append(at(p).fields, f)
			}
		}
		last := at(place)
		last.fields = append(last.fields, [2]string{s.in(place).leftovers(), lo.Task})
		order := make([]partition, 0, len(steps))
		for p := range steps {
			if p != place {
				order = append(order, p)
			}
		}
		slices.Sort(order)
		changed := false
		for _, p := range append(order, place) {
			_, err := s.runRemoval(ctx, steps[p], nil)
			if errors.Is(err, ErrRemovalChanged) {
				changed = true
				break
			}
			if err != nil {
				return err
			}
			if err := s.step(); err != nil {
				return err
			}
		}
		if !changed {
			return nil
		}
		s.raced()
	}
	return ErrKeptChanging
}

// leftoversScan is how many recorded leftovers one HSCAN step asks for.
const leftoversScan = 100

// RemovalsFinished is what FinishRemovals did.
type RemovalsFinished struct {
	// Finished counts the leftovers removed (their records deleted).
	Finished int
	// SetAside counts the records that cannot be finished, moved to their
	// partition's leftoversAside for an operator (setAside).
	SetAside int
}

// FinishRemovals finishes the removals a crash (or an outage) left half
// done: every leftover recorded in any partition (finishRemoval). One
// whose Patient keeps changing stays recorded for the next call. One
// that cannot be finished, however often it is tried (a record it cannot
// decode, a step Redis refuses for good: unmendable), is set aside and
// the others are finished: otherwise that one record would stop every
// retention run from then on. An outage (gateway.ErrUnavailable, the
// context) stops the call: nothing is set aside for it, and the next run
// takes the records again. A store that does not spread records none.
func (s *Store) FinishRemovals(ctx context.Context) (RemovalsFinished, error) {
	var done RemovalsFinished
	if !s.spread {
		return done, nil
	}
	seen := map[string]bool{} // HSCAN may return a field twice
	for _, p := range s.partitionsInUse() {
		key := s.in(p).leftovers()
		var cursor uint64
		for {
			kv, next, err := s.rdb.HScan(ctx, key, cursor, "", leftoversScan).Result()
			if err != nil {
				return done, classify(err)
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if seen[key+" "+kv[i]] {
					continue
				}
				seen[key+" "+kv[i]] = true
				lo, err := decodeLeftover([]byte(kv[i+1]))
				if err == nil {
					err = s.finishRemoval(ctx, p, lo)
				}
				switch {
				case err == nil:
					done.Finished++
				case errors.Is(err, ErrKeptChanging):
				case errors.Is(err, errUndecodable) || unmendable(err):
					if err := s.setAside(ctx, p, kv[i], kv[i+1]); err != nil {
						return done, err
					}
					done.SetAside++
				default:
					return done, err
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return done, nil
}

// unmendable reports a leftover's step that Redis itself refused for
// what the record names: a key of another type where it names a hash
// (WRONGTYPE), or a command or script that failed on it (ERR). The same
// record would be refused again on every run. Anything else (an outage, a
// full store, a failover, too few replicas, a refusal this does not know)
// passes, and the record is tried again next run: setting one aside that
// would have finished costs an operator's time, while trying one again
// costs a step.
func unmendable(err error) bool {
	var refused redis.Error
	if !errors.As(err, &refused) || errors.Is(err, gateway.ErrUnavailable) || errors.Is(err, gateway.ErrStoreFull) {
		return false
	}
	msg := refused.Error()
	return strings.HasPrefix(msg, "WRONGTYPE ") || strings.HasPrefix(msg, "ERR ")
}

// setAside moves the record of Task task's leftover, as read (value),
// from partition p's leftovers to its leftoversAside, in one MULTI (both
// keys are in p's slot). The record names a Patient: it is kept, never
// logged.
func (s *Store) setAside(ctx context.Context, p partition, task, value string) error {
	k := s.in(p)
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, k.leftoversAside(), task, value)
		pipe.HDel(ctx, k.leftovers(), task)
		return nil
	})
	return classify(err)
}
