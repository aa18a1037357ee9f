package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

func newStore(t *testing.T) (*Store, *redistest.Server) {
	t.Helper()
	r := redistest.Start(t)
	return New(r.Client(), "test"), r
}

func write(typ, id string, version, expect int, terms ...string) gateway.Write {
	return gateway.Write{Resource: &gateway.Resource{Type: typ, ID: id, Version: version, LastUpdated: time.UnixMilli(1_700_000_000_000 + int64(version)),
		Body: []byte(`{"resourceType":"` + typ + `","id":"` + id + `"}`)}, Expect: expect, Terms: terms}
}

// A commit re-sent after a lost reply (same token) is recognised, not
// applied twice: no second job, no second version.
func TestCommitResentIsAppliedOnce(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	c := &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")},
		Jobs: []gateway.Job{{Queue: gateway.QueueDelivery, Fields: []string{"task", "t1"}}}}
	for i := 0; i < 2; i++ {
		res, err := s.commit(ctx, c, "same-token")
		if err != nil || !res.OK() {
			t.Fatalf("attempt %d: %+v %v", i, res, err)
		}
	}
	if n := r.Client().XLen(ctx, s.QueueKey(gateway.QueueDelivery)).Val(); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
	// The same change with other bytes is another commit: its precondition fails.
	other := &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=accepted")}}
	other.Writes[0].Resource.Body = []byte(`{"resourceType":"Task","id":"t1","status":"accepted"}`)
	res, err := s.commit(ctx, other, "other-token")
	if err != nil || res.Stale == nil || res.Stale.Current != 1 {
		t.Errorf("a different change to the same version: %+v %v", res, err)
	}
}

// A failed precondition anywhere leaves everything as it was.
func TestCommitIsAllOrNothing(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	first := &gateway.Commit{Unique: []gateway.UniqueKey{{Key: "k", Value: "ServiceRequest/a"}},
		Writes: []gateway.Write{write("ServiceRequest", "a", 1, 0, "status=active")}}
	if res, err := s.Commit(ctx, first); err != nil || !res.OK() {
		t.Fatal(res, err)
	}
	before := r.Client().Keys(ctx, "*").Val()
	for name, c := range map[string]*gateway.Commit{
		"held unique key": {Unique: []gateway.UniqueKey{{Key: "fresh", Value: "x"}, {Key: "k", Value: "ServiceRequest/b"}},
			Writes: []gateway.Write{write("ServiceRequest", "b", 1, 0, "status=active")},
			Jobs:   []gateway.Job{{Queue: gateway.QueueDelivery, Fields: []string{"a", "b"}}}},
		"stale second write": {Writes: []gateway.Write{write("ServiceRequest", "c", 1, 0, "status=active"), write("ServiceRequest", "a", 2, 5, "status=revoked")},
			Jobs: []gateway.Job{{Queue: gateway.QueueDelivery, Fields: []string{"a", "b"}}}},
		"criteria match": {Criteria: []gateway.Criteria{{Type: "ServiceRequest", Groups: [][]string{{"status=draft", "status=active"}}}},
			Writes: []gateway.Write{write("ServiceRequest", "d", 1, 0, "status=active")}},
	} {
		res, err := s.Commit(ctx, c)
		if err != nil || res.OK() {
			t.Errorf("%s: applied (%+v, %v)", name, res, err)
		}
		after := r.Client().Keys(ctx, "*").Val()
		// Only the commit markers of applied commits may differ; a refused commit writes none.
		if len(after) != len(before) {
			t.Errorf("%s: keys changed from %v to %v", name, before, after)
		}
	}
	// Another commit claiming the key learns who holds it...
	other := &gateway.Commit{Unique: []gateway.UniqueKey{{Key: "k", Value: "ServiceRequest/e"}},
		Writes: []gateway.Write{write("ServiceRequest", "e", 1, 0, "status=active")}}
	if res, _ := s.Commit(ctx, other); res.Held == nil || res.Held.Holder != "ServiceRequest/a" {
		t.Errorf("held key not reported: %+v", res)
	}
	// ...and so does the same change sent as a new commit (another token).
	if res, _ := s.Commit(ctx, first); res.OK() {
		t.Errorf("a second, identical commit was applied: %+v", res)
	}
	// A commit that claims a key twice is refused whole.
	twice := &gateway.Commit{Unique: []gateway.UniqueKey{{Key: "x", Value: "1"}, {Key: "x", Value: "2"}},
		Writes: []gateway.Write{write("ServiceRequest", "f", 1, 0)}}
	if _, err := s.Commit(ctx, twice); err == nil {
		t.Error("a commit claiming one key twice was applied")
	}
}

func TestSearchCombinesGroupsAndOrdersByLastUpdated(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i, w := range []gateway.Write{
		write("Task", "a", 1, 0, "status=requested", "owner=p1"),
		write("Task", "b", 2, 0, "status=accepted", "owner=p1"),
		write("Task", "c", 3, 0, "status=requested", "owner=p2"),
	} {
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatal(i, res, err)
		}
	}
	for _, tc := range []struct {
		groups [][]string
		desc   bool
		want   string
	}{
		{nil, false, "a,b,c"},
		{nil, true, "c,b,a"},
		{[][]string{{"owner=p1"}}, false, "a,b"},
		{[][]string{{"status=requested", "status=accepted"}, {"owner=p1"}}, false, "a,b"},
		{[][]string{{"status=requested"}, {"owner=p2", "owner=p1"}}, false, "a,c"},
		{[][]string{{"status=rejected"}}, false, ""},
	} {
		ids, total, err := s.Search(ctx, &gateway.StoreQuery{Type: "Task", Groups: tc.groups, Count: 10, Descending: tc.desc})
		if err != nil {
			t.Fatal(err)
		}
		if got := join(ids); got != tc.want || total != len(ids) {
			t.Errorf("%v: got %s (total %d), want %s", tc.groups, got, total, tc.want)
		}
	}
	// An update moves a resource between index sets.
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "a", 4, 1, "status=accepted", "owner=p1")}}); err != nil || !res.OK() {
		t.Fatal(res, err)
	}
	ids, _, _ := s.Search(ctx, &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}}, Count: 10})
	if join(ids) != "c" {
		t.Errorf("after update: %v", ids)
	}
	// Scratch keys are gone after every search.
	if keys := s.rdb.Keys(ctx, "{test}:t:*").Val(); len(keys) != 0 {
		t.Errorf("scratch keys left: %v", keys)
	}
	old, err := s.ReadVersion(ctx, "Task", "a", 1)
	if err != nil || old.Version != 1 {
		t.Errorf("version 1 lost: %v %v", old, err)
	}
}

func join(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += id
	}
	return out
}

// A commit's audit record is kept with its change, and only with it: a
// commit that is refused (here, a held key) leaves no record behind.
func TestCommitKeepsItsAuditRecordWithTheChange(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	rec := &gateway.AuditRecord{Recorded: time.UnixMilli(1_700_000_000_000).UTC(), Interaction: "create", Action: "C", Status: 201,
		Client: "practice-a", What: []string{"Task/t1"}}
	c := &gateway.Commit{Unique: []gateway.UniqueKey{{Key: "k", Value: "Task/t1"}},
		Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")}, Audit: rec}
	if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
		t.Fatalf("commit: %+v %v", res, err)
	}
	again := &gateway.Commit{Unique: []gateway.UniqueKey{{Key: "k", Value: "Task/t2"}},
		Writes: []gateway.Write{write("Task", "t2", 1, 0, "status=requested")}, Audit: rec}
	if res, err := s.Commit(ctx, again); err != nil || res.Held == nil {
		t.Fatalf("a commit claiming a held key: %+v %v", res, err)
	}
	tail, err := s.AuditTail(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(tail) != 1 || tail[0].Record.Client != "practice-a" || tail[0].Record.Status != 201 || tail[0].Record.What[0] != "Task/t1" {
		t.Errorf("audit trail %+v, want the one committed record", tail)
	}
}

// The token systems a commit is indexed under are registered once; the
// generation grows only when one is new; a commit whose criteria were
// expanded with an older generation is refused and changes nothing.
func TestTokenSystemsRegistryAndGuard(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	commit := func(id string, seen *int64, systems ...string) *gateway.CommitResult {
		t.Helper()
		res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", id, 1, 0, "status=requested")},
			Systems: systems, SystemsSeen: seen})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	generation := func() int64 {
		t.Helper()
		_, gen, err := s.TokenSystems(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return gen
	}
	if res := commit("t1", nil, "Task identifier https://a.example"); !res.OK() || generation() != 1 {
		t.Fatalf("first system: %+v, generation %d", res, generation())
	}
	if res := commit("t2", nil, "Task identifier https://a.example"); !res.OK() || generation() != 1 {
		t.Fatalf("a known system raised the generation: %+v, %d", res, generation())
	}
	stale := int64(0)
	if res := commit("t3", &stale, "Task identifier https://b.example"); !res.SystemsChanged {
		t.Fatalf("a commit planned at generation 0: %+v, want refused", res)
	}
	if r.Client().Exists(ctx, s.keys.resource("Task", "t3")).Val() != 0 || generation() != 1 {
		t.Fatal("the refused commit changed something")
	}
	current := int64(1)
	if res := commit("t3", &current, "Task identifier https://b.example"); !res.OK() || generation() != 2 {
		t.Fatalf("a commit planned at the current generation: %+v, %d", res, generation())
	}
	if systems, _ := registered(t, s); systems != "Task identifier https://a.example,Task identifier https://b.example" {
		t.Errorf("registered %v", systems)
	}
}

// commitIdentifier commits version of Task id with one identifier,
// system|code, and its system listed as gateway.Service lists it.
func commitIdentifier(t *testing.T, s *Store, id string, version, expect int, system, code string) {
	t.Helper()
	c := &gateway.Commit{Writes: []gateway.Write{write("Task", id, version, expect, "identifier="+system+"|"+code)},
		Systems: []string{"Task identifier " + system}}
	if res, err := s.Commit(context.Background(), c); err != nil || !res.OK() {
		t.Fatalf("%s %s|%s: %+v %v", id, system, code, res, err)
	}
}

// termMembers lists the Task ids indexed under term.
func termMembers(t *testing.T, s *Store, r *redistest.Server, term string) []string {
	t.Helper()
	ids, err := r.Client().ZRange(context.Background(), s.keys.term("Task", term), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// registered lists the registry's systems, sorted, and its generation.
func registered(t *testing.T, s *Store) (string, int64) {
	t.Helper()
	systems, gen, err := s.TokenSystems(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(systems)
	return strings.Join(systems, ","), gen
}

// A parameter registers at most maxSystems systems. A term in a system over
// the cap is indexed under its system and under its bare code (which every
// search without a system reads), and both entries go with the version
// that carried them.
func TestTokenSystemsOverTheCapAreIndexedBare(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	s.maxSystems = 2
	for i, system := range []string{"https://a.example", "https://b.example", "https://c.example"} {
		commitIdentifier(t, s, "t"+strconv.Itoa(i), 1, 0, system, "X")
	}
	if systems, gen := registered(t, s); systems != "Task identifier https://a.example,Task identifier https://b.example" || gen != 2 {
		t.Errorf("registered %v at generation %d, want a and b at 2", systems, gen)
	}
	if got := termMembers(t, s, r, "identifier=https://c.example|X"); !slices.Equal(got, []string{"t2"}) {
		t.Errorf("under its system: %v", got)
	}
	if got := termMembers(t, s, r, "identifier=X"); !slices.Equal(got, []string{"t2"}) {
		t.Errorf("bare: %v, want only the system over the cap", got)
	}

	// The next version carries another value: both entries of the old one go.
	commitIdentifier(t, s, "t2", 2, 1, "https://c.example", "Y")
	if old, bare := termMembers(t, s, r, "identifier=https://c.example|X"), termMembers(t, s, r, "identifier=X"); len(old) != 0 || len(bare) != 0 {
		t.Errorf("the old version's entries stayed: %v, %v", old, bare)
	}
	if got := termMembers(t, s, r, "identifier=Y"); !slices.Equal(got, []string{"t2"}) {
		t.Errorf("the new version's bare entry: %v", got)
	}
}

// A code holding '|' in a system over the cap gets no bare entry: bare, it
// would be another system's code ("https://a.example|Z" under c.example
// would read as Z under a.example).
func TestTokenSystemOverTheCapCannotPoseAsAnotherSystem(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	s.maxSystems = 1
	commitIdentifier(t, s, "t0", 1, 0, "https://a.example", "Z")
	commitIdentifier(t, s, "t1", 1, 0, "https://c.example", "https://a.example|Z")
	if ids := termMembers(t, s, r, "identifier=https://a.example|Z"); !slices.Equal(ids, []string{"t0"}) {
		t.Errorf("Z under a.example finds %v, want only t0", ids)
	}
}

// A registry written before systems were counted is counted the first time
// a parameter meets a new system, so the cap holds there too.
func TestTokenSystemCapCountsAnOlderRegistry(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	s.maxSystems = 2
	ctx := context.Background()
	if err := r.Client().HSet(ctx, s.keys.systems(), "Task identifier https://a.example", "1",
		"Task identifier https://b.example", "1", "Task code http://snomed.info/sct", "1", "#", "2").Err(); err != nil {
		t.Fatal(err)
	}
	commitIdentifier(t, s, "t1", 1, 0, "https://c.example", "X")
	if systems, gen := registered(t, s); strings.Contains(systems, "https://c.example") || gen != 2 {
		t.Errorf("registered %v at generation %d: a third identifier system, over the cap of 2", systems, gen)
	}
	if n, _ := r.Client().HGet(ctx, s.keys.systems(), "#Task identifier").Int(); n != 2 {
		t.Errorf("counted %d identifier systems, want 2", n)
	}
	if got := termMembers(t, s, r, "identifier=X"); len(got) != 1 {
		t.Errorf("bare entries: %v, want 1", got)
	}
}
