package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway/auth"
)

func TestReplayCacheOneFreshUnderConcurrency(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	a := s.AuthStore()
	ctx := context.Background()
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := a.Remember(ctx, "practice-a", "jti-1", time.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Errorf("%d fresh, want 1", fresh.Load())
	}
	// Another client's jti of the same value is its own.
	if ok, _ := a.Remember(ctx, "practice-b", "jti-1", time.Now().Add(time.Minute)); !ok {
		t.Error("jti shared across clients")
	}
	// It expires when the assertion could no longer be accepted.
	ttl := s.rdb.PTTL(ctx, s.keys.jti("practice-a", "jti-1")).Val()
	if ttl <= 0 || ttl > time.Minute {
		t.Errorf("jti TTL %v", ttl)
	}
}

func TestTokenStoreRoundTripAndExpiry(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	a := s.AuthStore()
	ctx := context.Background()
	g := auth.Grant{ClientID: "walking", Kind: auth.KindProvider, Scopes: []string{"system/Task.rs"}, Expires: time.Now().Add(time.Minute).UTC().Truncate(time.Second)}
	if err := a.Save(ctx, "digest-1", g, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got, err := a.Load(ctx, "digest-1")
	if err != nil || got == nil || got.ClientID != "walking" || got.Kind != auth.KindProvider || !got.Expires.Equal(g.Expires) {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if got, err := a.Load(ctx, "unknown"); got != nil || err != nil {
		t.Errorf("unknown token: %+v %v", got, err)
	}
	if ttl := s.rdb.PTTL(ctx, s.keys.token("digest-1")).Val(); ttl <= 0 || ttl > 50*time.Millisecond {
		t.Errorf("token TTL %v", ttl)
	}
}
