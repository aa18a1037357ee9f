package redisstore_test

import (
	"context"
	"testing"

	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

func TestMemoryReadsUsedAndLimit(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	ctx := context.Background()
	store := redisstore.New(r.Client(), "signpost")
	m, err := store.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Used <= 0 || m.Max != 0 || m.Share() != 0 {
		t.Errorf("without a limit: %+v, share %v; want some memory used, no limit, no share", m, m.Share())
	}
	if err := r.Client().ConfigSet(ctx, "maxmemory", "64mb").Err(); err != nil {
		t.Fatal(err)
	}
	m, err = store.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Max != 64<<20 || m.Share() <= 0 || m.Share() >= 1 {
		t.Errorf("with maxmemory 64mb: %+v, share %v", m, m.Share())
	}
}
