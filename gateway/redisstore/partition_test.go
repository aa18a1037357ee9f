package redisstore

import (
	"context"
	"testing"

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
