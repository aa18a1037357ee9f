package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// partitions is how many partitions the partitioned key layout will spread
// referrals over (deploy/README.md, "Partitioned keys: the design"). It is
// a constant of the layout, not of a deployment: a cluster grows by moving
// slots, each holding whole partitions. 16, not more, because a search
// visits every partition.
const partitions = 16

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// partitionWindow is how many slots at the start of its share of the slot
// space a partition's slot is chosen among. Near the start, so that when
// primaries hold equal contiguous ranges of slots (what redis-cli --cluster
// create and rebalance give), no partition falls on the far side of a range
// boundary: N primaries then hold ⌊16/N⌋ or ⌈16/N⌉ partitions each.
const partitionWindow = 16

// partitionTags returns the hash tags of a namespace's partitions: tag n
// is "namespace:n." and a short suffix, found by trying suffixes in order,
// whose slot is among the first partitionWindow slots of the nth of
// partitions equal shares of the slot space. Tags hashed as they come
// would spread unevenly (16 of them over 3 primaries fall within ±20 % of
// a third each about one time in seven). The search is deterministic, so
// every process finds the same tags, and short: about a thousand hashes a
// partition.
func partitionTags(namespace string) []string {
	tags := make([]string, partitions)
	share := clusterSlots / partitions
	for n := range partitions {
		base := namespace + ":" + strconv.Itoa(n) + "."
		for i := 0; ; i++ {
			tag := base + strconv.FormatInt(int64(i), 36)
			if s := keySlot(tag); s >= n*share && s < n*share+partitionWindow {
				tags[n] = tag
				break
			}
		}
	}
	return tags
}

// keySlot is the Redis Cluster slot of a hash tag's content: CRC16
// (XMODEM: polynomial 0x1021, initial 0) modulo 16384.
func keySlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// partition is where a referral's keys live: one of the layout's
// numbered partitions (0 to partitions-1), each its own hash tag, or
// legacy, the plain namespace tag every key had before keys were
// partitioned. Legacy is read, searched, updated and drained like the
// others, so data written before partitions keeps working unchanged and
// with its ids, but a store that spreads referrals gives it nothing new.
type partition int

// legacy is the partition of the plain namespace tag ("{signpost}").
const legacy partition = -1

// idPrefix starts the id of every resource made in partition p
// ("p07-"): a FHIR id may hold letters, digits, '-' and '.', and a UUID
// (every id made before partitions, and every id a store that does not
// spread makes) never starts with 'p', so the prefix cannot be mistaken.
// Four characters and a UUID's 36 stay well within FHIR's 64.
func idPrefix(p partition) string {
	if p == legacy {
		return ""
	}
	return "p" + string(rune('0'+p/10)) + string(rune('0'+p%10)) + "-"
}

// partitionOfID is the partition an id was made in: the one its prefix
// names, or legacy for an id without one.
func partitionOfID(id string) partition {
	if len(id) < 5 || id[0] != 'p' || id[3] != '-' {
		return legacy
	}
	hi, lo := id[1], id[2]
	if hi < '0' || hi > '9' || lo < '0' || lo > '9' {
		return legacy
	}
	if n := int(hi-'0')*10 + int(lo-'0'); n < partitions {
		return partition(n)
	}
	return legacy
}

// partitionOfPlace is the partition whose id prefix is place (what a
// queued job carries, gateway.QueuedJob.Place): legacy for "".
func partitionOfPlace(place string) partition {
	for n := range partitions {
		if idPrefix(partition(n)) == place {
			return partition(n)
		}
	}
	return legacy
}

// placeReferral is the partition a new referral goes to, decided by its
// placing key (the client and the referral's business identifier, as
// gateway.Placer describes): the same key always gives the same
// partition, so a repeat finds the idempotency keys of the first. A
// referral with no key goes anywhere: nothing but its If-None-Exist can
// repeat it.
func placeReferral(key string) partition {
	if key == "" {
		var b [1]byte
		_, _ = rand.Read(b[:])
		return partition(int(b[0]) % partitions)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return partition(h.Sum32() % partitions)
}

// SpreadReferrals makes the store give new referrals to the numbered
// partitions, so that a Redis Cluster spreads them over its primaries.
// Without it (the default) every key stays in the legacy partition, as it
// was before partitions: ids carry no prefix and nothing is routed. Call it
// before the store is used; a deployment's data keeps the layout it was
// written in.
func (s *Store) SpreadReferrals() { s.spread = true }

// Spread reports whether the store gives new referrals to the numbered
// partitions (SpreadReferrals).
func (s *Store) Spread() bool { return s.spread }

// in returns the keys of partition p.
func (s *Store) in(p partition) keys {
	if p == legacy {
		return s.keys
	}
	return s.parts[p]
}

// partitionOf is the partition of the resource a store id names: its
// prefix's, or legacy. A Patient's store id is its owner and its id
// (gateway.PatientKey): an id with a prefix (one Signpost made, for a
// BaRS message's Patient, beside its referral) decides; one without (its
// GP system chose it) is placed by the key (patientPlace), unless it was
// stored before the store spread, which partitionOf cannot know: the
// callers that touch such a Patient look in legacy too (read, Histories)
// or ask it first (legacyPatients). A store that does not spread keeps
// everything in legacy, whatever an id looks like (a client may choose an
// id such as "p07-x" for a Patient or an update-as-create).
func (s *Store) partitionOf(id string) partition {
	if !s.spread {
		return legacy
	}
	if i := strings.LastIndexByte(id, '|'); i >= 0 {
		if p := partitionOfID(id[i+1:]); p != legacy {
			return p
		}
		return patientPlace(id)
	}
	return partitionOfID(id)
}

// patientPlace is the numbered partition of a Patient whose id its GP
// system chose, by its key (owner and id): every process places it alike,
// and a referral written with it is placed beside it (PlacePatient).
func patientPlace(key string) partition { return placeReferral("patient|" + key) }

// mayBeInLegacy reports whether a store id names a Patient placed by its
// key (patientPlace) that may have been stored in legacy before the store
// spread: such a Patient is read in both.
func (s *Store) mayBeInLegacy(id string) bool {
	i := strings.LastIndexByte(id, '|')
	return s.spread && i >= 0 && partitionOfID(id[i+1:]) == legacy
}

// legacyNoneFor is how long a process takes "legacy holds none" (of
// referrals, of Patients) as still true before it asks again. During a
// rolling switch to spreading, processes that do not spread yet still
// write to legacy after a spreading one found it empty, so "none" is not
// kept for good; "some" is (legacy empties only as retention removes what
// it holds, over months).
const legacyNoneFor = time.Second

// legacyHolding is whether the legacy partition holds any resource of a
// type (its set of all exists), asked at most once per legacyNoneFor while
// it holds none, and never again once it holds some.
type legacyHolding struct {
	mu    sync.Mutex
	some  bool
	asked time.Time // when it last held none
}

// holds asks, or answers from what it last asked; an answer it cannot get
// is "some", so the caller checks each key, this time.
func (l *legacyHolding) holds(ctx context.Context, rdb redis.UniversalClient, all string) bool {
	l.mu.Lock()
	some, fresh := l.some, time.Since(l.asked) < legacyNoneFor
	l.mu.Unlock()
	if some || fresh {
		return some
	}
	n, err := rdb.Exists(ctx, all).Result()
	if err != nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > 0 {
		l.some = true
	} else {
		l.asked = time.Now()
	}
	return n > 0
}

// legacyPatients returns, of the Patients a commit writes or was decided
// on (Unchanged; their store ids), those held in legacy: stored before
// the store spread, or by a process that does not spread yet during a
// rolling switch to spreading, they are changed, and their versions
// checked, where they are. While legacy holds no Patient
// (legacyPatientsHeld) only some are looked for: an update (Expect), or a
// version read (Unchanged, not 0), of one this process did not just read
// in its place, and one it just read in legacy (Read remembers where it
// found each version, s.indexed). So a Patient such a process stored in
// legacy after this one found legacy empty is still updated there, not
// refused as stale in its place (nor written there a second time), and a
// decision on it is not refused for ever as made on a version its place
// does not hold. What is left is a create racing with that process's
// create of the same Patient, within legacyNoneFor, as two creates race
// on one Redis.
func (s *Store) legacyPatients(ctx context.Context, c *gateway.Commit) (map[string]bool, error) {
	var ids []string
	some, asked := false, false
	look := func(id string, held bool) {
		if !s.mayBeInLegacy(id) || slices.Contains(ids, id) {
			return
		}
		if !asked {
			some, asked = s.legacyPatientsHeld.holds(ctx, s.rdb, s.keys.all(gateway.TypePatient)), true
		}
		readThere := s.indexed.holds(s.keys.resource(gateway.TypePatient, id))
		readInPlace := s.indexed.holds(s.in(s.partitionOf(id)).resource(gateway.TypePatient, id))
		if some || readThere || (held && !readInPlace) {
			ids = append(ids, id)
		}
	}
	for _, w := range c.Writes {
		if w.Resource.Type == gateway.TypePatient {
			look(w.Resource.ID, w.Expect != 0)
		}
	}
	for _, r := range c.Unchanged {
		if r.Type == gateway.TypePatient {
			look(r.ID, r.Version != 0)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.IntCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Exists(ctx, s.keys.resource(gateway.TypePatient, id))
		}
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	held := map[string]bool{}
	for i, cmd := range cmds {
		if cmd.Val() > 0 {
			held[ids[i]] = true
		}
	}
	return held, nil
}

// writtenIn is the partition a commit writes the resource with store id
// id in: legacy for a Patient held there (old, from legacyPatients), else
// partitionOf's.
func (s *Store) writtenIn(id string, old map[string]bool) partition {
	if old[id] {
		return legacy
	}
	return s.partitionOf(id)
}

// PlacePatient implements gateway.Placer: the id prefix of what is
// written with the Patient whose store id is key: legacy's ("") for one
// stored there before the store spread, else its place.
func (s *Store) PlacePatient(ctx context.Context, key string) (string, error) {
	if !s.spread {
		return "", nil
	}
	held, err := s.legacyPatients(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypePatient, ID: key}}}})
	if err != nil || held[key] {
		return "", err
	}
	return idPrefix(s.partitionOf(key)), nil
}

// partitionOfRef is partitionOf for a "Type/id" reference.
func (s *Store) partitionOfRef(ref string) partition {
	_, id, _ := strings.Cut(ref, "/")
	return s.partitionOf(id)
}

// partitionsInUse lists the partitions that may hold data: legacy, and
// every numbered one when the store spreads.
func (s *Store) partitionsInUse() []partition {
	out := []partition{legacy}
	if s.spread {
		for n := range partitions {
			out = append(out, partition(n))
		}
	}
	return out
}

// Place implements gateway.Placer: the prefix of the ids of a new
// referral placed by key ("" when the store does not spread).
func (s *Store) Place(key string) string {
	if !s.spread {
		return ""
	}
	return idPrefix(placeReferral(key))
}

// PlaceOf implements gateway.Placer: the prefix of ids made beside id.
func (s *Store) PlaceOf(id string) string { return idPrefix(s.partitionOf(id)) }

// heldInLegacy checks, for a commit in a numbered partition, the unique
// keys it claims against the legacy partition, where the referrals made
// before the store spread keep theirs: a repeat of one of them is placed
// by its key in a numbered partition, whose commit cannot see them. The
// check is a read before the commit, not part of it; it is enough because
// legacy takes no new referrals from a spreading store, so a key a new
// referral claims is not claimed there meanwhile. It is skipped while
// legacy holds no referral (legacyReferralsHeld: asked again after
// legacyNoneFor, so one made there by a process that does not spread yet,
// during a rolling switch, is found within that).
func (s *Store) heldInLegacy(ctx context.Context, c *gateway.Commit, old map[string]bool) (*gateway.CommitResult, error) {
	if !s.spread || len(c.Unique) == 0 || len(c.Writes) == 0 {
		return nil, nil
	}
	if p, err := s.commitPartition(c, old); err != nil || p == legacy {
		return nil, nil // commit reports a commit that spans partitions
	}
	if !s.legacyReferralsHeld.holds(ctx, s.rdb, s.keys.all(gateway.TypeServiceRequest)) {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(c.Unique))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range c.Unique {
			cmds[i] = p.Get(ctx, s.keys.unique(u.Key))
		}
		return nil
	})
	if err := readsFailed(err, cmds); err != nil {
		return nil, err
	}
	for i, cmd := range cmds {
		if v := cmd.Val(); v != "" {
			return &gateway.CommitResult{Held: &gateway.UniqueHit{Index: i, Holder: v}}, nil
		}
	}
	return nil, nil
}

// partitionGuard is the registry guard of a commit in partition p whose
// criteria were expanded with the token systems at generation seen
// (TokenSystems: the sum of every partition's). No one partition's script
// can check the sum, so it is checked here, with p's own generation read
// in the same step: if the sum is still seen, no system was added
// anywhere since the expansion, and the script then checks that p's (the
// only registry its criteria search) is still what was read. changed: the
// sum moved on, and the commit is planned again.
func (s *Store) partitionGuard(ctx context.Context, p partition, seen int64) (guard string, changed bool, err error) {
	parts := s.partitionsInUse()
	cmds := make([]*redis.StringCmd, len(parts))
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, part := range parts {
			cmds[i] = pipe.HGet(ctx, s.in(part).systems(), systemsGeneration)
		}
		return nil
	})
	if err := readsFailed(err, cmds); err != nil {
		return "", false, err
	}
	var sum, own int64
	for i, c := range cmds {
		g, _ := strconv.ParseInt(c.Val(), 10, 64)
		sum += g
		if parts[i] == p {
			own = g
		}
	}
	return strconv.FormatInt(own, 10), sum != seen, nil
}

// capsLeft is the limit each of a commit's criteria is checked against in
// partition p, whose script counts only p's matches: a cap (Limit) less
// the matches every other partition holds, counted just before the commit
// (count.lua, one run in each other partition, in one pipeline); a
// conditional create's 0 as it is. over: some cap is reached already. The
// count is not part of the commit's step: a match stored elsewhere between
// the two is not counted. What is capped is placed so that this does not
// matter (a client's subscriptions all go to its one partition, so the
// others hold only those made before the store spread, and legacy takes no
// new ones).
//
// Caps with the same criteria are counted once and each lowered by the
// count: a transaction making many Subscriptions carries the client's cap
// once for each (each with one less room), and one of many referrals for
// one patient a Consent count for each. Counted one search each, a full
// transaction cost a hundred searches of every partition before its commit.
func (s *Store) capsLeft(ctx context.Context, p partition, criteria []gateway.Criteria) (limits []int, over bool, err error) {
	limits = make([]int, len(criteria))
	var caps []gateway.Criteria // the distinct criteria capped
	of := make([]int, len(criteria))
	at := map[string]int{}
	for i, cr := range criteria {
		limits[i], of[i] = cr.Limit, -1
		if cr.Limit <= 0 || !s.spread {
			continue
		}
		key := cr.Key()
		n, ok := at[key]
		if !ok {
			n = len(caps)
			at[key] = n
			caps = append(caps, cr)
		}
		of[i] = n
	}
	if len(caps) == 0 {
		return limits, false, nil
	}
	var keys [][]string
	var args [][]any
	for _, other := range s.partitionsInUse() {
		if other != p {
			k, a := countRun(s.in(other), caps)
			keys, args = append(keys, k), append(args, a)
		}
	}
	cmds, err := s.scriptPipelined(ctx, countScript, keys, args)
	if err != nil {
		return nil, false, err
	}
	elsewhere := make([]int, len(caps))
	for _, cmd := range cmds {
		counts, err := cmd.Int64Slice()
		if err != nil {
			return nil, false, classify(err)
		}
		if len(counts) != len(caps) {
			return nil, false, errCountReply
		}
		for n, c := range counts {
			elsewhere[n] += int(c)
		}
	}
	for i := range criteria {
		if of[i] >= 0 {
			if limits[i] -= elsewhere[of[i]]; limits[i] <= 0 {
				over = true
			}
		}
	}
	return limits, over, nil
}

// errCountReply is count.lua answering for another number of criteria
// than it was given: a script out of step with its caller.
var errCountReply = errors.New("redisstore: count.lua answered another number of counts than criteria")

// countRun is count.lua's KEYS and ARGV for counting each of criteria in
// the partition whose keys are k.
func countRun(k keys, criteria []gateway.Criteria) ([]string, []any) {
	var kl keyList
	token := randomToken()
	args := []any{len(criteria)}
	for i, cr := range criteria {
		args = append(args, kl.add(k.all(cr.Type)))
		groups, temps := groupKeys(k, &kl, cr.Type, cr.Groups, token+"c"+strconv.Itoa(i))
		args = countedGroups(args, groups, temps)
	}
	return kl.keys, args
}

// unchangedElsewhere checks, for a commit in partition p, the resources
// it was decided on that another partition holds (a Consent placed by its
// own Patient, a referral by its identifier, a Patient by its key or, one
// of old, in legacy: legacyPatients), which p's script cannot
// read: each is read just before the commit (one pipelined HGET each) and
// moved is set if one is no longer at its version. It returns those p
// holds, which the script checks in the commit's own step. The read
// elsewhere is not part of that step: a change landing between it and the
// script is not seen by it (see gateway/intake's recheckAfterCommit, which
// decides such a referral again after its commit). A store that does not
// spread holds everything in one partition and reads nothing here.
func (s *Store) unchangedElsewhere(ctx context.Context, p partition, reads []gateway.ReadVersion, old map[string]bool) (here []gateway.ReadVersion, moved bool, err error) {
	var elsewhere []gateway.ReadVersion
	for _, r := range reads {
		if s.writtenIn(r.ID, old) == p {
			here = append(here, r)
		} else {
			elsewhere = append(elsewhere, r)
		}
	}
	if len(elsewhere) == 0 {
		return here, false, nil
	}
	cmds := make([]*redis.StringCmd, len(elsewhere))
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, r := range elsewhere {
			cmds[i] = pipe.HGet(ctx, s.in(s.writtenIn(r.ID, old)).resource(r.Type, r.ID), "v")
		}
		return nil
	})
	if err := readsFailed(err, cmds); err != nil {
		return nil, false, err
	}
	for i, cmd := range cmds {
		if v, _ := strconv.Atoi(cmd.Val()); v != elsewhere[i].Version {
			return nil, true, nil
		}
	}
	return here, false, nil
}

// registerShared registers the token systems of a commit in a numbered
// partition in the registry every partition shares (legacy's, the one a
// store that does not spread has), with register.lua, before the commit:
// each partition's commit registers its systems in its own registry too,
// where a conditional create's guard looks (partitionGuard), but it is the
// shared one that counts a parameter's systems against the cap, once for
// all partitions, so the systems a search without one expands to stay
// within the cap in all. It returns the fields the commit registers in
// its partition (those the shared registry holds) and those it refused
// (over the cap: the commit indexes their terms bare, as a system over
// its partition's cap). Systems known to be there already cost no round
// trip.
//
// The registration is not part of the commit's step: a commit refused
// afterwards (a key held, a version stale) leaves its new system
// registered with nothing indexed under it, which costs a search one more
// term until the cap is reached, and nothing more.
func (s *Store) registerShared(ctx context.Context, fields []string) (register, refused []string, err error) {
	var ask []any
	for _, f := range fields {
		if _, ok := s.shared.Load(f); !ok {
			ask = append(ask, f)
		}
	}
	if len(ask) == 0 {
		return fields, nil, nil
	}
	args := append([]any{s.maxSystems, maxRegistryFields, len(ask)}, ask...)
	flags, err := registerScript.Run(ctx, s.rdb, []string{s.keys.systems()}, args...).Int64Slice()
	if err != nil {
		return nil, nil, classify(err)
	}
	out := make(map[string]bool, len(ask))
	for i, f := range ask {
		if flags[i] == 1 {
			s.shared.Store(f, true)
		} else {
			out[f.(string)] = true
		}
	}
	for _, f := range fields {
		if out[f] {
			refused = append(refused, f)
		} else {
			register = append(register, f)
		}
	}
	return register, refused, nil
}

// sameSlot reports whether two keys hash to one Redis Cluster slot, so one
// script may touch both: by their hash tags (the first "{...}" that is not
// empty, as Redis Cluster reads them), or the whole key where there is none.
func sameSlot(a, b string) bool { return keySlot(clusterHashed(a)) == keySlot(clusterHashed(b)) }

// clusterHashed is the part of a key Redis Cluster hashes to its slot.
func clusterHashed(key string) string {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key[open+1 : open+1+end]
		}
	}
	return key
}
