package retention_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/retention"
)

// BenchmarkIntakeLatencyWhileRetentionRuns measures what a retention run
// costs the referrals arriving meanwhile: referral commits at a fixed rate
// (open loop: each starts on schedule, whatever the others take), first
// with nothing else running, then while retention removes closed
// referrals, on one Redis in one run. It reports the p50 and p99 of each
// phase and their ratios (the machines are shared: ratios, not times).
//
//	go test ./gateway/retention -run '^$' -bench IntakeLatencyWhileRetention -benchtime 1x
func BenchmarkIntakeLatencyWhileRetentionRuns(b *testing.B) {
	const (
		rounds = 3                      // quiet and retention phases alternate, so noise falls on both
		closed = 1500                   // closed referrals for each round's retention run to remove
		rate   = 500                    // intake referrals per second
		phase  = 2 * time.Second        // how long each phase runs
		pause  = 200 * time.Millisecond // retention's pause between batches, as serve runs it
		share  = 0.2                    // and its share of the time
	)
	r := redistest.Start(b)
	s := redisstore.New(r.Client(), "test")
	s.SetStampLag(pastClockLag)
	ctx := context.Background()
	old := now.Add(-period - time.Hour)
	measure := func(name string) []time.Duration {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		end := time.Now().Add(phase)
		for n := 0; time.Now().Before(end); n++ {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				referral(b, s, name+"-"+strconv.Itoa(n), "requested", now, false, false)
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return lat
	}
	quantile := func(lat []time.Duration, q float64) time.Duration {
		slices.Sort(lat)
		return lat[int(q*float64(len(lat)-1))]
	}
	for b.Loop() {
		var quiet, during []time.Duration
		removed := 0
		for round := range rounds {
			for i := range closed {
				referral(b, s, "old-"+strconv.Itoa(round)+"-"+strconv.Itoa(i), "completed", old, false, false)
			}
			quiet = append(quiet, measure("quiet-"+strconv.Itoa(round))...)
			run := &retention.Runner{Store: s, Policy: retention.Policy{ClosedAfter: period}, Now: func() time.Time { return now }, Pause: pause, Share: share}
			ctx, stop := context.WithCancel(ctx)
			done := make(chan retention.Report)
			go func() { rep, _ := run.Run(ctx, false); done <- rep }()
			during = append(during, measure("during-"+strconv.Itoa(round))...)
			stop() // what is left waits for the next run, as in serve
			removed += (<-done).Removed
		}
		if removed == 0 {
			b.Fatal("retention removed nothing")
		}
		b.ReportMetric(float64(quantile(quiet, 0.5).Microseconds()), "quiet-p50-µs")
		b.ReportMetric(float64(quantile(quiet, 0.99).Microseconds()), "quiet-p99-µs")
		b.ReportMetric(float64(quantile(during, 0.5).Microseconds()), "retention-p50-µs")
		b.ReportMetric(float64(quantile(during, 0.99).Microseconds()), "retention-p99-µs")
		b.ReportMetric(float64(quantile(during, 0.99))/float64(quantile(quiet, 0.99)), "p99-ratio")
		b.ReportMetric(float64(removed)/float64(rounds)/phase.Seconds(), "removed/s")
	}
}
