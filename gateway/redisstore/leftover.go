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
//   - its Patient is in another partition (legacy: Patients are not spread),
//     and may be named by referrals in any partition, so whether it goes is
//     known only by looking at every partition once the referral is gone;
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
// step (a few milliseconds) finds its Patient gone. It ends when Patients
// are placed by their key and referrals beside their subject
// (deploy/README.md, "What remains to build").

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

func decodeLeftover(b []byte) (leftover, error) {
	var lo leftover
	err := json.Unmarshal(b, &lo)
	if err == nil && lo.Task == "" {
		err = errors.New("redisstore: a removal's leftover names no Task")
	}
	return lo, err
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
// ServiceRequests and Tasks name it (their subject sets) in each partition.
type patientRead struct {
	resource removedResource
	place    partition
	hash     *redis.SliceCmd
	parts    []partition
	named    []*redis.IntCmd // by parts: the ServiceRequests', then the Tasks'
	sets     []string        // the subject sets of its own partition
}

// readPatient queues in p the reads of the Patient under store key key.
func (s *Store) readPatient(ctx context.Context, p redis.Pipeliner, key string) *patientRead {
	r := &patientRead{place: s.partitionOf(key), parts: s.partitionsInUse()}
	k := s.in(r.place)
	r.resource = k.removed(gateway.TypePatient, key)
	r.hash = p.HMGet(ctx, r.resource.hash, "v", "x")
	id := key
	if i := strings.LastIndexByte(key, '|'); i >= 0 {
		id = key[i+1:]
	}
	ref := gateway.TypePatient + "/" + id
	for _, part := range r.parts {
		for _, typ := range []string{gateway.TypeServiceRequest, gateway.TypeTask} {
			set := s.in(part).term(typ, gateway.SubjectTerm(ref))
			r.named = append(r.named, p.ZCard(ctx, set))
			if part == r.place {
				r.sets = append(r.sets, set)
			}
		}
	}
	return r
}

// held reports whether the Patient is stored, and fills in its version
// and index entries.
func (r *patientRead) held() bool {
	got := readVersions([]removedResource{r.resource}, []*redis.SliceCmd{r.hash})
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
		// Expected to go with it when only this referral names it.
		if outside, inside := patient.namedOutside(rm.place); outside == 0 && inside <= 1 {
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
// The Patient goes only if no ServiceRequest or Task in any partition
// names it; its step checks, in the same script, that its own partition's
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
			if outside, inside := patient.namedOutside(patient.place); patient.held() && outside == 0 && inside == 0 {
				st := at(patient.place)
				st.resources = append(st.resources, patient.resource)
				for _, set := range patient.sets {
					st.sets = append(st.sets, setCount{key: set, card: 0})
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

// FinishRemovals finishes the removals a crash (or an outage) left half
// done: every leftover recorded in any partition (finishRemoval). It
// returns how many it finished; one whose Patient keeps changing stays
// recorded for the next call. A store that does not spread records none.
func (s *Store) FinishRemovals(ctx context.Context) (int, error) {
	if !s.spread {
		return 0, nil
	}
	done := 0
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
				if err != nil {
					return done, err
				}
				switch err := s.finishRemoval(ctx, p, lo); {
				case errors.Is(err, ErrKeptChanging):
				case err != nil:
					return done, err
				default:
					done++
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return done, nil
}
