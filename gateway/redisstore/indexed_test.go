package redisstore

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// hgetCounter counts the HGETs a client sends (not those its scripts run).
type hgetCounter struct{ n atomic.Int64 }

func (h *hgetCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *hgetCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hget" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *hgetCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if cmd.Name() == "hget" {
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// A Task read and then changed (a delivery recorded) is committed without
// reading its index entries again: Read brought them. Entries that changed
// since the read are found out by the script and read again, so the index
// is right either way.
func TestCommitAfterReadUsesTheEntriesRead(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	rdb := r.Client()
	counter := &hgetCounter{}
	rdb.AddHook(counter)
	s := New(rdb, "test")
	ctx := context.Background()
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested", "owner=a")}}); err != nil || !res.OK() {
		t.Fatalf("create: %+v %v", res, err)
	}
	if _, err := s.Read(ctx, "Task", "t1"); err != nil {
		t.Fatal(err)
	}
	before := counter.n.Load()
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 2, 1, "status=accepted", "owner=a")}}); err != nil || !res.OK() {
		t.Fatalf("update: %+v %v", res, err)
	}
	if n := counter.n.Load() - before; n != 0 {
		t.Errorf("the update after a read read the index entries again (%d HGETs)", n)
	}
	// Without a read first, the entries are read.
	before = counter.n.Load()
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 3, 2, "status=completed", "owner=a")}}); err != nil || !res.OK() {
		t.Fatalf("update: %+v %v", res, err)
	}
	if n := counter.n.Load() - before; n != 1 {
		t.Errorf("an update with no read before it sent %d HGETs, want 1", n)
	}
	// Entries changed behind the read's back (as by another process's
	// move of the resource): found out, read again, and the index is right.
	if _, err := s.Read(ctx, "Task", "t1"); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, s.keys.resource("Task", "t1"), "x", s.keys.term("Task", "status=completed")+"\n"+s.keys.term("Task", "owner=a")+"\n"+s.keys.term("Task", "extra"))
	rdb.ZAdd(ctx, s.keys.term("Task", "extra"), redis.Z{Score: 1, Member: "t1"})
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 4, 3, "status=failed", "owner=a")}}); err != nil || !res.OK() {
		t.Fatalf("update after the entries changed: %+v %v", res, err)
	}
	for term, want := range map[string]int64{"status=requested": 0, "status=accepted": 0, "status=completed": 0, "extra": 0, "status=failed": 1, "owner=a": 1} {
		if n := rdb.ZCard(ctx, s.keys.term("Task", term)).Val(); n != want {
			t.Errorf("%s holds %d, want %d", term, n, want)
		}
	}
}

// The memory of entries is bounded, and an entry is used once.
func TestIndexedMemoryBounded(t *testing.T) {
	t.Parallel()
	var im indexedMemory
	for i := range 3 * indexedMemoryCap {
		im.remember(string(rune('a'+i%26))+string(rune(i)), 1, "x")
	}
	if n := len(im.m); n > indexedMemoryCap {
		t.Errorf("%d entries kept, want at most %d", n, indexedMemoryCap)
	}
	im.remember("k", 2, "e")
	if _, ok := im.take("k", 1); ok {
		t.Error("entries of version 2 taken for version 1")
	}
	im.remember("k", 2, "e")
	if x, ok := im.take("k", 2); !ok || x != "e" {
		t.Errorf("take = %q %v", x, ok)
	}
	if _, ok := im.take("k", 2); ok {
		t.Error("an entry was used twice")
	}
}

// A job given OnlyIfAny is queued only while some resource carries the
// term, decided in the commit itself.
func TestJobOnlyIfAny(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	rdb := r.Client()
	ctx := context.Background()
	job := gateway.Job{Queue: gateway.QueueSubscription, Fields: []string{"event", "task-changed"},
		OnlyIfAny: &gateway.IndexTerm{Type: "Subscription", Term: "_client=practice-a"}}
	commit := func(id string) {
		t.Helper()
		if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", id, 1, 0, "status=requested")}, Jobs: []gateway.Job{job}}); err != nil || !res.OK() {
			t.Fatalf("commit: %+v %v", res, err)
		}
	}
	commit("t1")
	if n := rdb.XLen(ctx, s.keys.queue(gateway.QueueSubscription)).Val(); n != 0 {
		t.Errorf("with no resource under the term, %d jobs queued, want none", n)
	}
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Subscription", "s1", 1, 0, "_client=practice-a")}}); err != nil || !res.OK() {
		t.Fatalf("subscription: %+v %v", res, err)
	}
	commit("t2")
	if n := rdb.XLen(ctx, s.keys.queue(gateway.QueueSubscription)).Val(); n != 1 {
		t.Errorf("with a resource under the term, %d jobs queued, want 1", n)
	}
}

func TestSameSlot(t *testing.T) {
	t.Parallel()
	if got := keySlot("123456789"); got != 12739 { // CRC16/XMODEM's check value 0x31C3, mod 16384
		t.Errorf("keySlot(123456789) = %d, want 12739", got)
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"{signpost}:q:subscription", "{signpost}:i:Subscription:_client=a", true},
		{"{user1000}.following", "{user1000}.followers", true},
		{"foo{}{bar}", "foo{}{bar}x", false}, // an empty tag: the whole key is hashed
		{"foo{{bar}}zap", "{bar", true},      // the tag is "{bar"
		{"{signpost:0.a}:q:delivery", "{signpost}:i:Subscription:_client=a", false},
	} {
		if got := sameSlot(c.a, c.b); got != c.same {
			t.Errorf("sameSlot(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// The memory is bounded in bytes too, and a resource whose entries are
// large (long identifiers a client chose) is not remembered at all: reads
// of such resources must not grow the process.
func TestIndexedMemoryBoundedInBytes(t *testing.T) {
	t.Parallel()
	var im indexedMemory
	big := strings.Repeat("k", indexedEntryMax+1)
	im.remember("big", 1, big)
	if _, ok := im.take("big", 1); ok {
		t.Error("an entry over indexedEntryMax was remembered")
	}
	fits := strings.Repeat("k", indexedEntryMax)
	for i := range 4 * indexedBytesCap / indexedEntryMax {
		im.remember("r"+strconv.Itoa(i), 1, fits)
		if im.bytes > indexedBytesCap {
			t.Fatalf("%d bytes remembered, over %d", im.bytes, indexedBytesCap)
		}
	}
	sum := 0
	for _, e := range im.m {
		sum += len(e.entries)
	}
	if sum != im.bytes {
		t.Errorf("bytes counted %d, held %d", im.bytes, sum)
	}
}

// Only Read remembers: a page of resources (ReadMany) does not.
func TestReadManyRemembersNothing(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")}}); err != nil || !res.OK() {
		t.Fatalf("create: %+v %v", res, err)
	}
	if _, err := s.ReadMany(ctx, []string{"Task/t1"}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.indexed.m); n != 0 {
		t.Errorf("ReadMany remembered %d entries", n)
	}
	if _, err := s.Read(ctx, "Task", "t1"); err != nil {
		t.Fatal(err)
	}
	if n := len(s.indexed.m); n != 1 {
		t.Errorf("Read remembered %d entries, want 1", n)
	}
}

// A term holding a newline (an identifier's value may) is one index key,
// removed when the resource no longer carries it: the hash's list of keys
// is newline-separated.
func TestTermWithANewlineIsOneKey(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	rdb := r.Client()
	ctx := context.Background()
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Patient", "p1", 1, 0, "identifier=mrn|a\nb", "_client=a")}}); err != nil || !res.OK() {
		t.Fatalf("create: %+v %v", res, err)
	}
	ids, _, err := s.Search(ctx, &gateway.StoreQuery{Type: "Patient", Groups: [][]string{{"identifier=mrn|a\nb"}}, Count: 10})
	if err != nil || len(ids) != 1 {
		t.Fatalf("search for the value with a newline: %v %v", ids, err)
	}
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Patient", "p1", 2, 1, "identifier=mrn|c", "_client=a")}}); err != nil || !res.OK() {
		t.Fatalf("update: %+v %v", res, err)
	}
	ids, _, err = s.Search(ctx, &gateway.StoreQuery{Type: "Patient", Groups: [][]string{{"identifier=mrn|a\nb"}}, Count: 10})
	if err != nil || len(ids) != 0 {
		t.Errorf("the old value still finds the Patient: %v %v", ids, err)
	}
	if n := rdb.ZCard(ctx, s.keys.term("Patient", "identifier=mrn|a\nb")).Val(); n != 0 {
		t.Errorf("the old index set holds %d", n)
	}
}
