package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
	// The write and its WAIT on one connection to the key's primary: WAIT
	// covers the writes of its own connection only, and a cluster client
	// sends a command without a key to any node. (A WAIT sent that way let
	// the primary be killed before its replica had the key, now and then.)
	node, err := cc.MasterForKey(ctx, "{x}:a")
	if err != nil {
		t.Fatal(err)
	}
	pipe := node.Pipeline()
	pipe.Set(ctx, "{x}:a", "1", 0)
	acked := redis.NewIntCmd(ctx, "wait", 1, 5000)
	_ = pipe.Process(ctx, acked)
	if _, err := pipe.Exec(ctx); err != nil || acked.Val() < 1 {
		t.Fatalf("the write reached %d replicas (%v), want 1", acked.Val(), err)
	}
	if n := len(c.Primaries()); n != 3 {
		t.Fatalf("%d primaries, want 3", n)
	}
	primary := c.PrimaryFor("{x}:a")
	replica := c.ReplicaOf(primary)
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

// A cluster started with a password and TLS answers only a client that
// gives the password and trusts the test's CA, on every node, replicas
// included (they replicate over TLS with the password).
func TestClusterWithPasswordAndTLS(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, redistest.ClusterPassword("synthetic-cluster-pass"), redistest.ClusterTLS())
	ctx := context.Background()
	cc := c.Client()
	if err := cc.Set(ctx, "{x}:a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cc.Wait(ctx, 1, 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if c.CAFile == "" || len(c.Primaries()) != 3 {
		t.Fatalf("CAFile %q, %d primaries; want a CA file and 3", c.CAFile, len(c.Primaries()))
	}
	plain := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr, MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("a node answered a client without TLS or password")
	}
}
