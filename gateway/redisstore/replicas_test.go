package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// With redis_wait_replicas a change is acknowledged only once a replica
// has it; with the replica gone it is answered unavailable (503), never as
// stored, and the caller's retry finds what the primary did apply.
func TestCommitWaitsForItsReplicas(t *testing.T) {
	t.Parallel()
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	s := New(primary.Client(), "test")
	s.WaitForReplicas(1, 2*time.Second) // ample: a loaded CI machine is slow to acknowledge
	ctx := context.Background()

	res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t1", 1, 0, "status=requested")}})
	if err != nil || !res.OK() {
		t.Fatalf("with its replica up: %+v %v", res, err)
	}
	// Acknowledged, so the replica has it already.
	if n, err := replica.Client().Exists(ctx, s.keys.resource("Task", "t1")).Result(); err != nil || n != 1 {
		t.Errorf("the acknowledged change is not on the replica: %d %v", n, err)
	}

	replica.Kill()
	s.WaitForReplicas(1, 200*time.Millisecond) // the wait that cannot be met, kept short
	_, err = s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t2", 1, 0, "status=requested")}})
	if !errors.Is(err, gateway.ErrUnavailable) {
		t.Fatalf("with no replica: %v, want unavailable", err)
	}
	// The primary applied it: the retry (same change, same precondition)
	// is found stale rather than applied twice, as any repeat is.
	if _, err := s.Read(ctx, "Task", "t2"); err != nil {
		t.Errorf("the primary does not hold the change it was not allowed to acknowledge: %v", err)
	}

	s.WaitForReplicas(0, 0)
	if _, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{write("Task", "t3", 1, 0, "status=requested")}}); err != nil {
		t.Errorf("with redis_wait_replicas 0 and no replica: %v", err)
	}
}
