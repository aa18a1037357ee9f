package redisstore

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// The partition tags the partitioned layout will use spread evenly over a
// real cluster's primaries: after redis-cli --cluster create, three
// primaries hold 6, 5 and 5 of the 16 (within ±20 % of a third, as the
// balance the design promises needs), and the slots computed here are the
// ones Redis computes.
func TestPartitionTagsSpreadEvenlyOverPrimaries(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	ctx := context.Background()
	node := c.Nodes[0].Client()
	held := map[string]int{}
	for n, tag := range partitionTags("signpost") {
		key := "{" + tag + "}:r:Task:x"
		slot, err := node.ClusterKeySlot(ctx, key).Result()
		if err != nil || int(slot) != keySlot(tag) {
			t.Fatalf("partition %d (%s): Redis puts it in slot %d (%v), computed %d", n, tag, slot, err, keySlot(tag))
		}
		if lo := n * clusterSlots / partitions; int(slot) < lo || int(slot) >= lo+partitionWindow {
			t.Errorf("partition %d's slot %d is not at the start of its share (%d)", n, slot, lo)
		}
		held[c.PrimaryFor(key).Addr]++
	}
	if len(held) != 3 {
		t.Fatalf("the partitions are on %d primaries: %v", len(held), held)
	}
	for addr, n := range held {
		if share := float64(n) / (partitions / 3.0); share < 0.8 || share > 1.2 {
			t.Errorf("primary %s holds %d of %d partitions (%.0f%% of a third)", addr, n, partitions, 100*share)
		}
	}
	t.Logf("partitions per primary: %v", held)
}

// An id made in a partition names it, and no other id does: a UUID, an
// id with a prefix out of range or malformed, is legacy.
func TestPartitionOfIDReadsTheIDsPrefix(t *testing.T) {
	t.Parallel()
	for n := range partitions {
		id := idPrefix(partition(n)) + "0f8fad5b-d9cb-469f-a165-70867728950e"
		if got := partitionOfID(id); got != partition(n) {
			t.Errorf("%s: partition %d, want %d", id, got, n)
		}
		if !idPattern.MatchString(id) {
			t.Errorf("%s is not a FHIR id", id)
		}
	}
	for _, id := range []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "p16-x", "p99-x", "p7-x", "pa7-x", "p07x", "p07-", "P07-x", "1001", ""} {
		if got := partitionOfID(id); got != legacy {
			t.Errorf("%q: partition %d, want legacy", id, got)
		}
	}
	if idPrefix(legacy) != "" {
		t.Errorf("legacy ids carry a prefix %q", idPrefix(legacy))
	}
}

// idPattern is a FHIR id: 1 to 64 of letters, digits, '-' and '.'.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)

// A referral's key always places it in the same partition (a repeat finds
// the first), keys spread over every partition, and no key places one in
// legacy.
func TestPlaceReferralIsStableAndSpreads(t *testing.T) {
	t.Parallel()
	used := map[partition]int{}
	for i := range 1600 {
		key := "referral|gp-" + strconv.Itoa(i%50) + "|https://example.org/ref|" + strconv.Itoa(i)
		p := placeReferral(key)
		if p != placeReferral(key) {
			t.Fatalf("%s placed in two partitions", key)
		}
		used[p]++
	}
	for n := range partitions {
		if c := used[partition(n)]; c < 50 || c > 150 { // 100 expected
			t.Errorf("partition %d got %d of 1600 keys", n, c)
		}
	}
	for range 100 {
		if p := placeReferral(""); p < 0 || p >= partitions {
			t.Fatalf("a referral without a key placed in %d", p)
		}
	}
}

// A store that spreads routes every read and write by the id's prefix:
// a resource made in partition 7 is kept under partition 7's tag, read,
// read by version, read with others of other partitions, and updated
// there; a legacy id (made before partitions) is kept, read and updated
// under the plain tag as before; a unique key claimed in a partition is
// found by Lookup, and a commit whose resources span partitions is refused
// whole.
func TestSpreadStoreRoutesByIDPrefix(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.SpreadReferrals()
		ctx := context.Background()
		in7, in3, old := idPrefix(7)+"a", idPrefix(3)+"b", "0f8fad5b-d9cb-469f-a165-70867728950e"
		for _, c := range []*gateway.Commit{
			{Writes: []gateway.Write{write("ServiceRequest", in7, 1, 0, "status=active")},
				Unique: []gateway.UniqueKey{{Key: "referral|gp|sys|1", Value: "ServiceRequest/" + in7}}},
			{Writes: []gateway.Write{write("Task", in3, 1, 0, "status=requested")}},
			{Writes: []gateway.Write{write("Task", old, 1, 0, "status=requested")}},
		} {
			if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
				t.Fatalf("commit %s: %+v %v", c.Writes[0].Resource.ID, res, err)
			}
		}
		if n := existing(rdb, s.parts[7].resource("ServiceRequest", in7), s.parts[3].resource("Task", in3), s.keys.resource("Task", old)); n != 3 {
			t.Fatalf("%d of the 3 resources under their partitions' tags", n)
		}
		if n := existing(rdb, s.keys.resource("ServiceRequest", in7), s.keys.unique("referral|gp|sys|1")); n != 0 {
			t.Errorf("%d keys of partition 7's referral under the legacy tag", n)
		}
		// Updates, each in its own partition.
		for _, w := range []gateway.Write{write("ServiceRequest", in7, 2, 1, "status=revoked"), write("Task", old, 2, 1, "status=accepted")} {
			if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
				t.Fatalf("update %s: %+v %v", w.Resource.ID, res, err)
			}
		}
		if r, err := s.Read(ctx, "ServiceRequest", in7); err != nil || r.Version != 2 {
			t.Errorf("read %s: %+v %v", in7, r, err)
		}
		if r, err := s.ReadVersion(ctx, "ServiceRequest", in7, 1); err != nil || r.Version != 1 {
			t.Errorf("vread %s/1: %+v %v", in7, r, err)
		}
		if r, err := s.Read(ctx, "Task", old); err != nil || r.Version != 2 {
			t.Errorf("read legacy %s: %+v %v", old, r, err)
		}
		got, err := s.ReadMany(ctx, []string{"Task/" + in3, "ServiceRequest/" + in7, "Task/" + old, "Task/" + idPrefix(9) + "none"})
		if err != nil || len(got) != 3 || got[0].ID != in3 || got[1].ID != in7 || got[2].ID != old {
			t.Errorf("read many across partitions: %v %v", got, err)
		}
		hist, err := s.Histories(ctx, "ServiceRequest", []string{in7})
		if err != nil || len(hist[0]) != 2 {
			t.Errorf("history of %s: %v %v", in7, hist, err)
		}
		if latest, current, err := s.LatestVersions(ctx, "ServiceRequest", in7, gateway.HistoryWindow{Versions: 1, Bytes: 1 << 20}); err != nil ||
			current != 2 || len(latest) != 1 || latest[0].Version != 2 {
			t.Errorf("the latest version of %s: %v of %d, %v", in7, latest, current, err)
		}
		if v, err := s.Lookup(ctx, "referral|gp|sys|1"); err != nil || v != "ServiceRequest/"+in7 {
			t.Errorf("lookup of a key claimed in partition 7: %q %v", v, err)
		}
		// A repeat committed again meets its key where the first put it.
		again := &gateway.Commit{Writes: []gateway.Write{write("ServiceRequest", idPrefix(7)+"c", 1, 0, "status=active")},
			Unique: []gateway.UniqueKey{{Key: "referral|gp|sys|1", Value: "ServiceRequest/" + idPrefix(7) + "c"}}}
		if res, err := s.Commit(ctx, again); err != nil || res.Held == nil || res.Held.Holder != "ServiceRequest/"+in7 {
			t.Errorf("a repeat in the same partition: %+v %v", res, err)
		}
		span := &gateway.Commit{Writes: []gateway.Write{write("Task", idPrefix(1)+"d", 1, 0), write("Task", idPrefix(2)+"e", 1, 0)}}
		if _, err := s.Commit(ctx, span); !errors.Is(err, ErrSpansPartitions) {
			t.Errorf("a commit spanning partitions: %v", err)
		}
		if _, err := s.Read(ctx, "Task", idPrefix(1)+"d"); !errors.Is(err, gateway.ErrNotFound) {
			t.Errorf("a refused commit wrote: %v", err)
		}
	})
}

// LookupMany reads several unique keys in one round trip: on a store that
// spreads, each in every partition, legacy's (claimed before the store
// spread) found as a numbered partition's; a key not held reads "", and a
// key named twice is read once and answered twice.
func TestLookupManyReadsEveryKeyInOneRoundTrip(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx := context.Background()
		claim := func(key, id string) {
			t.Helper()
			c := &gateway.Commit{Writes: []gateway.Write{write("ServiceRequest", id, 1, 0)},
				Unique: []gateway.UniqueKey{{Key: key, Value: "ServiceRequest/" + id}}}
			if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
				t.Fatalf("claiming %s: %+v %v", key, res, err)
			}
		}
		claim("referral|gp|sys|old", "old")
		s.SpreadReferrals()
		claim("referral|gp|sys|7", idPrefix(7)+"a")
		claim("referral|gp|sys|3", idPrefix(3)+"b")
		trips := &roundTrips{}
		s.rdb.AddHook(trips) // the store's own client
		keys := []string{"referral|gp|sys|7", "referral|gp|sys|none", "referral|gp|sys|old", "referral|gp|sys|7", "referral|gp|sys|3"}
		got, err := s.LookupMany(ctx, keys)
		want := []string{"ServiceRequest/" + idPrefix(7) + "a", "", "ServiceRequest/old", "ServiceRequest/" + idPrefix(7) + "a", "ServiceRequest/" + idPrefix(3) + "b"}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("LookupMany(%v) = %q, %v; want %q", keys, got, err, want)
		}
		if n := trips.n.Load(); n != 1 {
			t.Errorf("LookupMany of %d keys took %d round trips, want 1", len(keys), n)
		}
		if got, err := s.LookupMany(ctx, nil); err != nil || len(got) != 0 || trips.n.Load() != 1 {
			t.Errorf("LookupMany of no key: %q %v, %d round trips in all", got, err, trips.n.Load())
		}
	})
}

// roundTrips counts the calls a client makes: one a command sent alone,
// one a pipeline, however many commands it holds.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// A store that does not spread (the default, and a single Redis) keeps
// everything under the plain tag, whatever an id looks like: ids a client
// chose ("p07-x" for an update-as-create) are stored as before, and the
// store places nothing.
func TestStoreThatDoesNotSpreadKeepsOneTag(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	id := idPrefix(7) + "x"
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", id, 1, 0), write("Task", idPrefix(2)+"y", 1, 0)}}); err != nil || !res.OK() {
		t.Fatalf("commit: %+v %v", res, err)
	}
	if n := r.Client().Exists(ctx, s.keys.resource("Task", id)).Val(); n != 1 {
		t.Errorf("%s is not under the plain tag", id)
	}
	if s.Place("referral|gp|sys|1") != "" || s.PlaceOf(id) != "" {
		t.Errorf("a store that does not spread places ids")
	}
}

// onEachRedis runs a store test on one Redis and on a Redis Cluster (where
// a script whose keys span slots fails, so routing mistakes show).
func onEachRedis(t *testing.T, test func(t *testing.T, s *Store, rdb redis.UniversalClient)) {
	t.Run("one Redis", func(t *testing.T) {
		t.Parallel()
		s, r := newStore(t)
		test(t, s, r.Client())
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t)
		cc := NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()}, nil)
		t.Cleanup(func() { cc.Close() })
		test(t, New(cc, "test"), cc)
	})
}

// existing counts the keys that exist, one EXISTS each (on a cluster one
// EXISTS cannot name keys of several slots).
func existing(rdb redis.UniversalClient, keys ...string) int {
	n := 0
	for _, k := range keys {
		n += int(rdb.Exists(context.Background(), k).Val())
	}
	return n
}

// A spreading store keeps a registry of token systems per partition: the
// systems read are every partition's, and a conditional create expanded
// with them is refused (planned again) once a system is added in any
// partition, as with one registry.
func TestSpreadStoreGuardsConditionalCreatesByEveryRegistry(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	s.SpreadReferrals()
	ctx := context.Background()
	register := func(id, system string) {
		w := write("Patient", id, 1, 0, "identifier="+system+"|1")
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}, Systems: []string{"Patient identifier " + system}}); err != nil || !res.OK() {
			t.Fatalf("commit registering %s: %+v %v", system, res, err)
		}
	}
	register(idPrefix(5)+"a", "https://a.example")
	register(idPrefix(9)+"b", "https://b.example")
	// Each new system raises two generations: the shared registry's
	// (registerShared) and its partition's.
	systems, gen, err := s.TokenSystems(ctx)
	if err != nil || len(systems) != 2 || gen != 4 {
		t.Fatalf("systems %v generation %d (%v), want both, 4", systems, gen, err)
	}
	conditional := func(id string) *gateway.CommitResult {
		c := &gateway.Commit{Writes: []gateway.Write{write("Patient", id, 1, 0)}, SystemsSeen: &gen,
			Criteria: []gateway.Criteria{{Type: "Patient", Groups: [][]string{{"identifier=https://a.example|2", "identifier=https://b.example|2"}}}}}
		res, err := s.Commit(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := conditional(idPrefix(5) + "c"); !res.OK() {
		t.Errorf("a conditional create with the systems current: %+v", res)
	}
	register(idPrefix(12)+"d", "https://c.example") // another partition's registry grows
	if res := conditional(idPrefix(5) + "e"); !res.SystemsChanged {
		t.Errorf("a conditional create expanded before a system was added elsewhere: %+v", res)
	}
}

// A job queued only if some resource carries a term (a Task change's job
// for its client's subscriptions) is always queued by a spreading store:
// the resources may be in any partition, and the commit sees its own only.
func TestSpreadStoreQueuesJobsWhoseTermMayBeElsewhere(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	s.SpreadReferrals()
	ctx := context.Background()
	sub := write("Subscription", idPrefix(9)+"s", 1, 0, "_client=gp")
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{sub}}); err != nil || !res.OK() {
		t.Fatalf("subscription: %+v %v", res, err)
	}
	c := &gateway.Commit{Writes: []gateway.Write{write("Task", idPrefix(5)+"t", 1, 0)},
		Jobs: []gateway.Job{{Queue: gateway.QueueSubscription, Fields: []string{"task", idPrefix(5) + "t"},
			OnlyIfAny: &gateway.IndexTerm{Type: "Subscription", Term: "_client=gp"}}}}
	if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
		t.Fatalf("task: %+v %v", res, err)
	}
	if n := r.Client().XLen(ctx, s.parts[5].queue(gateway.QueueSubscription)).Val(); n != 1 {
		t.Errorf("%d subscription jobs queued in the Task's partition, want 1", n)
	}
}

// A spreading store checks a cap (a criteria's Limit) against the matches
// of every partition: its commit's script counts its own, and those held
// elsewhere (a client's subscriptions made before the store spread, in
// legacy) are counted just before and lowered from the limit.
func TestSpreadStoreCountsCapsInEveryPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testSpreadStoreCountsCapsInEveryPartition)
}

func testSpreadStoreCountsCapsInEveryPartition(t *testing.T, s *Store, _ redis.UniversalClient) {
	ctx := context.Background()
	commit := func(id string) *gateway.CommitResult {
		t.Helper()
		c := &gateway.Commit{Writes: []gateway.Write{write("Subscription", id, 1, 0, "client=a")},
			Criteria: []gateway.Criteria{{Type: "Subscription", Groups: [][]string{{"client=a"}}, Limit: 3}}}
		res, err := s.Commit(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := commit("old"); !res.OK() { // before the store spreads: legacy
		t.Fatalf("the first of three: %+v", res)
	}
	s.SpreadReferrals()
	for _, id := range []string{idPrefix(4) + "b", idPrefix(4) + "c"} {
		if res := commit(id); !res.OK() {
			t.Fatalf("%s, within the cap: %+v", id, res)
		}
	}
	if res := commit(idPrefix(4) + "d"); !res.OverLimit {
		t.Errorf("a fourth, with one of the three in legacy: %+v, want over the limit", res)
	}
	if res := commit(idPrefix(9) + "e"); !res.OverLimit {
		t.Errorf("a fourth in another partition: %+v, want over the limit", res)
	}
}

// A spreading store counts a commit's caps in the other partitions once
// each: identical criteria (the same type and groups, in any order, as a
// transaction making many Subscriptions carries its client's cap once for
// each) are counted once and each lowered by the count, and all of them
// are counted in one script run a partition. Before, a run each criteria
// and partition: here 62 caps, 992 runs for 16.
func TestSpreadStoreCountsEachCapOnce(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx := context.Background()
		subscription := func(id string, terms ...string) {
			t.Helper()
			if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Subscription", id, 1, 0, terms...)}}); err != nil || !res.OK() {
				t.Fatalf("%s: %+v %v", id, res, err)
			}
		}
		subscription("old-a", "client=a", "status=active") // before the store spreads: legacy
		subscription("old-b", "client=b", "status=active")
		s.SpreadReferrals()
		subscription(idPrefix(9)+"a", "client=a", "status=requested")
		subscription(idPrefix(4)+"a", "client=a", "status=active") // the commit's own partition: its script counts it
		var criteria []gateway.Criteria
		var want []int
		for i := range 30 {
			criteria = append(criteria,
				gateway.Criteria{Type: "Subscription", Groups: [][]string{{"status=active", "status=requested"}, {"client=a"}}, Limit: 40 - i},
				gateway.Criteria{Type: "Subscription", Groups: [][]string{{"client=a"}, {"status=requested", "status=active"}}, Limit: 40 - i})
			want = append(want, 38-i, 38-i)
		}
		criteria = append(criteria,
			gateway.Criteria{Type: "Subscription", Groups: [][]string{{"client=b"}}, Limit: 3},
			gateway.Criteria{Type: "Subscription", Groups: [][]string{{"client=b"}, {"status=off"}}, Limit: 1},
			gateway.Criteria{Type: "Subscription", Groups: [][]string{{"client=a"}}}) // a conditional create's: not a cap
		want = append(want, 2, 1, 0)
		if _, _, err := s.capsLeft(ctx, 4, criteria); err != nil { // the scripts loaded
			t.Fatal(err)
		}
		runs := &scriptRuns{}
		s.rdb.AddHook(runs) // the store's own client
		limits, over, err := s.capsLeft(ctx, 4, criteria)
		if err != nil || over || !slices.Equal(limits, want) {
			t.Errorf("caps left %v, over %v, %v; want %v, not over", limits, over, err, want)
		}
		if n := runs.n.Load(); n != partitions {
			t.Errorf("%d script runs counted the caps in the %d other partitions, want one each", n, partitions)
		}
		limits, over, err = s.capsLeft(ctx, 4, []gateway.Criteria{{Type: "Subscription", Groups: [][]string{{"client=a"}}, Limit: 3}, {Type: "Subscription", Groups: [][]string{{"client=a"}}, Limit: 2}})
		if err != nil || !over || !slices.Equal(limits, []int{1, 0}) {
			t.Errorf("a cap the other partitions reach: %v, over %v, %v; want [1 0], over", limits, over, err)
		}
	})
}

// scriptRuns counts the scripts a client runs (EVAL, EVALSHA), pipelined
// or not.
type scriptRuns struct{ n atomic.Int64 }

func runsScript(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

func (c *scriptRuns) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *scriptRuns) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if runsScript(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *scriptRuns) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if runsScript(cmd) {
				c.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// The cap of token systems per parameter holds across partitions: a
// system is registered, before a commit in a numbered partition indexes
// anything under it, in the registry every partition shares (legacy's),
// one atomic step for all of them; its partition's registry then lists it
// too. The systems over the cap are indexed bare, in whatever partition,
// so a search without a system still finds every resource.
func TestSpreadStoreCapsTokenSystemsAcrossPartitions(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testSpreadStoreCapsTokenSystemsAcrossPartitions)
}

func testSpreadStoreCapsTokenSystemsAcrossPartitions(t *testing.T, s *Store, _ redis.UniversalClient) {
	ctx := context.Background()
	s.SpreadReferrals()
	s.maxSystems = 2
	var wg sync.WaitGroup
	for n := range partitions {
		wg.Go(func() {
			id, system := idPrefix(partition(n))+"t", "https://"+strconv.Itoa(n)+".example"
			c := &gateway.Commit{Writes: []gateway.Write{write("Task", id, 1, 0, "identifier="+system+"|X")},
				Systems: []string{"Task identifier " + system}}
			if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
				t.Errorf("%s: %+v %v", id, res, err)
			}
		})
	}
	wg.Wait()
	systems, _, err := s.TokenSystems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(systems) != 2 {
		t.Fatalf("%d systems registered in all by %d partitions' commits: %v; want the cap, 2", len(systems), partitions, systems)
	}
	// A search for X without its system, as the query expands it: no
	// system, bare, and each registered system.
	group := []string{"identifier=|X", "identifier=X"}
	for _, f := range systems {
		group = append(group, "identifier="+strings.TrimPrefix(f, "Task identifier ")+"|X")
	}
	if _, total, err := s.Search(ctx, &gateway.StoreQuery{Type: "Task", Groups: [][]string{group}, Count: 1}); err != nil || total != partitions {
		t.Errorf("a search without a system finds %d of %d (%v)", total, partitions, err)
	}
}

// A spreading store places a Patient whose id its GP system chose by its
// key (owner and id), and what is written with it beside it; a Patient
// stored before the store spread stays in legacy, where it is read,
// changed and listed in its history as before.
func TestSpreadStorePlacesPatientsByTheirKey(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testSpreadStorePlacesPatientsByTheirKey)
}

func testSpreadStorePlacesPatientsByTheirKey(t *testing.T, s *Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	commit := func(writes ...gateway.Write) {
		t.Helper()
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: writes}); err != nil || !res.OK() {
			t.Fatalf("commit: %+v %v", res, err)
		}
	}
	oldKey, newKey := gateway.PatientKey("a", "old"), gateway.PatientKey("a", "new")
	commit(write("Patient", oldKey, 1, 0)) // before the store spreads: legacy
	s.SpreadReferrals()
	place := patientPlace(newKey)
	if got, err := s.PlacePatient(ctx, newKey); err != nil || got != idPrefix(place) {
		t.Errorf("PlacePatient(new) = %q %v, want %q", got, err, idPrefix(place))
	}
	if got, err := s.PlacePatient(ctx, oldKey); err != nil || got != "" {
		t.Errorf("PlacePatient(old) = %q %v, want legacy's", got, err)
	}
	// A new Patient and a referral beside it: one commit, in its place.
	commit(write("Patient", newKey, 1, 0), write("ServiceRequest", idPrefix(place)+"sr", 1, 0))
	if existing(rdb, s.in(place).resource("Patient", newKey)) != 1 || existing(rdb, s.keys.resource("Patient", newKey)) != 0 {
		t.Errorf("the new Patient is not in partition %d alone", place)
	}
	// The old one is changed where it is.
	commit(write("Patient", oldKey, 2, 1))
	if n, _ := rdb.HGet(ctx, s.keys.resource("Patient", oldKey), "v").Int(); n != 2 {
		t.Errorf("the legacy Patient is at version %d, want 2", n)
	}
	if existing(rdb, s.in(patientPlace(oldKey)).resource("Patient", oldKey)) != 0 {
		t.Error("a Patient stored before spreading was written in its place too")
	}
	for _, key := range []string{oldKey, newKey} {
		if _, err := s.Read(ctx, "Patient", key); err != nil {
			t.Errorf("read %s: %v", key, err)
		}
		if _, err := s.ReadVersion(ctx, "Patient", key, 1); err != nil {
			t.Errorf("read %s version 1: %v", key, err)
		}
	}
	if got, err := s.ReadMany(ctx, []string{"Patient/" + oldKey, "Patient/" + newKey, "Patient/a|none"}); err != nil || len(got) != 2 {
		t.Errorf("ReadMany: %d read (%v), want 2", len(got), err)
	}
	h, err := s.Histories(ctx, "Patient", []string{oldKey, newKey})
	if err != nil || len(h[0]) != 2 || len(h[1]) != 1 {
		t.Errorf("histories: %v (%v), want 2 versions and 1", h, err)
	}
}

// During a rolling switch to spreading, a process that does not spread
// yet still stores Patients in legacy after a spreading one found legacy
// holding none. The spreading store still finds such a Patient there:
// what is written with it is placed there and its updates, read first (as
// intake reads) or not, change it there. Before, the spreading store kept
// its first "none" for good and refused every update of that Patient as
// stale (looking for it in its place).
func TestSpreadStoreFindsAPatientStoredInLegacyAfterItLooked(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		s.SpreadReferrals()
		commit := func(st *Store, w gateway.Write) {
			t.Helper()
			if res, err := st.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
				t.Fatalf("commit of version %d: %+v %v", w.Resource.Version, res, err)
			}
		}
		commit(s, write("Patient", gateway.PatientKey("a", "first"), 1, 0)) // legacy holds none
		late := gateway.PatientKey("a", "late")
		commit(New(rdb, strings.Trim(s.keys.ns, "{}")), write("Patient", late, 1, 0)) // a process not spreading yet

		if r, err := s.Read(ctx, "Patient", late); err != nil || r.Version != 1 {
			t.Fatalf("read: %+v %v", r, err)
		}
		if got, err := s.PlacePatient(ctx, late); err != nil || got != "" {
			t.Errorf("PlacePatient = %q %v, want legacy's, where the Patient is", got, err)
		}
		commit(s, write("Patient", late, 2, 1)) // read first
		commit(s, write("Patient", late, 3, 2)) // not
		if n, _ := rdb.HGet(ctx, s.keys.resource("Patient", late), "v").Int(); n != 3 {
			t.Errorf("the Patient in legacy is at version %d, want 3", n)
		}
		if existing(rdb, s.in(patientPlace(late)).resource("Patient", late)) != 0 {
			t.Error("a second copy of the Patient was written in its place")
		}
	})
}

// The same for referrals: one made in legacy by a process that does not
// spread yet, after a spreading store found legacy holding none, is
// found by its idempotency keys once legacyNoneFor has passed (before:
// never, and its repeat was made a second time in a numbered partition).
func TestSpreadStoreFindsAReferralMadeInLegacyAfterItLooked(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		s.SpreadReferrals()
		referral := func(st *Store, id, key string) *gateway.CommitResult {
			t.Helper()
			res, err := st.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("ServiceRequest", id, 1, 0)},
				Unique: []gateway.UniqueKey{{Key: key, Value: "ServiceRequest/" + id}}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := referral(s, idPrefix(1)+"sr-first", "referral|gp|first"); !res.OK() { // legacy holds none
			t.Fatalf("first: %+v", res)
		}
		if res := referral(New(rdb, strings.Trim(s.keys.ns, "{}")), "sr-late", "referral|gp|late"); !res.OK() {
			t.Fatalf("made in legacy: %+v", res)
		}
		time.Sleep(legacyNoneFor + 100*time.Millisecond)
		res := referral(s, idPrefix(3)+"sr-repeat", "referral|gp|late")
		if res.Held == nil || res.Held.Holder != "ServiceRequest/sr-late" {
			t.Errorf("the repeat of a referral made in legacy: %+v, want it held by that referral", res)
		}
	})
}

// A commit names the resources it was decided on without writing them
// (Commit.Unchanged: the Consents a referral's delivery rests on, and the
// Patients their names were compared with), each at the version read: one
// changed since (or made, or no longer held) refuses the commit
// (ReadChanged), which writes nothing and queues nothing. On a store that
// does not spread, and on one that does with the resource in the commit's
// partition (checked in its script) or in another (read just before it).
// A Patient placed by its key but kept in legacy (stored before the store
// spread) is checked in legacy: looked for in its place, it used to refuse
// every commit decided on it, even on its current version.
func TestCommitRefusedWhenWhatItWasDecidedOnChanged(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testCommitRefusedWhenWhatItWasDecidedOnChanged)
}

func testCommitRefusedWhenWhatItWasDecidedOnChanged(t *testing.T, s *Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	// Made before the store spread: kept in legacy.
	oldPatient, oldPatient2 := gateway.PatientKey("gp", "old-p"), gateway.PatientKey("gp", "old-p2")
	for _, w := range []gateway.Write{write("Consent", "old-c", 1, 0, "status=active"), write("Patient", oldPatient, 1, 0), write("Patient", oldPatient2, 1, 0)} {
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("the %s made before spreading: %+v %v", w.Resource.Type, res, err)
		}
	}
	placed := gateway.PatientKey("gp", "placed-p")
	for _, run := range []struct {
		name   string
		spread bool
		// consent is the resource decided on (a Consent unless typ says).
		typ               string
		consent, referral string
	}{
		{"one partition", false, "Consent", "c", "t"},
		{"spread, beside", true, "Consent", idPrefix(5) + "c", idPrefix(5) + "beside-t"},
		{"spread, apart", true, "Consent", idPrefix(9) + "c", idPrefix(5) + "apart-t"},
		{"spread, in legacy", true, "Consent", "old-c", idPrefix(5) + "legacy-t"},
		{"one partition, Patient", false, "Patient", gateway.PatientKey("gp", "p"), "pt"},
		{"spread, Patient beside", true, "Patient", placed, idPrefix(patientPlace(placed)) + "placed-t"},
		{"spread, Patient in legacy, apart", true, "Patient", oldPatient, idPrefix(5) + "legacy-pt"},
		{"spread, Patient in legacy, beside", true, "Patient", oldPatient2, "legacy-pt"},
	} {
		if run.spread {
			s.SpreadReferrals()
		}
		commit := func(c *gateway.Commit) *gateway.CommitResult {
			t.Helper()
			res, err := s.Commit(ctx, c)
			if err != nil {
				t.Fatalf("%s: %v", run.name, err)
			}
			return res
		}
		if !slices.Contains([]string{"old-c", oldPatient, oldPatient2}, run.consent) {
			if res := commit(&gateway.Commit{Writes: []gateway.Write{write(run.typ, run.consent, 1, 0, "status=active")}}); !res.OK() {
				t.Fatalf("%s: the %s: %+v", run.name, run.typ, res)
			}
		}
		referral := func(n int, read gateway.ReadVersion) *gateway.CommitResult {
			id := run.referral + strconv.Itoa(n)
			return commit(&gateway.Commit{Writes: []gateway.Write{write("Task", id, 1, 0, "status=requested")},
				Jobs:      []gateway.Job{{Queue: gateway.QueueDelivery, Fields: []string{"task", id}}},
				Unchanged: []gateway.ReadVersion{read}})
		}
		queue := s.in(s.partitionOf(run.referral)).queue(gateway.QueueDelivery)
		if res := referral(1, gateway.ReadVersion{Type: run.typ, ID: run.consent, Version: 1}); !res.OK() {
			t.Errorf("%s: decided on the current version: %+v", run.name, res)
		}
		if res := commit(&gateway.Commit{Writes: []gateway.Write{write(run.typ, run.consent, 2, 1, "status=inactive")}}); !res.OK() {
			t.Fatalf("%s: the change: %+v", run.name, res)
		}
		before := rdb.XLen(ctx, queue).Val()
		if res := referral(2, gateway.ReadVersion{Type: run.typ, ID: run.consent, Version: 1}); !res.ReadChanged || res.OK() {
			t.Errorf("%s: decided on a version withdrawn since: %+v, want ReadChanged", run.name, res)
		}
		if res := referral(3, gateway.ReadVersion{Type: run.typ, ID: run.consent + "-none", Version: 1}); !res.ReadChanged {
			t.Errorf("%s: decided on a resource no longer held: %+v, want ReadChanged", run.name, res)
		}
		if res := referral(4, gateway.ReadVersion{Type: run.typ, ID: run.consent, Version: 0}); !res.ReadChanged {
			t.Errorf("%s: decided on a resource's absence, made since: %+v, want ReadChanged", run.name, res)
		}
		if n := rdb.XLen(ctx, queue).Val(); n != before {
			t.Errorf("%s: %d jobs queued by refused commits", run.name, n-before)
		}
		for n := 2; n <= 4; n++ {
			if existing(rdb, s.in(s.partitionOf(run.referral)).resource("Task", run.referral+strconv.Itoa(n))) != 0 {
				t.Errorf("%s: referral %d written by a refused commit", run.name, n)
			}
		}
		if res := referral(5, gateway.ReadVersion{Type: run.typ, ID: run.consent + "-none", Version: 0}); !res.OK() {
			t.Errorf("%s: decided on a resource's absence, still absent: %+v", run.name, res)
		}
	}
}
