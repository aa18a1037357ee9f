package redisstore

import (
	"context"
	"testing"
	"time"
)

// The sending lease of a subscription is its own: it is not a write-back
// lease under another name, so neither kind can hold off the other, and it
// acts only for the token that holds it.
func TestSubscriptionLeaseIsItsOwn(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	// A write-back lease whose client and Task read like a subscription's
	// (how the sender once borrowed it) does not hold the subscription.
	if ok, err := s.LockWriteBack(ctx, "subscription", "sub-1", "wb", time.Minute); err != nil || !ok {
		t.Fatalf("LockWriteBack = %v, %v", ok, err)
	}
	if ok, err := s.LockSubscription(ctx, "sub-1", "a", time.Minute); err != nil || !ok {
		t.Fatalf("LockSubscription = %v, %v, want the lease", ok, err)
	}
	if ok, _ := s.LockSubscription(ctx, "sub-1", "b", time.Minute); ok {
		t.Error("a second sender took a held subscription")
	}
	if ok, _ := s.LockSubscription(ctx, "sub-2", "b", time.Minute); !ok {
		t.Error("one subscription's lease held another")
	}
	if ok, _ := s.RenewSubscription(ctx, "sub-1", "b", time.Hour); ok {
		t.Error("a sender renewed a lease it does not hold")
	}
	if ok, _ := s.RenewSubscription(ctx, "sub-1", "a", time.Hour); !ok {
		t.Error("the holder could not renew its lease")
	}
	if ttl := s.rdb.PTTL(ctx, s.keys.subSender("sub-1")).Val(); ttl <= time.Minute {
		t.Errorf("renewed lease lives %v, want about an hour", ttl)
	}
	if err := s.UnlockSubscription(ctx, "sub-1", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.LockSubscription(ctx, "sub-1", "c", time.Minute); ok {
		t.Error("another's unlock freed the lease")
	}
	if err := s.UnlockSubscription(ctx, "sub-1", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.LockSubscription(ctx, "sub-1", "c", time.Minute); !ok {
		t.Error("the lease was not free after its holder gave it back")
	}
	// The write-back lease is untouched by all of this.
	if got := s.rdb.Get(ctx, s.keys.writeBackLock("subscription", "sub-1")).Val(); got != "wb" {
		t.Errorf("write-back lease = %q, want %q", got, "wb")
	}
}
