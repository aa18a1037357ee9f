package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// An update removes the index entries of the version it replaces, and
// commit.lua takes them in KEYS: read first, checked in the script. When
// they changed between the read and the script (another version written
// meanwhile, under an AnyVersion write), the commit reads them again; the
// entries the replaced version had are gone, the new ones are there.
func TestCommitRereadsChangedIndexEntries(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	ctx := context.Background()
	rdb := r.Client()
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")}}); err != nil || !res.OK() {
		t.Fatalf("create: %+v %v", res, err)
	}
	// Between this update's read and its script, another writer moves the
	// Task on: its entries are now status=accepted, not those read.
	raced := false
	s.afterRead = func() {
		if raced {
			return
		}
		raced = true
		if res, err := s.commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 2, 1, "status=accepted")}}, randomToken(),
			[][]string{{s.keys.term("Task", "status=requested")}}, nil); err != nil || !res.OK() {
			t.Errorf("the racing update: %+v %v", res, err)
		}
	}
	res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 3, gateway.AnyVersion, "status=completed")}})
	s.afterRead = nil
	if err != nil || !res.OK() {
		t.Fatalf("update: %+v %v", res, err)
	}
	for term, want := range map[string]int64{"status=requested": 0, "status=accepted": 0, "status=completed": 1} {
		if n := rdb.ZCard(ctx, s.keys.term("Task", term)).Val(); n != want {
			t.Errorf("%s holds %d, want %d", term, n, want)
		}
	}

	// Entries that change before every attempt: refused, nothing written.
	version := 3
	s.afterRead = func() {
		version++
		rdb.HSet(ctx, s.keys.resource("Task", "t1"), "x", s.keys.term("Task", "status=x"+string(rune('a'+version))))
	}
	defer func() { s.afterRead = nil }()
	_, err = s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 4, gateway.AnyVersion, "status=failed")}})
	if !errors.Is(err, ErrKeptChanging) {
		t.Fatalf("commit = %v, want ErrKeptChanging", err)
	}
	if v := rdb.HGet(ctx, s.keys.resource("Task", "t1"), "v").Val(); v != "3" {
		t.Errorf("version %s after a refused commit, want 3", v)
	}
}

// Given up on, a commit is a conflict the caller may send again, never an
// internal error.
func TestKeptChangingIsAConflict(t *testing.T) {
	t.Parallel()
	if e := gateway.AsError(fmt.Errorf("committing a change: %w", ErrKeptChanging)); e.Kind != gateway.KindConflict {
		t.Errorf("kind %v, want KindConflict", e.Kind)
	}
}
