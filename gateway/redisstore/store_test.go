package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
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
		res, err := s.commit(ctx, c, "same-token", nil, nil)
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
	res, err := s.commit(ctx, other, "other-token", nil, nil)
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
// system|code, and its system listed as the core lists it (gateway.TokenSystems).
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

// commandCalls is how many times Redis ran each command since the last
// CONFIG RESETSTAT (INFO commandstats), the scripts themselves left out.
func commandCalls(t *testing.T, r *redistest.Server) map[string]int {
	t.Helper()
	info, err := r.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		switch cmd, _, _ := strings.Cut(name, "|"); {
		case !ok || name == line:
			continue
		case cmd == "evalsha" || cmd == "eval" || cmd == "info" || cmd == "config" || cmd == "hello" || cmd == "client":
			continue // the scripts themselves, and the test's and the connection's own
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		out[name], _ = strconv.Atoi(calls)
	}
	return out
}

// A registry older than the per-parameter counts and larger than any the
// caps allow is not read inside a commit (HKEYS would hold Redis for as long
// as the registry is long): the parameter takes no new system, and the term
// is indexed bare, where a search without a system still finds it.
func TestTokenSystemCountNeverReadsALargeRegistry(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	fields := []any{"#", "1", "Task identifier https://a.example", "1"}
	for i := 0; i < maxRegistryFields; i++ {
		fields = append(fields, "Task code https://made-up.example/"+strconv.Itoa(i), "1")
	}
	if err := r.Client().HSet(ctx, s.keys.systems(), fields...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	commitIdentifier(t, s, "t1", 1, 0, "https://c.example", "X")
	if calls := commandCalls(t, r); calls["hkeys"] != 0 || calls["hgetall"] != 0 || calls["hscan"] != 0 {
		t.Errorf("the commit read the whole registry: %v", calls)
	}
	if systems, _ := registered(t, s); strings.Contains(systems, "https://c.example") {
		t.Error("a new system was registered under a registry that was never counted")
	}
	if got := termMembers(t, s, r, "identifier=X"); !slices.Equal(got, []string{"t1"}) {
		t.Errorf("bare entries: %v, want t1", got)
	}
}

// boundedCommit is a commit at the request bounds: as many index terms as a
// request may write, over as many writes as a transaction may hold, naming
// as many token systems as a request may, none registered yet.
func boundedCommit(token int) *gateway.Commit {
	c := &gateway.Commit{}
	n := strconv.Itoa(token)
	writes := conform.MaxTransactionEntries
	per := conform.MaxIndexTermsPerRequest / writes
	for w := 0; w < writes; w++ {
		id := "sr-" + n + "-" + strconv.Itoa(w)
		var terms []string
		for k := 0; k < per; k++ {
			system := "https://made-up.example/" + n + "/" + strconv.Itoa((w*per+k)%conform.MaxTokenSystemsPerRequest)
			terms = append(terms, "code="+system+"|C"+strconv.Itoa(k))
		}
		c.Writes = append(c.Writes, write("ServiceRequest", id, 1, 0, terms...))
	}
	for k := 0; k < conform.MaxTokenSystemsPerRequest; k++ {
		c.Systems = append(c.Systems, "ServiceRequest code https://made-up.example/"+n+"/"+strconv.Itoa(k))
	}
	return c
}

// The Redis work of a commit is linear in what it writes, also at the
// bounds and with every system over its parameter's cap (the costly path:
// each term indexed bare as well): a command per index entry, bare entry
// and write, and a few per system, counted from INFO commandstats. Counting
// commands is exact where timing would be noise; what the script does
// around them is measured by BenchmarkCommitHostile.
func TestCommitWorkIsLinearAtTheBounds(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	s.maxSystems = 0 // every system overflows
	ctx := context.Background()
	for round, token := range []int{1, 2} {
		c := boundedCommit(token)
		if err := r.Client().ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
			t.Fatalf("commit: %+v %v", res, err)
		}
		terms, writes, systems := 0, len(c.Writes), len(c.Systems)
		for _, w := range c.Writes {
			terms += len(w.Terms)
		}
		calls := commandCalls(t, r)
		// Each term once under its system and once bare; each write once in
		// the type's set of ids.
		if want := 2*terms + writes; calls["zadd"] != want {
			t.Errorf("round %d: %d ZADD, want %d (terms %d, writes %d)", round, calls["zadd"], want, terms, writes)
		}
		total := 0
		for _, n := range calls {
			total += n
		}
		// ZADDs, then per write its version read and its HSET, per system
		// at most its count read, and the once-only count of the registry,
		// plus a few per commit.
		t.Logf("round %d: %d commands for %d terms, %d writes, %d systems: %v", round, total, terms, writes, systems, calls)
		if bound := 2*terms + 3*writes + 2*systems + 4; total > bound {
			t.Errorf("round %d: %d commands for %d terms, %d writes, %d systems: more than linear (bound %d): %v",
				round, total, terms, writes, systems, bound, calls)
		}
	}
	// Every write's bare entry is there.
	if n := r.Client().ZCard(ctx, s.keys.term("ServiceRequest", "code=C0")).Val(); n != 2*int64(conform.MaxTransactionEntries) {
		t.Errorf("bare entries of C0: %d, want %d", n, 2*conform.MaxTransactionEntries)
	}
}

// A union of large sets (every client's requested and accepted Tasks) in a
// search that also has a small set of its own (the caller's Tasks) is
// narrowed by that set first: each of its sets is intersected with the
// small one, and no set of every client's matches is built, so the search
// costs what the caller holds, not what everyone holds (1.1 s against 140 µs
// with 200,000 other Tasks: BenchmarkSearchOthersData). Which way the script
// went is counted from INFO commandstats; the results are the same.
func TestSearchUnionIsNarrowedByTheCallersSet(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	var writes []gateway.Write
	for i := 0; i < 40; i++ {
		client, status := "_client=b", []string{"status=requested", "status=accepted"}[i%2]
		if i%10 == 0 {
			client = "_client=a"
		}
		writes = append(writes, write("Task", "t"+strconv.Itoa(i), 1, 0, status, client))
	}
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: writes}); err != nil || !res.OK() {
		t.Fatal(res, err)
	}
	for _, tc := range []struct {
		groups [][]string
		want   string
		// The sets combined: each large set of the union narrowed by the
		// caller's, the union built once, and the groups intersected.
		inters, unions int
	}{
		{[][]string{{"status=requested", "status=accepted"}, {"_client=a"}}, "t0,t10,t20,t30", 3, 1},
		// An empty set adds nothing: the union is the other set, narrowed.
		{[][]string{{"status=accepted", "status=rejected"}, {"_client=a"}}, "", 2, 0},
		// The union's sets are all empty: so is the result, built from nothing.
		{[][]string{{"status=rejected", "status=cancelled"}, {"_client=b"}}, "", 0, 0},
		// The union's sets are the smaller: it is built as it is.
		{[][]string{{"status=requested", "status=accepted"}, {"_client=b", "_client=a"}, {"status=requested", "status=rejected", "status=accepted"}}, "t0,t1,t10,t11,t12", 1, 3},
		{[][]string{{"status=requested", "status=accepted"}}, "t0,t1,t10,t11,t12", 0, 1}, // one lastUpdated: by id
	} {
		if err := r.Client().ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		ids, _, err := s.Search(ctx, &gateway.StoreQuery{Type: "Task", Groups: tc.groups, Count: 5})
		if err != nil {
			t.Fatal(err)
		}
		if got := join(ids); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.groups, got, tc.want)
		}
		calls := commandCalls(t, r)
		if calls["zinterstore"] != tc.inters || calls["zunionstore"] != tc.unions {
			t.Errorf("%v: %v, want %d ZINTERSTORE and %d ZUNIONSTORE", tc.groups, calls, tc.inters, tc.unions)
		}
	}
	if keys := s.rdb.Keys(ctx, "{test}:t:*").Val(); len(keys) != 0 {
		t.Errorf("scratch keys left: %v", keys)
	}
}

// A commit's caps alike (the same type and groups, in any order: a
// transaction of Subscriptions carries its client's cap once for each)
// are counted once in its script, against the smallest of their limits:
// one range read for them all, counted from INFO commandstats, where
// before each was resolved and read. Over the smallest is over; within it
// commits; a conditional create beside them is checked as before.
func TestCommitCountsEachDistinctCapOnce(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(map[bool]string{false: "one Redis", true: "spread"}[spread], func(t *testing.T) {
			t.Parallel()
			s, r := newStore(t)
			if spread {
				s.SpreadReferrals()
			}
			ctx := context.Background()
			commit := func(id string, criteria ...gateway.Criteria) *gateway.CommitResult {
				t.Helper()
				res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Subscription", id, 1, 0, "client=a", "status=active")}, Criteria: criteria})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			caps := func(limits ...int) []gateway.Criteria {
				var out []gateway.Criteria
				for i, l := range limits {
					groups := [][]string{{"status=active", "status=requested"}, {"client=a"}}
					if i%2 == 1 {
						groups = [][]string{{"client=a"}, {"status=requested", "status=active"}}
					}
					out = append(out, gateway.Criteria{Type: "Subscription", Groups: groups, Limit: l})
				}
				return out
			}
			for _, id := range []string{idPrefix(4) + "a", idPrefix(4) + "b"} {
				if res := commit(id); !res.OK() {
					t.Fatalf("%s: %+v", id, res)
				}
			}
			var limits []int
			for i := range 30 {
				limits = append(limits, 40-i)
			}
			create := gateway.Criteria{Type: "Subscription", Groups: [][]string{{"client=z"}}} // a conditional create's: not a cap
			if err := r.Client().ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if res := commit(idPrefix(4)+"c", append(caps(limits...), create)...); !res.OK() {
				t.Fatalf("within every cap: %+v", res)
			}
			if n := commandCalls(t, r)["zrange"]; n != 2 {
				t.Errorf("the commit's script read %d ranges for 30 caps alike and a conditional create, want 2", n)
			}
			// Three held now: a cap of 3 among larger ones is reached.
			if res := commit(idPrefix(4)+"d", caps(10, 3, 10)...); !res.OverLimit {
				t.Errorf("over the smallest of the caps alike: %+v, want over the limit", res)
			}
			if res := commit(idPrefix(4)+"d", caps(10, 4, 10)...); !res.OK() {
				t.Errorf("within the smallest of the caps alike: %+v", res)
			}
			if res := commit(idPrefix(4)+"e", append(caps(10), gateway.Criteria{Type: "Subscription", Groups: [][]string{{"client=a"}}})...); res.Matched == nil {
				t.Errorf("a conditional create that matches beside a cap: %+v, want matched", res)
			}
		})
	}
}

// LatestVersions reads a window of a resource's newest versions, oldest
// first, and no more: a Task's 60 versions of 10 KiB each are read 50 at
// most, and fewer where their bodies pass the window's bytes (the newest
// is read whatever its size); Redis sends no more than the window holds.
func TestLatestVersionsReadsOnlyTheWindow(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	note := strings.Repeat("x", 10<<10)
	body := func(v int) []byte {
		return []byte(`{"resourceType":"Task","id":"t1","note":[{"text":"` + strconv.Itoa(v) + note + `"}]}`)
	}
	size := len(body(60)) // versions 10 to 60 are each this size
	for v := 1; v <= 60; v++ {
		w := write("Task", "t1", v, v-1, "status=requested")
		w.Resource.Body = body(v)
		w.Resource.Owner = "gp"
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatal(v, res, err)
		}
	}
	sent := func() int64 {
		info := r.Client().Info(ctx, "stats").Val()
		for _, line := range strings.Split(info, "\r\n") {
			if n, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
				v, _ := strconv.ParseInt(n, 10, 64)
				return v
			}
		}
		t.Fatal("INFO stats has no total_net_output_bytes")
		return 0
	}
	for _, c := range []struct {
		window        gateway.HistoryWindow
		oldest, count int
	}{
		{gateway.HistoryWindow{Versions: 50, Bytes: 1 << 20}, 11, 50},
		{gateway.HistoryWindow{Versions: 50, Bytes: 5*size + size/2}, 56, 5},
		{gateway.HistoryWindow{Versions: 50, Bytes: 1}, 60, 1},
		{gateway.HistoryWindow{Versions: 100, Bytes: 1 << 30}, 1, 60},
	} {
		before := sent()
		got, current, err := s.LatestVersions(ctx, "Task", "t1", c.window)
		moved := sent() - before
		if err != nil || current != 60 || len(got) != c.count {
			t.Fatalf("%+v: %d versions of %d, %v; want %d", c.window, len(got), current, err, c.count)
		}
		for i, v := range got {
			if v.Version != c.oldest+i || v.Owner != "gp" || v.LastUpdated.UnixMilli() != 1_700_000_000_000+int64(v.Version) ||
				!strings.Contains(string(v.Body), `"text":"`+strconv.Itoa(v.Version)+"x") {
				t.Errorf("%+v: version %d read as %d (owner %q, %v)", c.window, c.oldest+i, v.Version, v.Owner, v.LastUpdated)
			}
		}
		// Each version's body and a few numbers, and the first INFO's own
		// reply (counted after it was read).
		if limit := int64(c.count*(size+64) + 4096); moved > limit {
			t.Errorf("%+v: Redis sent %d bytes for %d versions (at most %d)", c.window, moved, c.count, limit)
		}
	}
	if got, current, err := s.LatestVersions(ctx, "Task", "none", gateway.HistoryWindow{Versions: 50, Bytes: 1 << 20}); err != nil || current != 0 || len(got) != 0 {
		t.Errorf("a Task not held: %v of %d, %v", got, current, err)
	}
}
