package gateway

import (
	"testing"
	"time"
)

// NextVersionTime, which the gateway stamps a next version with, is never
// before the version it replaces, at the millisecond precision stored.
func TestNextVersionTimeNeverGoesBack(t *testing.T) {
	prev := time.Date(2026, 1, 2, 3, 4, 5, 6_700_000, time.UTC)
	for _, now := range []time.Time{prev.Add(-7 * time.Millisecond), prev.Add(-time.Hour), prev, prev.Add(200 * time.Microsecond)} {
		if got := NextVersionTime(now, prev); got.UnixMilli() != prev.UnixMilli() {
			t.Errorf("now %s before or at previous %s: stamped %s", now, prev, got)
		}
	}
	later := prev.Add(5 * time.Millisecond)
	if got := NextVersionTime(later, prev); got.UnixMilli() != later.UnixMilli() {
		t.Errorf("now %s after previous: stamped %s", later, got)
	}
}
