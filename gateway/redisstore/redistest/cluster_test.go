package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// The cluster a test gets is whole at once (a write routes to its slot's
// primary, which has a replica in sync), and a primary killed is replaced
// by its replica, which holds what was written.
func TestClusterStartsWholeAndFailsOver(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	ctx := context.Background()
	cc := c.Client()
	if err := cc.Set(ctx, "{x}:a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Primaries()); n != 3 {
		t.Fatalf("%d primaries, want 3", n)
	}
	primary := c.PrimaryFor("{x}:a")
	replica := c.ReplicaOf(primary)
	if err := cc.Wait(ctx, 1, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	primary.Kill()
	c.WaitPromoted(replica, 20*time.Second)
	if now := c.PrimaryFor("{x}:a"); now != replica {
		t.Fatalf("after the failover %s serves the slot, want the replica %s", now, replica)
	}
	// The client learns the new primary from the first errors it meets.
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := cc.Get(ctx, "{x}:a").Result()
		if err == nil {
			if v != "1" {
				t.Fatalf("after the failover the value is %q, want 1", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client still fails 5s after the failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
