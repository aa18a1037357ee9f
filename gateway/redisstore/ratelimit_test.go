package redisstore

import (
	"context"
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
