package redisstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// On a Redis Cluster what walks or measures the whole Redis looks at every
// primary, not at whichever node a keyless command would reach: the
// namespaces and accounts of two deployments whose tags sit on different
// primaries are all found, and the memory watch reports a primary's.
func TestWholeRedisReadsOnACluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	cc := NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()}, nil)
	t.Cleanup(func() { cc.Close() })
	ctx := context.Background()
	// Namespaces whose tags hash to slots on different primaries.
	var names []string
	seen := map[string]bool{}
	for _, ns := range []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"} {
		p := c.PrimaryFor("{" + ns + "}").Addr
		if !seen[p] {
			seen[p] = true
			names = append(names, ns)
		}
	}
	if len(names) < 2 {
		t.Fatalf("the namespaces tried all hash to one primary")
	}
	for _, ns := range names {
		s := New(cc, ns)
		if _, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddUser(ctx, account.PortalUser{Email: ns + "@example.org", PasswordHash: "x", Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	s := New(cc, names[0])
	got, err := s.Namespaces(ctx)
	if err != nil || !slices.Equal(got, slices.Sorted(slices.Values(names))) {
		t.Errorf("Namespaces = %v %v, want %v", got, err, names)
	}
	for _, ns := range names {
		accounts, err := New(cc, ns).Accounts(ctx)
		if err != nil || len(accounts) != 1 || accounts[0].Email != ns+"@example.org" {
			t.Errorf("Accounts of %s = %+v %v", ns, accounts, err)
		}
	}
	if m, err := s.Memory(ctx); err != nil || m.Used <= 0 {
		t.Errorf("Memory = %+v %v", m, err)
	}
}
