package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestLimiterAllowsBurstThenRefuses(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	l := s.Limiter(10, 5) // 10/s sustained, bursts of 5
	ctx := context.Background()
	allowed := 0
	var wait time.Duration
	for i := 0; i < 8; i++ {
		ok, retry, err := l.Allow(ctx, "practice-a")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		} else if wait == 0 {
			wait = retry
		}
	}
	// A burst of 5, and perhaps one more if 100 ms passed meanwhile.
	if allowed < 5 || allowed > 6 {
		t.Errorf("%d of 8 allowed at once, want the burst of 5", allowed)
	}
	if wait <= 0 || wait > 100*time.Millisecond {
		t.Errorf("retry after %v, want within one interval (100 ms)", wait)
	}
	// Another client has its own allowance.
	if ok, _, _ := l.Allow(ctx, "practice-b"); !ok {
		t.Error("practice-b limited by practice-a's requests")
	}
}

// A rate below one a second (the sign-in limit: one every six seconds)
// keeps its interval: the burst, then a wait of up to one interval.
func TestLimiterBelowOneASecond(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	l := s.Limiter(1.0/6, 2)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if ok, _, err := l.Allow(ctx, "web-sign-in:192.0.2.1"); err != nil || !ok {
			t.Fatalf("attempt %d of the burst of 2 refused (%v)", i+1, err)
		}
	}
	ok, retry, err := l.Allow(ctx, "web-sign-in:192.0.2.1")
	if err != nil || ok {
		t.Fatalf("third attempt allowed=%v (%v), want refused", ok, err)
	}
	if retry <= time.Second || retry > 6*time.Second {
		t.Errorf("retry after %v, want most of the 6 s interval", retry)
	}
}

// The limiter's keys carry Signpost's hash tag as their first braces, so
// on Redis Cluster they sit in the slot of every other Signpost key.
func TestLimiterKeysShareTheHashTag(t *testing.T) {
	t.Parallel()
	s, r := newStore(t)
	if _, _, err := s.Limiter(10, 5).Allow(context.Background(), "client:practice-a"); err != nil {
		t.Fatal(err)
	}
	keys := r.Client().Keys(context.Background(), "*").Val()
	if len(keys) != 1 {
		t.Fatalf("keys %q, want the one of the limit", keys)
	}
	open := strings.IndexByte(keys[0], '{')
	if end := strings.IndexByte(keys[0], '}'); open < 0 || end < open || keys[0][open:end+1] != "{test}" {
		t.Errorf("rate-limit key %q: its hash tag is not {test}", keys[0])
	}
}
