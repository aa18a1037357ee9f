package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// Retention: removing a closed referral whole (remove.lua), finding which
// Tasks the job queues still name, and trimming the audit stream by age.

// MaxRemovedProvenances bounds the Provenances one referral's removal
// takes: one is written per Task change, so a referral is far below it.
// One above it is not removed (Removal.TooLarge), so that a removal's
// script stays bounded: at most 2 + gateway.MaxSupporting +
// MaxRemovedProvenances resources, each with its index entries (a few to
// some tens), and a handful of unique keys.
const MaxRemovedProvenances = 500

// Removal is what removing one referral touches, as read: the script
// removes it only if all of it is still as read.
type Removal struct {
	Task           *gateway.Resource
	ServiceRequest *gateway.Resource // nil: the Task's ServiceRequest is gone already
	// TooLarge: the referral holds more supporting resources than one
	// removal takes (only a referral stored before they were capped).
	TooLarge bool
	// Step: the referral holds more Provenances or filed keys than one
	// removal takes, so this removes a bounded share of them only (while
	// the Task is still the version read); RemoveReferral then reads the
	// referral again, until what is left goes in one removal.
	Step bool
	// Keep, when set, is kept as the referral goes, in the same step.
	Keep *gateway.KeptJourney

	place     partition // the referral's: its Task's (and so all of its resources')
	resources []removedResource
	sets      []setCount
	uniques   []string
	fields    [][2]string
	guards    [][2]string // a step's: resource hash, the version it must still be at
	members   [][2]string // a step's filed keys: the set filing it, the key
	// leftover is what goes after the referral, in steps of their own
	// (a store that spreads referrals); nil: nothing.
	leftover *leftover
	// patientHash is the leftover's Patient's hash when this referral
	// alone names it as read, so it is expected to go too (what Keys
	// counts); "": none.
	patientHash string
}

type removedResource struct {
	typ, id string
	hash    string // its hash's key, in its partition
	all     string // its type's all-ids set, in the same partition
	version string
	terms   []string
}

type setCount struct {
	key  string
	card int64
}

// Resources is how many resources the removal takes (every version of each).
func (r *Removal) Resources() int { return len(r.resources) }

// Keys are the keys the removal deletes whole (resources and unique keys,
// in the referral's partition, and the Patient going after it), for
// measuring the memory it frees.
func (r *Removal) Keys() []string {
	out := make([]string, 0, len(r.resources)+len(r.uniques)+1)
	for _, x := range r.resources {
		out = append(out, x.hash)
	}
	if r.patientHash != "" {
		out = append(out, r.patientHash)
	}
	return append(out, r.uniques...)
}

// Outcomes of RemoveReferral.
var (
	// ErrRemovalChanged: the referral changed between the read and the
	// removal; nothing was removed, and a later run looks at it again.
	ErrRemovalChanged = errors.New("redisstore: the referral changed since it was read; not removed")
)

// ReadRemoval reads what removing the referral of Task taskID would touch.
// It returns gateway.ErrNotFound when the Task is not held.
//
// The Patient goes too when no other referral names it
// (readLastReferralsPatient), and so do the keys filed under the referral
// (readClaimedKeys). Keys claimed before they were filed (by an earlier
// version of Signpost) stay: a short string each.
//
// Every key of the referral is in its partition, the one its Task's id
// names: the Task is made beside its ServiceRequest (gateway.Core.NewIDBeside),
// and so are its Provenances, supporting resources and the unique keys its
// commits claimed. On a store that spreads referrals, what may lie
// elsewhere (the Patient, which other partitions' referrals may name too,
// and the Task's fields in shared hashes outside the partition) goes
// after it in steps of their own (leftover).
func (s *Store) ReadRemoval(ctx context.Context, taskID string) (*Removal, error) {
	task, err := s.Read(ctx, gateway.TypeTask, taskID)
	if err != nil {
		return nil, err
	}
	rm := &Removal{Task: task, place: s.partitionOf(task.ID)}
	k := s.in(rm.place)
	var t struct {
		Focus struct {
			Reference string `json:"reference"`
		} `json:"focus"`
	}
	if err := json.Unmarshal(task.Body, &t); err != nil {
		return nil, err
	}
	srID, _ := strings.CutPrefix(t.Focus.Reference, gateway.TypeServiceRequest+"/")
	if srID != "" {
		sr, err := s.Read(ctx, gateway.TypeServiceRequest, srID)
		switch {
		case err == nil:
			rm.ServiceRequest = sr
		case !errors.Is(err, gateway.ErrNotFound):
			return nil, err
		}
	}
	taskRef := task.Ref()
	srRef := gateway.TypeServiceRequest + "/" + srID

	// The members: Provenances of the Task (and of the ServiceRequest),
	// supporting resources of the referral. Each set is read up to one more
	// than the bound, to tell a referral over it.
	type member struct {
		typ string
		set string
		cmd *redis.StringSliceCmd
		n   *redis.IntCmd
	}
	var members []member
	add := func(typ, term string) {
		members = append(members, member{typ: typ, set: k.term(typ, term)})
	}
	add(gateway.TypeProvenance, gateway.TargetTerm(taskRef))
	if srID != "" {
		add(gateway.TypeProvenance, gateway.TargetTerm(srRef))
		for _, typ := range gateway.SupportingTypes() {
			add(typ, gateway.ReferralTerm(srRef))
		}
	}
	limit := int64(MaxRemovedProvenances)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range members {
			members[i].cmd = p.ZRange(ctx, members[i].set, 0, limit)
			members[i].n = p.ZCard(ctx, members[i].set)
		}
		return nil
	}); err != nil {
		return nil, classify(err)
	}
	refs := []removedResource{k.removed(gateway.TypeTask, task.ID)}
	if rm.ServiceRequest != nil {
		refs = append(refs, k.removed(gateway.TypeServiceRequest, srID))
	}
	provenances := 0
	for _, m := range members {
		if m.typ == gateway.TypeProvenance {
			provenances += int(m.n.Val())
		} else if m.n.Val() > gateway.MaxSupporting {
			rm.TooLarge = true
			return rm, nil
		}
	}
	if provenances > MaxRemovedProvenances {
		// A step: the first MaxRemovedProvenances of them.
		var chunk []removedResource
		for _, m := range members {
			for _, id := range m.cmd.Val() {
				if m.typ == gateway.TypeProvenance && len(chunk) < MaxRemovedProvenances {
					chunk = append(chunk, k.removed(m.typ, id))
				}
			}
		}
		return rm, s.readStep(ctx, rm, chunk, nil)
	}
	for _, m := range members {
		rm.sets = append(rm.sets, setCount{key: m.set, card: m.n.Val()})
		for _, id := range m.cmd.Val() {
			refs = append(refs, k.removed(m.typ, id))
		}
	}

	// Each resource's current version and index entries; the unique keys
	// that may name the referral, read to keep only those that do.
	uniques := []string{gateway.ReferralTaskKey(srID), gateway.MessageOriginKey(srID)}
	if rm.ServiceRequest != nil {
		var sr struct {
			Identifier []gateway.Identifier `json:"identifier"`
		}
		_ = json.Unmarshal(rm.ServiceRequest.Body, &sr)
		owner := gateway.Caller{ClientID: rm.ServiceRequest.Owner}
		for _, id := range sr.Identifier {
			uniques = append(uniques, gateway.ReferralKey(owner, id))
		}
	}
	for _, r := range refs {
		if gateway.IsSupporting(r.typ) {
			uniques = append(uniques, gateway.SupportingKey(r.typ+"/"+r.id))
		}
	}
	hashes := make([]*redis.SliceCmd, len(refs))
	held := make([]*redis.StringCmd, len(uniques))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			hashes[i] = p.HMGet(ctx, r.hash, "v", "x")
		}
		for i, u := range uniques {
			held[i] = p.Get(ctx, k.unique(u))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, classify(err)
	}
	rm.resources = readVersions(refs, hashes)
	for i, u := range uniques {
		v := held[i].Val()
		switch {
		case v == "":
		case strings.HasPrefix(u, "message-origin|"):
			// The message that made the referral: its own key names it.
			rm.uniques = append(rm.uniques, k.unique(u))
			if rm.ServiceRequest != nil {
				key := gateway.MessageKey(gateway.Caller{ClientID: rm.ServiceRequest.Owner}, v)
				if got, _ := s.rdb.Get(ctx, k.unique(key)).Result(); got == srRef || strings.HasPrefix(got, srRef+"/") {
					rm.uniques = append(rm.uniques, k.unique(key))
				}
			}
		case v == srRef || v == taskRef || strings.HasPrefix(v, srRef+"/"):
			rm.uniques = append(rm.uniques, k.unique(u))
		}
	}
	if err := s.readClaimedKeys(ctx, rm, srRef, taskRef); err != nil {
		return nil, err
	}
	if !s.spread {
		// One partition holds everything: the Patient and the Task's
		// fields go in the referral's one step, as ever.
		rm.fields = s.taskFields(task.ID, task.Owner)
		return rm, s.readLastReferralsPatient(ctx, rm)
	}
	return rm, s.readLeftover(ctx, rm)
}

// removed is a resource of partition k that a removal takes, before its
// version and index entries are read.
func (k keys) removed(typ, id string) removedResource {
	return removedResource{typ: typ, id: id, hash: k.resource(typ, id), all: k.all(typ)}
}

// taskFields are the fields kept of a Task in shared hashes, by hash key
// and field: the last version of it numbered for subscribers (under the
// plain tag, with the numbering: Fanout), and what Signpost last wrote
// back of it to its owner's GP system (in the Task's partition:
// writeBackOf). They go with the Task: in its removal's step those in its
// partition, the others after it (leftover).
func (s *Store) taskFields(taskID, owner string) [][2]string {
	return [][2]string{{s.keys.subNumbered(), gateway.TypeTask + "/" + taskID}, {s.writeBackOf(owner, taskID), taskID}}
}

// readVersions fills in each resource's version and index entries from
// its hash's 'v' and 'x', leaving out one gone meanwhile (the size of the
// set that named it tells the script).
func readVersions(refs []removedResource, hashes []*redis.SliceCmd) []removedResource {
	var out []removedResource
	for i, r := range refs {
		v := hashes[i].Val()
		if len(v) != 2 || v[0] == nil {
			continue
		}
		r.version, _ = v[0].(string)
		if x, _ := v[1].(string); x != "" {
			r.terms = strings.Split(x, "\n")
		}
		out = append(out, r)
	}
	return out
}

// readStep makes rm a step of a referral too large for one removal: the
// resources given (each as it is now) and the filed keys given (set, key)
// go, provided the Task is still the version read. Nothing else does: the
// referral stays whole to its readers but for these.
func (s *Store) readStep(ctx context.Context, rm *Removal, resources []removedResource, members [][2]string) error {
	*rm = Removal{Task: rm.Task, ServiceRequest: rm.ServiceRequest, Step: true, members: members, place: rm.place,
		guards: [][2]string{{s.in(rm.place).resource(gateway.TypeTask, rm.Task.ID), strconv.Itoa(rm.Task.Version)}}}
	if len(resources) == 0 {
		return nil
	}
	hashes := make([]*redis.SliceCmd, len(resources))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range resources {
			hashes[i] = p.HMGet(ctx, r.hash, "v", "x")
		}
		return nil
	}); err != nil {
		return classify(err)
	}
	rm.resources = readVersions(resources, hashes)
	return nil
}

// MaxClaimedKeys bounds the keys filed under one resource that a removal
// takes (a few per message about the referral); a referral with more is
// not removed (Removal.TooLarge), so the script stays bounded.
const MaxClaimedKeys = 1000

// readClaimedKeys adds the unique keys filed under the referral's
// ServiceRequest and Task (gateway.UniqueKey.Of: message ids, fullUrls,
// X-Request-Ids, the ids of messages Signpost sent) and the sets filing
// them. Every key in them was claimed by a commit that wrote the referral,
// so each goes with it; the script checks the sets' sizes, so a key filed
// meanwhile stops the removal.
func (s *Store) readClaimedKeys(ctx context.Context, rm *Removal, refs ...string) error {
	sets := make([]string, len(refs))
	members := make([]*redis.StringSliceCmd, len(refs))
	cards := make([]*redis.IntCmd, len(refs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ref := range refs {
			sets[i] = s.in(rm.place).claimedFor(ref)
			members[i] = p.ZRange(ctx, sets[i], 0, MaxClaimedKeys)
			cards[i] = p.ZCard(ctx, sets[i])
		}
		return nil
	}); err != nil {
		return classify(err)
	}
	have := map[string]bool{}
	for _, u := range rm.uniques {
		have[u] = true
	}
	for i, set := range sets {
		if cards[i].Val() > MaxClaimedKeys {
			// A step: the first MaxClaimedKeys of them go.
			var chunk [][2]string
			for _, k := range members[i].Val()[:MaxClaimedKeys] {
				chunk = append(chunk, [2]string{set, k})
			}
			return s.readStep(ctx, rm, nil, chunk)
		}
		if cards[i].Val() == 0 {
			continue
		}
		rm.sets = append(rm.sets, setCount{key: set, card: cards[i].Val()})
		for _, k := range append(members[i].Val(), set) {
			if !have[k] {
				have[k] = true
				rm.uniques = append(rm.uniques, k)
			}
		}
	}
	return nil
}

// readLastReferralsPatient adds the referral's Patient to the removal when
// this referral is the last that names it: the ServiceRequest and Task
// subject sets of its reference hold this referral's and nothing else,
// and its Consent set only Consents filed under this referral (the script
// checks they still do, so a referral or Consent made meanwhile for the
// same Patient keeps it). The reference is read from the ServiceRequest's
// own index entries, so it is the one searches use. Patient ids are each
// client's own but the subject sets are not, so another client's referral
// for a Patient of the same id keeps this one too: a Patient is kept when
// in doubt, never removed while named.
//
// A Consent keeps it because retention keeps Consents: a Patient made
// again under the same id is a create, which the rules for a Patient a
// Consent names (it keeps its NHS numbers) do not see, so the Consent
// would then be about whoever the GP system stored there.
func (s *Store) readLastReferralsPatient(ctx context.Context, rm *Removal) error {
	patientID := rm.patientID(s.keys)
	if patientID == "" {
		return nil
	}
	ref := gateway.TypePatient + "/" + patientID
	sets, consents := s.keys.patientNamers(ref)
	key := gateway.PatientKey(rm.ServiceRequest.Owner, patientID)
	var cards []*redis.IntCmd
	var consented *redis.IntCmd
	var hash *redis.SliceCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, set := range sets {
			cards = append(cards, p.ZCard(ctx, set))
		}
		consented = p.ZCard(ctx, consents)
		hash = p.HMGet(ctx, s.keys.resource(gateway.TypePatient, key), "v", "x")
		return nil
	}); err != nil {
		return classify(err)
	}
	for _, c := range cards {
		if c.Val() > 1 {
			return nil // another referral names it
		}
	}
	if consented.Val() > rm.consentsIn(consents) {
		return nil // a Consent that stays names it
	}
	v := hash.Val()
	if len(v) != 2 || v[0] == nil {
		return nil // not held (or held under another client's key)
	}
	patient := s.keys.removed(gateway.TypePatient, key)
	patient.version, _ = v[0].(string)
	if x, _ := v[1].(string); x != "" {
		patient.terms = strings.Split(x, "\n")
	}
	rm.resources = append(rm.resources, patient)
	for i, set := range sets {
		rm.sets = append(rm.sets, setCount{key: set, card: cards[i].Val()})
	}
	rm.sets = append(rm.sets, setCount{key: consents, card: consented.Val()})
	return nil
}

// patientNamers are the index sets of partition k whose members name the
// Patient ref: the ServiceRequests' and Tasks' subject sets, and the
// Consents' patient set. Retention lets a Patient go only while they hold
// nothing that stays.
func (k keys) patientNamers(ref string) (subjects []string, consents string) {
	return []string{k.term(gateway.TypeServiceRequest, gateway.SubjectTerm(ref)), k.term(gateway.TypeTask, gateway.SubjectTerm(ref))},
		k.term(gateway.TypeConsent, gateway.ConsentPatientTerm(ref))
}

// consentsIn is how many of the Consents the removal takes (those filed
// under the referral) are in the index set named.
func (rm *Removal) consentsIn(set string) int64 {
	var n int64
	for _, r := range rm.resources {
		if r.typ == gateway.TypeConsent && slices.Contains(r.terms, set) {
			n++
		}
	}
	return n
}

// patientID is the id of the Patient the referral's ServiceRequest names
// (read from its own index entries, in partition k: the reference searches
// use), or "".
func (rm *Removal) patientID(k keys) string {
	if rm.ServiceRequest == nil {
		return ""
	}
	prefix := k.term(gateway.TypeServiceRequest, gateway.SubjectTerm(gateway.TypePatient+"/"))
	var patientID string
	for _, r := range rm.resources {
		if r.typ != gateway.TypeServiceRequest {
			continue
		}
		for _, t := range r.terms {
			if id, ok := strings.CutPrefix(t, prefix); ok && id != "" {
				patientID = id
			}
		}
	}
	return patientID
}

// RemoveReferral removes what ReadRemoval read, in one step (remove.lua),
// or nothing: ErrRemovalChanged when anything changed since the read.
//
// On a store that spreads referrals, the step also records the removal's
// leftover in the referral's partition, and the leftover then goes in
// steps of its own (finishRemoval). An error after the referral went
// leaves the leftover recorded, for FinishRemovals to take.
func (s *Store) RemoveReferral(ctx context.Context, rm *Removal) error {
	if rm.TooLarge {
		return errors.New("redisstore: referral holds more supporting resources than a removal takes")
	}
	var kept [][3]string
	k := s.in(rm.place)
	if j := rm.Keep; j != nil {
		kept = append(kept, [3]string{k.keptJourneys(journeyMonth(j.Sent)), j.TaskID, string(j.Summary)})
	}
	if lo := rm.leftover; lo != nil && !rm.Step {
		kept = append(kept, [3]string{k.leftovers(), rm.Task.ID, string(lo.encode())})
	}
	removed, err := s.runRemoval(ctx, rm, kept)
	if err != nil || !removed {
		return err
	}
	if err := s.step(); err != nil {
		return err
	}
	if rm.leftover == nil || rm.Step {
		return nil
	}
	return s.finishRemoval(ctx, rm.place, *rm.leftover)
}

// runRemoval runs remove.lua on what rm names, with kept set in the same
// step ({hash, field, value}); ErrRemovalChanged when it was refused.
func (s *Store) runRemoval(ctx context.Context, rm *Removal, kept [][3]string) (bool, error) {
	var kl keyList
	args := []any{len(rm.resources)}
	for _, r := range rm.resources {
		key := kl.add(r.hash)
		all := kl.add(r.all)
		first := 0
		for i, t := range r.terms {
			// Entries are listed as full keys; each gets a position of its
			// own, in order, so the script can rebuild 'x' from KEYS.
			kl.keys = append(kl.keys, t)
			if i == 0 {
				first = len(kl.keys)
			}
		}
		args = append(args, key, r.id, r.version, all, first, len(r.terms))
	}
	args = append(args, len(rm.sets))
	for _, c := range rm.sets {
		args = append(args, kl.add(c.key), c.card)
	}
	args = append(args, len(rm.uniques))
	for _, u := range rm.uniques {
		args = append(args, kl.add(u))
	}
	args = append(args, len(rm.fields))
	for _, f := range rm.fields {
		args = append(args, kl.add(f[0]), f[1])
	}
	args = append(args, len(kept))
	for _, k := range kept {
		args = append(args, kl.add(k[0]), k[1], k[2])
	}
	args = append(args, len(rm.guards))
	for _, g := range rm.guards {
		args = append(args, kl.add(g[0]), g[1])
	}
	args = append(args, len(rm.members))
	for _, m := range rm.members {
		args = append(args, kl.add(m[0]), kl.add(m[1]))
	}
	s.raced()
	res, err := removeScript.Run(ctx, s.rdb, kl.keys, args...).StringSlice()
	if err != nil {
		return false, classify(err)
	}
	if len(res) == 0 || res[0] != "ok" {
		return false, ErrRemovalChanged
	}
	return true, nil
}

// step runs the test hook after each step of a removal (a crash there
// leaves what a crash would).
func (s *Store) step() error {
	if s.afterRemovalStep != nil {
		return s.afterRemovalStep()
	}
	return nil
}

// journeyMonth names the month a kept journey is filed under.
func journeyMonth(sent time.Time) string { return sent.UTC().Format("2006-01") }

// keptJourneysScan is how many summaries one HSCAN step asks for.
const keptJourneysScan = 1000

// KeptJourneys implements gateway.Store: every summary filed under the
// UTC months from's to to's, read in HSCAN steps so that no one command
// holds Redis for a whole month's referrals. A summary is filed in its
// referral's partition, so each month is read in every partition in use;
// the summaries come month by month, each month's by Task id, whatever
// the partitions and the order HSCAN met them in.
func (s *Store) KeptJourneys(ctx context.Context, from, to time.Time) ([][]byte, error) {
	var out [][]byte
	first := time.Date(from.UTC().Year(), from.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	for m := first; m.Before(to); m = m.AddDate(0, 1, 0) {
		month := map[string]string{} // by Task id (HSCAN may return a field twice)
		for _, p := range s.partitionsInUse() {
			key := s.in(p).keptJourneys(journeyMonth(m))
			var cursor uint64
			for {
				kv, next, err := s.rdb.HScan(ctx, key, cursor, "", keptJourneysScan).Result()
				if err != nil {
					return nil, classify(err)
				}
				for i := 0; i+1 < len(kv); i += 2 {
					month[kv[i]] = kv[i+1]
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
		}
		for _, id := range slices.Sorted(maps.Keys(month)) {
			out = append(out, []byte(month[id]))
		}
	}
	return out, nil
}

// MemoryUsage sums Redis's MEMORY USAGE of the keys (an estimate: index
// entries in shared sets are not counted), in one pipeline, which a
// cluster client sends to each key's primary: Removal.Keys names each in
// its partition.
func (s *Store) MemoryUsage(ctx context.Context, keys []string) (int64, error) {
	cmds := make([]*redis.IntCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.MemoryUsage(ctx, k)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return 0, classify(err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// MaxQueueScan bounds how many entries of each queue QueuedTasks reads.
const MaxQueueScan = 100_000

// ErrQueuesTooLong: a queue holds more than MaxQueueScan jobs, so which
// Tasks it names is not known, and nothing should be removed for now.
var ErrQueuesTooLong = errors.New("redisstore: a job queue is longer than retention reads; nothing removed this round")

// QueuedTasks returns the ids of the Tasks any job still waiting names: in
// the delivery, notify and subscription streams (a finished job is deleted
// from its stream, so what a stream holds is unread or pending), their
// delayed sets, and the dead letters, of every partition (Queues: a job
// is queued in its referral's partition). Each partition's are read in
// one MULTI, so a job moving between a stream and its delayed set (or
// its dead letters: always within its partition) is seen in one of them.
// Cost: O(jobs waiting), at most MaxQueueScan per queue and partition,
// once per batch.
func (s *Store) QueuedTasks(ctx context.Context) (map[string]bool, error) {
	names := gateway.WorkerQueues[:]
	byName := make([][]*Queue, len(names))
	for i, n := range names {
		byName[i] = s.Queues(n).Partitions()
	}
	var streams []*redis.XMessageSliceCmd
	var delayed []*redis.StringSliceCmd
	for part := range byName[0] { // one MULTI a partition: its keys share a slot
		if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i := range names {
				q := byName[i][part]
				streams = append(streams, p.XRangeN(ctx, q.stream, "-", "+", MaxQueueScan+1))
				delayed = append(delayed, p.ZRange(ctx, q.delayed, 0, MaxQueueScan))
			}
			streams = append(streams, p.XRangeN(ctx, byName[0][part].dead, "-", "+", MaxQueueScan+1))
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return nil, classify(err)
		}
	}
	out := map[string]bool{}
	for _, c := range streams {
		if len(c.Val()) > MaxQueueScan {
			return nil, ErrQueuesTooLong
		}
		for _, m := range c.Val() {
			if t, ok := m.Values["task"].(string); ok {
				out[strings.TrimPrefix(t, gateway.TypeTask+"/")] = true
			}
		}
	}
	for _, c := range delayed {
		if len(c.Val()) > MaxQueueScan {
			return nil, ErrQueuesTooLong
		}
		for _, m := range c.Val() {
			var f map[string]any
			if json.Unmarshal([]byte(m), &f) == nil {
				if t, ok := f["task"].(string); ok {
					out[strings.TrimPrefix(t, gateway.TypeTask+"/")] = true
				}
			}
		}
	}
	return out, nil
}

// TrimAuditBefore removes the audit records older than before (XTRIM
// MINID, approximate: whole stream nodes only, so a few records just older
// may stay until the next run).
func (s *Store) TrimAuditBefore(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	keys, _ := s.auditStreams() // every partition's, when the store spreads
	for _, k := range keys {
		n, err := s.rdb.XTrimMinIDApprox(ctx, k, strconv.FormatInt(before.UnixMilli(), 10), 0).Result()
		if err != nil {
			return total, classify(err)
		}
		total += n
	}
	return total, nil
}
