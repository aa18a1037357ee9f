// Package redisstore keeps Signpost's resources, search indexes, idempotency
// keys and job queues in Redis. It implements gateway.Store.
//
// Every change is one Lua script (scripts/*.lua, documented like an API), so
// a change is applied whole or not at all, and a job is queued in the same
// step as the state change that caused it. It imports the domain (gateway)
// and nothing else of Signpost.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/telemetry"
)

// Store is the Redis implementation of gateway.Store.
type Store struct {
	rdb  redis.UniversalClient
	keys keys // the unpartitioned keys, and the legacy partition's
	// parts are the numbered partitions' keys, used when spread is set
	// (SpreadReferrals): new referrals then go to them, never to legacy.
	parts  [partitions]keys
	spread bool
	// legacyReferralsHeld: whether the legacy partition holds referrals
	// (heldInLegacy).
	legacyReferralsHeld legacyHolding
	// legacyPatientsHeld: whether it holds Patients (legacyPatients).
	legacyPatientsHeld legacyHolding
	// batch pipelines commits and audit records across requests.
	batch *batcher
	// reads pipelines reads of resources across requests and workers: a
	// delivery reads its Task on its own, and one round trip per read was
	// a seventh of the worker's CPU (deploy/BENCHMARKS.md). Its own
	// batcher, so that no read waits for replicas (WaitForReplicas).
	reads *batcher
	// loads loads the scripts Redis answers NOSCRIPT for, once for the
	// callers answered together.
	loads *scriptLoader
	// maxSystems caps the token systems registered for one parameter.
	maxSystems int
	// maxEvents caps the events waiting for one subscription.
	maxEvents int
	// auditMax is about how many records the audit stream keeps (SetAuditMax).
	auditMax int64
	// maxChanged and followScan bound keyset paging's following of matches
	// written since a search's snapshot (SetFollowLimits).
	maxChanged, followScan int
	// maxFollowed bounds what such a search keeps ahead of its page
	// (gateway.MaxFollowedAhead; tests set a small one).
	maxFollowed int
	// stampLag is how far behind Redis's clock commit.lua takes a write's
	// stamp (gateway.FollowLag; SetStampLag).
	stampLag time.Duration
	// now is the clock keyset paging measures FollowLag by (time.Now;
	// tests set one they move).
	now func() time.Time
	// afterRead, when set (by tests), runs between the read that names a
	// script's keys and the script, where another client may change them.
	afterRead func()
	// afterRemovalStep, when set (by tests), runs after each step of a
	// referral's removal; an error stops the removal there, as a crash would.
	afterRemovalStep func() error
	// indexed remembers the index entries of versions read by Read, for
	// the commit that replaces them.
	indexed indexedMemory
	// shared remembers the token systems known to be in the registry every
	// partition shares (registerShared): a registry never loses one, and
	// it holds at most maxSystems of each parameter.
	shared sync.Map
}

// maxRereads is how many times an operation whose keys are known only from
// a read (a session's account, an account's sessions, a legacy Patient's
// owner and index sets) reads them and runs its script, which checks they
// still hold; then it gives up with ErrKeptChanging rather than loop for as
// long as others keep changing them.
const maxRereads = 3

// ErrKeptChanging is returned when the keys an operation read kept changing
// before its script could run, maxRereads times in a row.
// It is a kind of gateway.ErrContended: callers are told to send again.
var ErrKeptChanging = fmt.Errorf("redisstore: what the operation read kept changing before it could apply: %w", gateway.ErrContended)

// raced runs the test hook between a read and the script it names keys for.
func (s *Store) raced() {
	if s.afterRead != nil {
		s.afterRead()
	}
}

// maxSubscriptionEvents is how many events wait for one subscription that
// is not taking them (down, in error, awaiting its handshake). Each is
// about 100 bytes; a subscriber away for longer loses the oldest, and sees
// the gap in the event numbers (then polls Task?_lastUpdated to catch up).
const maxSubscriptionEvents = 10_000

// maxTokenSystems is how many systems one token parameter registers
// ("Type index"). Real parameters have a handful (SNOMED CT, NHS number, ODS,
// a referral-id system per GP system); the cap only stops made-up systems
// from lengthening every search without a system. A term in a system over
// the cap is indexed under its bare code as well, where such searches
// always look, so it is still found.
const maxTokenSystems = 64

// maxRegistryFields is the largest registry of token systems commit.lua
// reads whole (HKEYS) to count a parameter's systems the first time it
// meets one it never counted: a registry written before the cap. Every
// parameter Signpost indexes (about twenty), each at its cap with its
// count, fits within it; a larger registry grew before the cap, and is not
// read inside a commit, where reading it would hold Redis's one thread for
// as long as it is long.
const maxRegistryFields = 2048

// New returns a Store over a connected client. namespace becomes the hash
// tag of every key ("signpost" unless a deployment shares a Redis).
func New(rdb redis.UniversalClient, namespace string) *Store {
	if namespace == "" {
		namespace = "signpost"
	}
	loads := &scriptLoader{}
	return &Store{rdb: rdb, keys: newKeys(namespace), parts: partitionKeys(namespace), loads: loads,
		batch: &batcher{rdb: rdb, loads: loads}, reads: &batcher{rdb: rdb, loads: loads}, maxSystems: maxTokenSystems,
		maxEvents: maxSubscriptionEvents, auditMax: DefaultAuditMaxEntries,
		maxChanged: gateway.MaxChangedFollowed, followScan: followScan, maxFollowed: gateway.MaxFollowedAhead, stampLag: newStampLag, now: time.Now}
}

// followScan is how many matches written since a keyset search's snapshot
// search.lua looks at in one run, for a caller that keeps what it followed
// (the export): with their hashes, a run's work stays what Signpost allows
// however many are written while the search pages.
const followScan = 500

// newStampLag is the stamp lag a new Store takes: gateway.FollowLag. This
// package's tests, whose fixtures are stamped at fixed times years past,
// lengthen it (TestMain).
var newStampLag = gateway.FollowLag

// SetStampLag sets how far behind Redis's clock a write may be stamped
// before its commit is refused as from a clock behind the store's
// (gateway.ErrClockBehind). It is gateway.FollowLag, which keyset paging
// rests on; only tests whose data is stamped at fixed past times (a
// retention period, an export's snapshot) set a longer one.
func (s *Store) SetStampLag(d time.Duration) {
	s.stampLag = d
}

// SetFollowLimits sets how many changed matches of a keyset search's
// snapshot one run places (gateway.MaxChangedFollowed unless set): a
// paging link is stale past them; and how many matches written since the
// snapshot one run looks at (followScan): tests set small ones, to cross
// them quickly. Each is at least 1 (one below is taken as 1): a run given
// none of the followed could never page past one, nor one looking at none
// of those written since ever finish.
func (s *Store) SetFollowLimits(changed, scan int) {
	s.maxChanged, s.followScan = max(changed, 1), max(scan, 1)
}

// SetFollowedBound sets how many changed matches a keyset search that
// keeps what it followed holds ahead of its page
// (gateway.MaxFollowedAhead unless set; at least 1): tests set a small
// one, to cross it quickly.
func (s *Store) SetFollowedBound(n int) {
	s.maxFollowed = max(n, 1)
}

// Client exposes the Redis client, for the workers that share it.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// QueueKey returns the stream key of a job queue.
func (s *Store) QueueKey(name string) string { return s.keys.queue(name) }

// Ping implements gateway.Store.
func (s *Store) Ping(ctx context.Context) error {
	// A small write with a short expiry, not a PING: a Redis at maxmemory
	// (noeviction) still answers PING but refuses every write, and so every
	// referral. One round trip finds out both whether Redis answers and
	// whether it takes writes, without reading maxmemory's accounting.
	return classify(s.rdb.Set(ctx, s.keys.ready(), "1", 10*time.Second).Err())
}

// keyList assigns KEYS positions (1-based, as Lua numbers them).
type keyList struct {
	keys []string
	pos  map[string]int
}

// commitSizes is about how many arguments and keys commit builds for c, so
// that their lists are made once: grown as they went, they were a delivery
// commit's largest allocation (BenchmarkCommitTaskChange).
func commitSizes(c *gateway.Commit, previous [][]string) (args, keys int) {
	args = 24 + 3*len(c.Unique) + 8*len(c.Criteria) + len(c.Systems) + 2*len(c.Unchanged) + 2*auditFieldsGuess
	keys = 4 + 2*len(c.Unique) + 4*len(c.Criteria) + len(c.Jobs) + len(c.Unchanged)
	for i, w := range c.Writes {
		args += 14 + len(w.Terms) + 2*milestonesWritten(w) + milestonesCleared(w)
		keys += 2 + 2*len(w.Terms)
		if i < len(previous) {
			keys += len(previous[i])
		}
	}
	for _, j := range c.Jobs {
		args += 3 + len(j.Fields) + 2*traceFieldsGuess
	}
	return args, keys
}

// auditFieldsGuess and traceFieldsGuess size commit's lists: about the
// name-value pairs of an audit record and of a job's trace context.
const auditFieldsGuess, traceFieldsGuess = 10, 2

func (l *keyList) add(k string) int {
	if l.pos == nil {
		l.pos = map[string]int{}
	}
	if i, ok := l.pos[k]; ok {
		return i
	}
	l.keys = append(l.keys, k)
	l.pos[k] = len(l.keys)
	return len(l.keys)
}

// truncate forgets every key after the first n.
func (l *keyList) truncate(n int) {
	for _, k := range l.keys[n:] {
		delete(l.pos, k)
	}
	l.keys = l.keys[:n]
}

// Commit implements gateway.Store with commit.lua.
func (s *Store) Commit(ctx context.Context, c *gateway.Commit) (*gateway.CommitResult, error) {
	old, err := s.legacyPatients(ctx, c)
	if err != nil {
		return nil, err
	}
	if held, err := s.heldInLegacy(ctx, c, old); held != nil || err != nil {
		return held, err
	}
	token := randomToken()
	for range maxRereads {
		previous, err := s.previousTerms(ctx, c, old)
		if err != nil {
			return nil, classify(err)
		}
		s.raced()
		res, err := s.commit(ctx, c, token, previous, old)
		if !errors.Is(err, errChanged) {
			return res, err
		}
	}
	return nil, fmt.Errorf("committing a change: %w", ErrKeptChanging)
}

// errChanged is commit.lua's answer when a resource's index entries are no
// longer those read for it: nothing was written, and the commit reads them
// again.
var errChanged = errors.New("redisstore: index entries changed since read")

// previousTerms reads, for each write that may replace a version (an
// update: Expect is not 0), the index entries its current version is
// found under, which the new version's write removes: commit.lua takes
// them in KEYS, like every key it touches, and checks they are still the
// ones stored. A create (Expect 0) replaces nothing and costs no read, so
// a new referral's commit stays one round trip.
func (s *Store) previousTerms(ctx context.Context, c *gateway.Commit, old map[string]bool) ([][]string, error) {
	var cmds []*redis.StringCmd
	var at []int
	for i, w := range c.Writes {
		if w.Expect != 0 {
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return nil, nil
	}
	out := make([][]string, len(c.Writes))
	// The entries of a version this process just read need no read: a
	// write expecting that version replaces it.
	unknown := at[:0:0]
	for _, i := range at {
		w := c.Writes[i]
		if x, ok := s.indexed.take(s.in(s.writtenIn(w.Resource.ID, old)).resource(w.Resource.Type, w.Resource.ID), w.Expect); ok {
			out[i] = splitEntries(x)
		} else {
			unknown = append(unknown, i)
		}
	}
	if len(unknown) == 0 {
		return out, nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, i := range unknown {
			r := c.Writes[i].Resource
			cmds = append(cmds, p.HGet(ctx, s.in(s.writtenIn(r.ID, old)).resource(r.Type, r.ID), "x"))
		}
		return nil
	})
	if err := readsFailed(err, cmds); err != nil {
		return nil, err
	}
	for k, i := range unknown {
		out[i] = splitEntries(cmds[k].Val())
	}
	return out, nil
}

// splitEntries splits a hash's "x" into its index keys (none for "").
func splitEntries(x string) []string {
	if x == "" {
		return nil
	}
	return strings.Split(x, "\n")
}

// commit runs commit.lua under a random token, the commit's identity: a
// commit that go-redis re-sends after a lost reply is recognised by the
// script (its token is on its first write) and not applied twice.
// previous holds, per write, the index entries read for its current
// version (nil: none); old the Patients it writes that are held in legacy
// (legacyPatients).
func (s *Store) commit(ctx context.Context, c *gateway.Commit, token string, previous [][]string, old map[string]bool) (*gateway.CommitResult, error) {
	part, err := s.commitPartition(c, old)
	if err != nil {
		return nil, err
	}
	k := s.in(part)
	nArgs, nKeys := commitSizes(c, previous)
	kl := keyList{keys: make([]string, 0, nKeys)}
	// The argument list commit.lua reads in order; see the script's header.
	args := make([]any, 0, nArgs)
	guard := ""
	if c.SystemsSeen != nil {
		guard = strconv.FormatInt(*c.SystemsSeen, 10)
		if s.spread {
			var changed bool
			if guard, changed, err = s.partitionGuard(ctx, part, *c.SystemsSeen); err != nil || changed {
				return &gateway.CommitResult{SystemsChanged: changed}, err
			}
		}
	}
	limits, over, err := s.capsLeft(ctx, part, c.Criteria)
	if err != nil || over {
		return &gateway.CommitResult{OverLimit: over}, err
	}
	register, refused := c.Systems, []string(nil)
	if part != legacy && len(c.Systems) > 0 {
		// After the guard: what this adds is for the commit's own writes,
		// which its criteria do not look for.
		if register, refused, err = s.registerShared(ctx, c.Systems); err != nil {
			return nil, err
		}
	}
	args = append(args, token, kl.add(k.systems()), guard, s.maxSystems, k.termPrefix(), maxRegistryFields, s.stampLag.Milliseconds())
	args = append(args, len(c.Unique))
	for _, u := range c.Unique {
		of := 0
		if u.Of != "" {
			of = kl.add(k.claimedFor(u.Of))
		}
		args = append(args, kl.add(k.unique(u.Key)), u.Value, of)
	}
	criteria, limits := distinctCaps(c.Criteria, limits)
	args = append(args, len(criteria))
	for i, cr := range criteria {
		groups, temps := groupKeys(k, &kl, cr.Type, cr.Groups, token+"c"+strconv.Itoa(i))
		args = append(countedGroups(args, groups, temps), limits[i])
	}
	// The systems the writes are indexed under: a term of one of them has a
	// bare entry too, used if its system is over the cap.
	systems := make(map[string]bool, len(c.Systems))
	for _, f := range c.Systems {
		systems[f] = true
	}
	args = append(args, len(c.Writes))
	for i, w := range c.Writes {
		r := w.Resource
		key, all := kl.add(k.resource(r.Type, r.ID)), kl.add(k.all(r.Type))
		// A write's terms are one run of KEYS, named by where it starts (a
		// key two writes share is listed twice).
		first := len(kl.keys) + 1
		args = append(args, key, r.ID, r.Owner, w.Expect, r.Version, r.LastUpdated.UnixMilli(), r.Body, all, first, len(w.Terms))
		for _, t := range w.Terms {
			kl.keys = append(kl.keys, k.term(r.Type, t))
		}
		for _, t := range w.Terms {
			bare := 0
			if field, code, ok := systemTerm(r.Type, t); ok && systems[field] {
				bare = kl.add(k.term(r.Type, code))
			}
			args = append(args, bare)
		}
		// The current version's entries, one run of KEYS, to remove.
		var old []string
		if i < len(previous) {
			old = previous[i]
		}
		args = append(args, len(kl.keys)+1, len(old))
		kl.keys = append(kl.keys, old...)
		args = appendMilestones(args, w)
	}
	entries := len(c.Jobs)
	if c.Audit != nil {
		entries++
	}
	args = append(args, entries)
	// Every job carries the trace of the change that made it, so the worker
	// handling it continues that trace.
	trace := telemetry.TraceFields(ctx)
	for _, j := range c.Jobs {
		stream := k.queue(j.Queue)
		onlyIf := 0
		if t := j.OnlyIfAny; t != nil && !s.spread {
			// Decided in the script only where its key shares the
			// stream's slot (always on one Redis); elsewhere queued. A
			// store that spreads always queues it: the resources carrying
			// the term (a client's subscriptions) may be in any partition,
			// and the commit's sees only its own.
			if key := k.term(t.Type, t.Term); sameSlot(key, stream) {
				onlyIf = kl.add(key)
			}
		}
		args = append(args, kl.add(stream), onlyIf, len(j.Fields)/2+len(trace))
		for _, f := range j.Fields {
			args = append(args, f)
		}
		for name, v := range trace {
			args = append(args, name, v)
		}
	}
	// The audit record is one more stream entry of the same step (the
	// script writes stream entries alike), so the change is never stored
	// without it.
	if c.Audit != nil {
		fields := c.Audit.Fields()
		args = append(args, kl.add(k.audit()), 0, len(fields)/2)
		for _, f := range fields {
			args = append(args, f)
		}
	}
	if d := c.Done; d != nil {
		args = append(args, 1, kl.add(k.queue(d.Queue)), gateway.WorkerGroup, d.ID, d.Consumer)
	} else {
		args = append(args, 0)
	}
	args = append(args, len(register))
	for _, f := range register {
		args = append(args, f)
	}
	args = append(args, len(refused))
	for _, f := range refused {
		args = append(args, f)
	}
	// Last before the script: what another partition holds is read as
	// close to the commit as this process can.
	unchanged, moved, err := s.unchangedElsewhere(ctx, part, c.Unchanged, old)
	if err != nil || moved {
		return &gateway.CommitResult{ReadChanged: moved}, err
	}
	args = append(args, len(unchanged))
	for _, r := range unchanged {
		args = append(args, kl.add(k.resource(r.Type, r.ID)), r.Version)
	}
	reply, err := s.runCommit(ctx, kl.keys, args)
	if err != nil {
		return nil, classify(err)
	}
	res := &gateway.CommitResult{}
	switch reply[0] {
	case "ok", "done":
	case "lost":
		res.Lost = true
	case "held":
		res.Held = &gateway.UniqueHit{Index: int(reply[1].(int64)), Holder: reply[2].(string)}
	case "matched":
		for _, id := range reply[1:] {
			res.Matched = append(res.Matched, id.(string))
		}
	case "stale":
		res.Stale = &gateway.StaleWrite{Index: int(reply[1].(int64)), Current: int(reply[2].(int64))}
	case "systems":
		res.SystemsChanged = true
	case "limit":
		res.OverLimit = true
	case "read":
		res.ReadChanged = true
	case "behind":
		res.StampedBehind = true
	case "changed":
		return nil, errChanged
	case "clock":
		return nil, clockBehind(c.Writes[reply[1].(int64)].Resource, reply[2].(int64), s.stampLag)
	default:
		return nil, fmt.Errorf("commit.lua: unexpected reply %v", reply[0])
	}
	return res, nil
}

// clockBehind is commit.lua's refusal of a version r stamped more than lag
// before redisNow (ms), Redis's clock, as the error operators read: how far
// behind, and what to check. It names the type, never the resource.
func clockBehind(r *gateway.Resource, redisNow int64, lag time.Duration) error {
	behind := time.Duration(redisNow-r.LastUpdated.UnixMilli()) * time.Millisecond
	return fmt.Errorf("%w: a %s version stamped %s was refused, %s behind Redis's clock, which is more than the %s a write may land after its stamp; check this host's clock and its time synchronisation (NTP)",
		gateway.ErrClockBehind, r.Type, r.LastUpdated.UTC().Format(time.RFC3339Nano), behind, lag)
}

// WaitForReplicas makes every commit and audit record wait, before its
// caller is answered, until at least n replicas have it (Redis WAIT), for
// at most within; one that does not get there in time is answered as
// Redis unavailable (503), never as stored. 0 turns it off.
func (s *Store) WaitForReplicas(n int, within time.Duration) {
	s.batch.replicas, s.batch.replicaWait = n, within
}

// runCommit runs commit.lua in the next pipeline of the commit batcher
// (batch.go).
func (s *Store) runCommit(ctx context.Context, keys []string, args []any) ([]any, error) {
	cmd, err := s.batch.runScript(ctx, commitScript, keys, args)
	if err != nil {
		return nil, err
	}
	return cmd.Slice()
}

// TokenSystems implements gateway.Store. A store that spreads referrals
// has a registry in each partition (a commit registers the systems of its
// writes in its own): the systems are all of theirs, the generation the
// sum of theirs, which grows whenever any of them does.
func (s *Store) TokenSystems(ctx context.Context) ([]string, int64, error) {
	parts := s.partitionsInUse()
	cmds := make([]*redis.MapStringStringCmd, len(parts))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, part := range parts {
			cmds[i] = p.HGetAll(ctx, s.in(part).systems())
		}
		return nil
	})
	if err != nil {
		return nil, 0, classify(err)
	}
	var gen int64
	seen := map[string]bool{}
	var out []string
	for _, c := range cmds {
		m := c.Val()
		g, _ := strconv.ParseInt(m[systemsGeneration], 10, 64)
		gen += g
		for f := range m {
			if !strings.HasPrefix(f, systemsGeneration) && !seen[f] { // the generation and the per-parameter counts
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	if out == nil {
		out = []string{}
	}
	return out, gen, nil
}

// systemTerm splits a token term ("index=system|code") into the registry
// field of its system ("Type index system") and its bare term
// ("index=code"); false for a term with no system, or whose code holds a
// '|' (bare, it would read as another system's code). The system ends at
// the first '|', as the gateway registers it.
func systemTerm(typ, term string) (field, bare string, ok bool) {
	bar := strings.IndexByte(term, '|')
	if bar < 0 || strings.IndexByte(term[bar+1:], '|') >= 0 {
		return "", "", false
	}
	eq := strings.IndexByte(term[:bar], '=')
	if eq < 0 {
		return "", "", false
	}
	return typ + " " + term[:eq] + " " + term[eq+1:bar], term[:eq+1] + term[bar+1:], true
}

// systemsGeneration is the field of the systems hash that counts additions;
// "#Type index" counts one parameter's systems.
const systemsGeneration = "#"

// intersectionTemps adds the scratch key lib.lua's resolve needs to
// intersect groups.
func intersectionTemps(k keys, kl *keyList, token string, temps []int) []int {
	return append(temps, kl.add(k.temp(token, len(temps))))
}

// groupKeys turns index-term groups into KEYS positions, in partition k,
// and the scratch keys the script needs to combine them (lib.lua's
// resolve: for each group of several sets, one for the union and one for
// each set narrowed by a smaller set; then one for the intersection).
func groupKeys(k keys, kl *keyList, typ string, groups [][]string, token string) ([][]int, []int) {
	out := make([][]int, 0, len(groups))
	var temps []int
	for _, g := range groups {
		idx := make([]int, 0, len(g))
		for _, t := range g {
			idx = append(idx, kl.add(k.term(typ, t)))
		}
		out = append(out, idx)
		if len(g) > 1 {
			for range 1 + len(g) {
				temps = append(temps, kl.add(k.temp(token, len(temps))))
			}
		}
	}
	if len(out) > 1 {
		temps = intersectionTemps(k, kl, token, temps)
	}
	if temps == nil {
		temps = []int{}
	}
	return out, temps
}

// Search implements gateway.Store with search.lua. A store that spreads
// referrals runs it in every partition (search.go); otherwise once.
//
// A keyset page whose runs were not given every match followed ahead of
// its start (searchRun.passed) may end short, before the first they were
// not given; it is read on from where it is complete (the part's
// through), so a page is short of q.Count only at the end of the matches,
// as callers take it.
func (s *Store) Search(ctx context.Context, q *gateway.StoreQuery) ([]string, int, error) {
	ids, total, through, err := s.searchPart(ctx, q)
	for err == nil && through != nil && len(ids) < q.Count {
		ks := q.Keyset
		rest := *q
		rest.Count = q.Count - len(ids)
		rest.Keyset = &gateway.Keyset{Snapshot: ks.Snapshot, After: through, Followed: ks.Followed}
		var more []string
		more, total, through, err = s.searchPart(ctx, &rest)
		ids = append(ids, more...)
		ks.Positions = append(ks.Positions, rest.Keyset.Positions...)
	}
	if err != nil {
		return nil, 0, err
	}
	return ids, total, nil
}

// searchPart reads a page, or for keyset paging the part of it up to the
// first followed match its runs were not given (endPart): then through is
// where the next part starts after, and nil when the page is whole.
func (s *Store) searchPart(ctx context.Context, q *gateway.StoreQuery) ([]string, int, *gateway.Position, error) {
	if s.spread {
		return s.searchEverywhere(ctx, q)
	}
	run := s.searchRun(s.keys, q, q.Offset, q.Count)
	for {
		reply, err := searchScript.Run(ctx, s.rdb, run.kl.keys, run.argv()...).Slice()
		if err != nil {
			return nil, 0, nil, classify(err)
		}
		again, err := run.answered(reply)
		if err != nil {
			return nil, 0, nil, err
		}
		if !again {
			ids, total, err := searchPage(run.reply, q.Keyset)
			if err != nil {
				return nil, 0, nil, err
			}
			ids, through := endPart(ids, q, []*searchRun{run})
			return ids, total, through, nil
		}
		s.raced()
	}
}

// searchRun is search.lua's run in one partition: its keys and arguments,
// what it learnt of the matches written since the snapshot, the hashes of
// those it asked for so far, and its answer.
type searchRun struct {
	k    keys
	kl   keyList
	args []any
	// Keyset paging places each match written since the snapshot by its
	// versions' times, in its hash. Which matches those are is known only
	// once the script has combined the index sets, so the script names the
	// ones it needs and is run again with their hashes in KEYS ('need');
	// pages with no match written since the snapshot, and first pages,
	// take one run. It looks at a bounded number of them a run; when there
	// are more it answers 'more', with what it learnt of these (recorded
	// in followed), and is run again for the next ones.
	typ      string
	followed *gateway.FollowedPlace // nil when not paging by keyset
	// kept is the caller's record of every place (nil for a paging link,
	// whose record lasts one page), which holds at most maxKept.
	kept    *gateway.Followed
	maxKept int
	// Each run is given at most window of the followed matches, those
	// placed nearest after the page's start (after), in its order (desc),
	// and those it named (named: followed already, written again since,
	// so not placed again; with their positions, which stay the run's to
	// give though the record forgets them once the page passes them).
	// bound is the nearest it was not given (nil: it was given all),
	// through the farthest of the window: the page holds what comes before
	// bound only (endPart).
	after          *gateway.Position
	desc           bool
	window         int
	named          []gateway.Position
	bound, through *gateway.Position
	// seen is how far this page's runs looked at matches written since
	// the snapshot (from followed.Seen); followed.Seen moves on with it
	// only as far as writes had settled when the page's first run began
	// (started, less gateway.FollowLag): a write landing while its runs
	// go on, however long they take, may be stamped up to FollowLag
	// before it lands, behind where a later run looked from.
	seen    int64
	started time.Time
	// upto fixes a page whose first run found every match written since
	// the snapshot up to a score ("" if not fixed): its later runs look no
	// further, so matches created between them wait for the next page and
	// the runs converge however many are created meanwhile. pinned is the
	// matches the page's first run read from the index (member, score,
	// ...), given to its later runs, which read the index no more: one
	// written again between them stays in the page, even when stamped
	// behind where they look on from (seen).
	upto   string
	pinned []any
	// stop is where a run that named matches having looked at only some
	// of those written since the snapshot stopped ("" if none): the next
	// looks no further, so changes between them let no others in.
	stop   string
	known  []string // members whose hashes are in KEYS, in order
	hashes []int    // their KEYS indices
	kl0    int      // how many KEYS precede the hashes
	needs  int      // 'need' answers since the last progress
	reply  []any    // the page, once answered
}

// argv is the run's arguments with what it learnt and the hashes known so
// far.
func (r *searchRun) argv() []any {
	run := r.args[:len(r.args):len(r.args)]
	if f := r.followed; f != nil {
		seen := ""
		if r.seen > 0 {
			seen = strconv.FormatInt(r.seen, 10)
		}
		run = append(run, seen, r.upto, r.stop, len(r.pinned)/2)
		run = append(run, r.pinned...)
		passed := r.passed()
		run = append(run, len(passed))
		for _, p := range passed {
			run = append(run, p.ID, p.Score)
		}
	} else {
		run = append(run, "", "", "", 0, 0)
	}
	run = append(run, len(r.known))
	for i, m := range r.known {
		run = append(run, m, r.hashes[i])
	}
	return run
}

// answered takes the script's reply: true when it is to run again (it
// named hashes it needs, or looked at all it may in one run),
// ErrSnapshotStale when too many matches changed, or kept changing
// between runs.
func (r *searchRun) answered(reply []any) (bool, error) {
	switch word, _ := reply[0].(string); word {
	case "stale":
		return false, gateway.ErrSnapshotStale
	case "need":
		// Once the page is fixed (upto), or the run stopped (stop), only
		// writes landing late within it are named in turn; if they keep
		// coming, the client starts its search again.
		if r.needs++; r.needs == maxRereads {
			return false, gateway.ErrSnapshotStale
		}
		names, _ := reply[1].([]any)
		for _, m := range names {
			member, _ := m.(string)
			if score, ok := r.followed.Changed[member]; ok {
				r.named = append(r.named, gateway.Position{Score: score, ID: member})
				continue
			}
			r.known = append(r.known, member)
			r.hashes = append(r.hashes, r.kl.add(r.k.resource(r.typ, member)))
		}
		r.upto = fmt.Sprint(reply[2])
		r.pinned, _ = reply[3].([]any)
		r.stop = fmt.Sprint(reply[4])
		return true, nil
	case "more":
		learnt, _ := reply[1].([]any)
		if err := r.learn(learnt, false); err != nil {
			return false, err
		}
		// What was looked at needs no hash any more: the next run's KEYS
		// hold the next ones' only. It looks on from seen, so it is given
		// what was read from the index: a match written again, late,
		// behind seen is then still in the page.
		r.kl.truncate(r.kl0)
		r.known, r.hashes, r.named, r.needs = nil, nil, nil, 0
		r.upto, r.stop = "", ""
		r.pinned, _ = reply[2].([]any)
		return true, nil
	}
	r.reply = reply
	if r.followed != nil && len(reply) > 3 {
		learnt, _ := reply[3].([]any)
		return false, r.learn(learnt, true)
	}
	return false, nil
}

// learn records search.lua's {seen, member, score, ...}; last: the page's
// last run, whose seen is kept for the next page only as far as writes
// had settled when the page began (searchRun.started). A match placed
// behind the page's start is not kept (forgetPassed); past maxKept ahead
// the search fails (gateway.ErrTooManyFollowed).
func (r *searchRun) learn(learnt []any, last bool) error {
	if len(learnt) == 0 {
		return nil
	}
	f := r.followed
	seen, err := strconv.ParseInt(fmt.Sprint(learnt[0]), 10, 64)
	if err != nil {
		return err
	}
	r.seen = max(r.seen, seen)
	if last {
		f.Seen = max(f.Seen, min(r.seen, r.started.Add(-gateway.FollowLag).UnixMilli()))
	}
	var fresh []gateway.Position
	for i := 1; i+1 < len(learnt); i += 2 {
		score, err := strconv.ParseInt(fmt.Sprint(learnt[i+1]), 10, 64)
		if err != nil {
			return err
		}
		p := gateway.Position{Score: score, ID: fmt.Sprint(learnt[i])}
		if r.after != nil && inOrder(p, *r.after, r.desc) <= 0 {
			continue // returned already, or in no page: never given to a run
		}
		if _, ok := f.Changed[p.ID]; !ok {
			fresh = append(fresh, p)
		}
		f.Changed[p.ID] = score
	}
	f.Ahead = mergeInOrder(f.Ahead, fresh, r.desc)
	if r.kept != nil && r.kept.Kept() > r.maxKept {
		return gateway.ErrTooManyFollowed
	}
	return nil
}

// searchRun prepares search.lua's run of q in the partition whose keys
// are k, for the page at offset of count matches (paging by offset).
func (s *Store) searchRun(k keys, q *gateway.StoreQuery, offset, count int) *searchRun {
	r := &searchRun{k: k, typ: q.Type, started: s.now()}
	kl := &r.kl
	all := kl.add(k.all(q.Type))
	token := randomToken()
	// _id groups are answered from the all-set: each becomes a scratch set
	// of the ids that exist, intersected like any other group.
	var termGroups [][]string
	type idGroup struct {
		T   int // the scratch key's KEYS index
		IDs []string
	}
	idGroups := []idGroup{}
	for _, g := range q.Groups {
		if !isIDGroup(g) {
			termGroups = append(termGroups, g)
			continue
		}
		ids := make([]string, len(g))
		for i, t := range g {
			ids[i] = strings.TrimPrefix(t, gateway.IDTermPrefix)
		}
		idGroups = append(idGroups, idGroup{T: kl.add(k.temp(token+"id", len(idGroups))), IDs: ids})
	}
	groups, temps := groupKeys(k, kl, q.Type, termGroups, token)
	for _, g := range idGroups {
		groups = append(groups, []int{g.T}) // its scratch key is deleted by search.lua itself
	}
	if len(groups) > 1 && len(termGroups) <= 1 {
		// groupKeys adds the scratch keys for intersecting only when it
		// sees several groups itself.
		temps = intersectionTemps(k, kl, token, temps)
	}
	minScore, maxScore := "-inf", "+inf"
	if !q.Since.IsZero() {
		minScore = strconv.FormatInt(q.Since.UnixMilli(), 10)
	}
	if !q.Until.IsZero() {
		maxScore = "(" + strconv.FormatInt(q.Until.UnixMilli(), 10)
	}
	// The arguments in search.lua's order (see its header).
	args := []any{all, minScore, maxScore, offset, count, flag(q.Descending), flag(q.Keyset != nil)}
	if ks := q.Keyset; ks != nil {
		lo, hi, afterScore, afterID := "", "", "", ""
		if !q.Since.IsZero() {
			lo = strconv.FormatInt(q.Since.UnixMilli(), 10)
		}
		if !q.Until.IsZero() {
			hi = strconv.FormatInt(q.Until.UnixMilli(), 10)
		}
		if ks.After != nil {
			afterScore, afterID = strconv.FormatInt(ks.After.Score, 10), ks.After.ID
		}
		// A caller that keeps what was followed has each match written
		// since the snapshot looked at once, s.followScan a run, and each
		// run given s.maxChanged of the changed ones (searchRun.passed); a
		// paging link, which keeps none, every one on each page, all in
		// one look.
		scan, limited := s.followScan, 0
		if ks.Followed != nil {
			r.followed = ks.Followed.Place(k.ns)
			r.seen = r.followed.Seen
			r.kept, r.maxKept = ks.Followed, s.maxFollowed
		} else {
			r.followed = &gateway.FollowedPlace{Changed: map[string]int64{}}
			scan, limited = s.maxChanged+1, 1
		}
		r.after, r.desc, r.window = ks.After, q.Descending, s.maxChanged
		args = append(args, ks.Snapshot.UnixMilli(), lo, hi, afterScore, afterID, scan, limited)
	} else {
		args = append(args, 0, "", "", "", "", 0, 0)
	}
	args = countedGroups(args, groups, temps)
	args = append(args, len(idGroups))
	for _, g := range idGroups {
		args = append(args, g.T, len(g.IDs))
		for _, id := range g.IDs {
			args = append(args, id)
		}
	}
	r.args = args
	r.kl0 = len(kl.keys)
	return r
}

// searchPage reads search.lua's page: the total, the ids, and, for keyset
// paging, their positions (into ks).
func searchPage(reply []any, ks *gateway.Keyset) ([]string, int, error) {
	total := int(reply[0].(int64))
	raw, _ := reply[1].([]any)
	ids := make([]string, 0, len(raw))
	for _, id := range raw {
		ids = append(ids, id.(string))
	}
	if ks != nil {
		scores, _ := reply[2].([]any)
		ks.Positions = make([]gateway.Position, len(ids))
		for i := range ids {
			n, err := strconv.ParseInt(scores[i].(string), 10, 64)
			if err != nil {
				return nil, 0, err
			}
			ks.Positions[i] = gateway.Position{Score: n, ID: ids[i]}
		}
	}
	return ids, total, nil
}

func isIDGroup(g []string) bool {
	for _, t := range g {
		if !strings.HasPrefix(t, gateway.IDTermPrefix) {
			return false
		}
	}
	return len(g) > 0
}

// Read implements gateway.Store.
func (s *Store) Read(ctx context.Context, typ, id string) (*gateway.Resource, error) {
	return s.readOne(ctx, typ, id, "")
}

// ReadVersion implements gateway.Store.
func (s *Store) ReadVersion(ctx context.Context, typ, id string, version int) (*gateway.Resource, error) {
	return s.readOne(ctx, typ, id, strconv.Itoa(version))
}

func (s *Store) readOne(ctx context.Context, typ, id, version string) (*gateway.Resource, error) {
	got, err := s.read(ctx, []string{typ + "/" + id}, []any{version}, version == "")
	if err != nil {
		return nil, err
	}
	if got[0] == nil {
		return nil, gateway.ErrNotFound
	}
	return got[0], nil
}

// ReadMany implements gateway.Store.
func (s *Store) ReadMany(ctx context.Context, refs []string) ([]*gateway.Resource, error) {
	versions := make([]any, len(refs))
	for i := range versions {
		versions[i] = ""
	}
	got, err := s.read(ctx, refs, versions, false)
	if err != nil {
		return nil, err
	}
	out := got[:0]
	for _, r := range got {
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// read reads refs with read.lua, one run per partition they are in (a
// script's keys must share a slot), pipelined: each run still reads its
// resources consistently, as one read did before partitions. withEntries
// reads the index entries of current versions too, remembered for the
// commit replacing them (s.indexed): Read's, a resource about to change
// (a Task a delivery records), not a page of resources.
func (s *Store) read(ctx context.Context, refs []string, versions []any, withEntries bool) ([]*gateway.Resource, error) {
	type run struct {
		at   []int // indices into refs
		keys []string
		args []any
		cmd  *redis.Cmd
		// fallback: the run reads legacy for Patients placed elsewhere
		// (mayBeInLegacy), taken only where their place holds nothing.
		fallback bool
	}
	var runs []*run
	byPartition := map[partition]*run{}
	var fallback *run
	for i, ref := range refs {
		typ, id, _ := strings.Cut(ref, "/")
		p := s.partitionOf(id)
		r := byPartition[p]
		if r == nil {
			r = &run{args: []any{0}}
			byPartition[p] = r
			runs = append(runs, r)
		}
		r.at = append(r.at, i)
		r.keys = append(r.keys, s.in(p).resource(typ, id))
		r.args = append(r.args, versions[i])
		if typ == gateway.TypePatient && s.mayBeInLegacy(id) {
			if fallback == nil {
				fallback = &run{args: []any{0}, fallback: true}
			}
			fallback.at = append(fallback.at, i)
			fallback.keys = append(fallback.keys, s.keys.resource(typ, id))
			fallback.args = append(fallback.args, versions[i])
		}
	}
	if fallback != nil {
		runs = append(runs, fallback) // last, so its answers come after their places'
	}
	flag := "0"
	if withEntries {
		flag = "1"
	}
	for _, r := range runs {
		r.args[0] = len(r.keys)
		r.args = append(r.args, flag)
	}
	out := make([]*gateway.Resource, len(refs))
	if len(runs) == 0 {
		return out, nil
	}
	if len(runs) == 1 { // the usual case: one script, sent with other callers' reads
		r := runs[0]
		var err error
		if r.cmd, err = s.reads.runScript(ctx, readScript, r.keys, r.args); err != nil {
			return nil, classify(err) // r.cmd is not to be read: a caller gone may leave it in flight
		}
	} else {
		// One run per partition, in one pipeline (NOSCRIPT handled there).
		keys, args := make([][]string, len(runs)), make([][]any, len(runs))
		for i, r := range runs {
			keys[i], args[i] = r.keys, r.args
		}
		cmds, err := s.scriptPipelined(ctx, readScript, keys, args)
		if err != nil {
			return nil, err
		}
		for i, r := range runs {
			r.cmd = cmds[i]
		}
	}
	for _, r := range runs {
		reply, err := r.cmd.Slice()
		if err != nil {
			return nil, classify(err)
		}
		for k, item := range reply {
			fields, ok := item.([]any)
			if !ok || (r.fallback && out[r.at[k]] != nil) {
				continue
			}
			i := r.at[k]
			typ, id, _ := strings.Cut(refs[i], "/")
			out[i] = &gateway.Resource{Type: typ, ID: id, Version: int(fields[0].(int64)),
				LastUpdated: time.UnixMilli(fields[1].(int64)).UTC(), Body: []byte(fields[2].(string)), Owner: fields[3].(string)}
			if len(fields) > 4 {
				s.indexed.remember(r.keys[k], out[i].Version, fields[4].(string))
			}
		}
	}
	return out, nil
}

// Lookup implements gateway.Store (LookupMany of one key).
func (s *Store) Lookup(ctx context.Context, key string) (string, error) {
	if !s.spread {
		v, err := s.rdb.Get(ctx, s.keys.unique(key)).Result()
		if errors.Is(err, redis.Nil) {
			return "", nil
		}
		return v, classify(err)
	}
	held, err := s.LookupMany(ctx, []string{key})
	if err != nil {
		return "", err
	}
	return held[0], nil
}

// LookupMany implements gateway.Store: one pipeline of GETs. A unique key
// is claimed in the partition of the referral that claims it; a store
// that spreads looks for each in every partition (a GET each), legacy
// first, and a repeat finds it where its first commit put it. A key named
// twice is read once. The pipeline is as long as the keys a request may
// carry allow (conform's bounds: a transaction's entries, each with its
// identifiers), a GET a key for each partition in use on a spreading
// store (17): small reads, which a cluster client splits per primary and
// sends in parallel.
func (s *Store) LookupMany(ctx context.Context, keys []string) ([]string, error) {
	out := make([]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	parts := s.partitionsInUse()
	at := make(map[string]int, len(keys)) // each distinct key's first GET
	var cmds []*redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range keys {
			if _, ok := at[key]; ok {
				continue
			}
			at[key] = len(cmds)
			for _, part := range parts {
				cmds = append(cmds, p.Get(ctx, s.in(part).unique(key)))
			}
		}
		return nil
	})
	if err := readsFailed(err, cmds); err != nil {
		return nil, err
	}
	for i, key := range keys {
		for _, c := range cmds[at[key] : at[key]+len(parts)] {
			if v := c.Val(); v != "" {
				out[i] = v
				break
			}
		}
	}
	return out, nil
}

// distinctCaps are the criteria a commit's script checks, with their
// limits: each cap (a Limit above 0) once for all those with the same
// criteria (Criteria.Key), with the smallest of their limits, at the place
// of the first; a conditional create's as it is. Caps with the same
// criteria count the same matches, and a commit over any of them is over
// the smallest (OverLimit says no more): a transaction making many
// Subscriptions carries its client's cap once for each, and a referral's
// consent check a count for each of a patient's referrals, which the
// script counted (union, intersection, range) one by one, holding Redis
// for each.
func distinctCaps(criteria []gateway.Criteria, limits []int) ([]gateway.Criteria, []int) {
	var out []gateway.Criteria
	var outLimits []int
	at := map[string]int{}
	for i, cr := range criteria {
		if cr.Limit <= 0 {
			out, outLimits = append(out, cr), append(outLimits, limits[i])
			continue
		}
		key := cr.Key()
		if n, ok := at[key]; ok {
			outLimits[n] = min(outLimits[n], limits[i])
			continue
		}
		at[key] = len(out)
		out, outLimits = append(out, cr), append(outLimits, limits[i])
	}
	return out, outLimits
}

// commitPartition is the partition a commit's keys are in: that of its
// writes' resources, or, for a commit that writes none, of the resource
// its first unique key is filed under (legacy if none). A commit whose
// resources are in different partitions cannot be one script in one slot:
// it is refused, changing nothing (the gateway places a change's new
// resources beside the ones it changes, so it never asks for one). old
// are the Patients it writes held in legacy (legacyPatients).
func (s *Store) commitPartition(c *gateway.Commit, old map[string]bool) (partition, error) {
	if !s.spread {
		return legacy, nil
	}
	part, set := legacy, false
	for _, w := range c.Writes {
		p := s.writtenIn(w.Resource.ID, old)
		if set && p != part {
			// The resource's type only: an id can be a GP system's choice
			// (a Patient's, an NHS number even), and this text is logged.
			return legacy, fmt.Errorf("%w: a %s is in partition %d, the commit's other writes in %d", ErrSpansPartitions, w.Resource.Type, p, part)
		}
		part, set = p, true
	}
	if d := c.Done; d != nil {
		// The job is finished in its queue's partition, which is its
		// referral's: the commit that queued it was there.
		p := partitionOfID(d.Place + "x")
		if set && p != part {
			return legacy, fmt.Errorf("%w: the job it finishes is in partition %d, its writes in %d", ErrSpansPartitions, p, part)
		}
		part, set = p, true
	}
	for _, u := range c.Unique {
		if u.Of == "" {
			continue
		}
		p := s.partitionOfRef(u.Of)
		if set && p != part {
			return legacy, fmt.Errorf("%w: a unique key is filed in partition %d, the commit is in %d", ErrSpansPartitions, p, part)
		}
		part, set = p, true
	}
	return part, nil
}

// ErrSpansPartitions is a commit whose resources are in more than one
// partition: it cannot be applied atomically, and nothing was written. A
// transaction whose entries are kept apart (two Patients, each placed by
// its own key) meets it: the answer is 422 with what to do, not a 500.
var ErrSpansPartitions = gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, "",
	"the resources this transaction writes are kept in different parts of this deployment's store, so they cannot be written in one atomic step; nothing was written. Send them in separate requests (a Patient with its own referrals, each referral with its own resources)")

// classify marks the errors worth retrying as gateway.ErrUnavailable: the
// network, timeouts, a Redis that is loading, read-only or failing over,
// and one that refuses Signpost's password (NOAUTH, WRONGPASS: while a
// managed Redis's password is rotated, or until an operator sets the right
// one, nothing was changed and the caller's retry will do). Anything else
// (a script error) is a bug and stays as it is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !isNetError(err) {
		msg := rerr.Error()
		// A script's error carries the refused command's: OOM at its start,
		// or after the script's own prefix.
		if strings.HasPrefix(msg, "OOM ") || strings.Contains(msg, "OOM command not allowed") {
			return fmt.Errorf("%w: %v", gateway.ErrStoreFull, err)
		}
		for _, transient := range []string{"LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "MISCONF", "MOVED", "ASK", "NOAUTH", "WRONGPASS", "NOREPLICAS"} {
			if strings.HasPrefix(msg, transient) {
				return fmt.Errorf("%w: %v", gateway.ErrUnavailable, err)
			}
		}
		return err
	}
	return fmt.Errorf("%w: %v", gateway.ErrUnavailable, err)
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrClosed)
}

// readsFailed is the error of a pipeline of reads (err, what Pipelined
// returned, and its commands), a miss (redis.Nil) being an answer: the
// pipeline reports only its first command's error, which may be a miss
// hiding a later command's failure, so each is asked.
func readsFailed[C redis.Cmder](err error, cmds []C) error {
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return classify(err)
		}
	}
	if !errors.Is(err, redis.Nil) {
		return classify(err) // failed before any command answered
	}
	return nil
}

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func itoa(i int) string { return strconv.Itoa(i) }

// flag is a yes or no as the scripts take it: '1' or '0'.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Histories returns every version of each resource, oldest first (an
// empty list for one not held). A resource's versions live in its one
// hash, so each is read whole in one HGETALL; the reads are pipelined. Its
// size is whatever the resource's writers made it, so nothing serving a
// request or a page reads it: tests do, to see a resource whole (a page
// reads LatestVersions, the outcomes view JourneyRecords).
func (s *Store) Histories(ctx context.Context, typ string, ids []string) ([][]*gateway.Resource, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	// A Patient placed by its key may have been stored in legacy before
	// the store spread: read there too, taken where its place holds none.
	olds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.in(s.partitionOf(id)).resource(typ, id))
		if typ == gateway.TypePatient && s.mayBeInLegacy(id) {
			olds[i] = pipe.HGetAll(ctx, s.keys.resource(typ, id))
		}
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, classify(err)
		}
	}
	out := make([][]*gateway.Resource, len(ids))
	for i, cmd := range cmds {
		h := cmd.Val()
		if len(h) == 0 && olds[i] != nil {
			h = olds[i].Val()
		}
		current, _ := strconv.Atoi(h["v"])
		for v := 1; v <= current; v++ {
			body, ok := h[strconv.Itoa(v)]
			if !ok {
				continue
			}
			ms, _ := strconv.ParseInt(h["t"+strconv.Itoa(v)], 10, 64)
			out[i] = append(out[i], &gateway.Resource{Type: typ, ID: ids[i], Version: v,
				LastUpdated: time.UnixMilli(ms).UTC(), Body: []byte(body), Owner: h["o"]})
		}
	}
	return out, nil
}

// LatestVersions implements gateway.Store with latest.lua: one script on
// the resource's hash, which reads the size of each version before the
// version, so nothing beyond the window leaves Redis.
func (s *Store) LatestVersions(ctx context.Context, typ, id string, w gateway.HistoryWindow) ([]*gateway.Resource, int, error) {
	keys := []string{s.in(s.partitionOf(id)).resource(typ, id)}
	// A Patient placed by its key may have been stored in legacy before
	// the store spread: read there when its place holds none.
	if typ == gateway.TypePatient && s.mayBeInLegacy(id) {
		keys = append(keys, s.keys.resource(typ, id))
	}
	for _, key := range keys {
		cmd, err := s.reads.runScript(ctx, latestScript, []string{key}, []any{max(w.Versions, 0), max(w.Bytes, 0)})
		if err != nil {
			return nil, 0, classify(err)
		}
		reply, err := cmd.Slice()
		if err != nil {
			return nil, 0, classify(err)
		}
		current := int(reply[0].(int64))
		if current == 0 {
			continue
		}
		owner := reply[1].(string)
		rest := reply[2:]
		out := make([]*gateway.Resource, len(rest)/3)
		for i := range out {
			at := rest[len(rest)-3*(i+1):] // the reply is newest first
			out[i] = &gateway.Resource{Type: typ, ID: id, Version: int(at[0].(int64)),
				LastUpdated: time.UnixMilli(at[1].(int64)).UTC(), Body: []byte(at[2].(string)), Owner: owner}
		}
		return out, current, nil
	}
	return nil, 0, nil
}

// countedGroups appends a search's index-set groups and its scratch keys,
// each a position in KEYS, as the scripts take them (scripts.go): the
// count of groups, each group as its count and its positions, then the
// count of scratch keys and their positions.
func countedGroups(args []any, groups [][]int, temps []int) []any {
	args = append(args, len(groups))
	for _, g := range groups {
		args = append(args, len(g))
		for _, k := range g {
			args = append(args, k)
		}
	}
	args = append(args, len(temps))
	for _, k := range temps {
		args = append(args, k)
	}
	return args
}
