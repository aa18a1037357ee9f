package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway/redisstore"
)

// Each state of Redis's memory is said once: no limit at all, near the
// limit, and below it again.
func TestMemoryWatchSaysEachStateOnce(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	w := memoryWatch{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	ctx := context.Background()
	const mb = 1 << 20
	for _, m := range []redisstore.Memory{
		{Used: 10 * mb}, {Used: 20 * mb}, // no limit: one warning
		{Used: 50 * mb, Max: 100 * mb}, {Used: 81 * mb, Max: 100 * mb}, {Used: 90 * mb, Max: 100 * mb}, // near: one warning
		{Used: 78 * mb, Max: 100 * mb}, {Used: 70 * mb, Max: 100 * mb}, {Used: 60 * mb, Max: 100 * mb}, // below again: one line
		{Used: 85 * mb, Max: 100 * mb}, // near again
	} {
		w.see(ctx, m)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{"no maxmemory", "near its maxmemory", "below the warning level", "near its maxmemory"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d %s: want %q", i, lines[i], w)
		}
	}
}
