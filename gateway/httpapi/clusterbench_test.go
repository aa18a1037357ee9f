package httpapi_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/usecases"
)

// BenchmarkClusterBalance sends referrals from 50 GP systems into a
// loopback Redis Cluster (three primaries, each with a replica;
// acknowledged once the replica has them), then searches, and reports how
// the keys and the commands fall on the primaries and what a commit and a
// search cost on the primary that ran them (INFO commandstats) — the
// measured per-partition costs deploy/BENCHMARKS.md projects from.
//
//	go test ./gateway/httpapi -run '^$' -bench ClusterBalance -benchtime 10000x
//
// It runs twice: "one tag", every key under one hash tag as a store that
// does not spread keeps them (one primary holds them all: reported, not
// asserted), and "spread", a store that spreads referrals over its
// partitions (SpreadReferrals), where each primary must hold within ±20 %
// of a third of the keys and of the commands, or the benchmark fails.
func BenchmarkClusterBalance(b *testing.B) {
	b.Run("one tag", func(b *testing.B) { clusterBalance(b, false) })
	b.Run("spread", func(b *testing.B) { clusterBalance(b, true) })
}

func clusterBalance(b *testing.B, spread bool) {
	c := redistest.StartCluster(b)
	cc := redisstore.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()}, nil)
	b.Cleanup(func() { cc.Close() })
	store := redisstore.New(cc, "signpost")
	store.WaitForReplicas(1, 2*time.Second)
	if spread {
		store.SpreadReferrals()
	}
	svc := usecases.New(gateway.Options{Store: store, Providers: testProviders, StrictNHSNumber: true, FHIRBase: "http://signpost.test/fhir"})
	ctx := context.Background()
	primaries := c.Primaries()
	reset := func() {
		for _, p := range primaries {
			if err := p.Client().ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}

	const clients = 50
	reset()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			caller := gateway.Caller{ClientID: fmt.Sprintf("practice-%02d", i), Kind: gateway.CallerGP,
				Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: fmt.Sprintf("A8%04d", i)}}
			for n := i; n < b.N; n += clients {
				body := referral(fmt.Sprintf("BAL-%02d-%d", i, n), "390893007")
				body = []byte(strings.Replace(string(body), practiceODS, caller.Organization.Value, 1))
				if _, err := svc.Intake.Create(ctx, caller, "ServiceRequest", body, "", nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	commits := commandStats(b, primaries)

	reset()
	const searches = 200
	for range searches {
		if _, _, err := store.Search(ctx, &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}}, Count: 20}); err != nil {
			b.Fatal(err)
		}
	}
	search := commandStats(b, primaries)

	var keys []int64
	var totalKeys, totalCalls int64
	for _, p := range primaries {
		n := p.Client().DBSize(ctx).Val()
		keys = append(keys, n)
		totalKeys += n
	}
	for _, s := range commits {
		totalCalls += s.calls
	}
	maxKeys, maxCalls := 0.0, 0.0
	for i, p := range primaries {
		ks, cs := float64(keys[i])/float64(totalKeys), float64(commits[i].calls)/float64(totalCalls)
		maxKeys, maxCalls = max(maxKeys, ks), max(maxCalls, cs)
		b.Logf("primary %s: %d keys (%.0f%%), %d commands (%.0f%%) for %d referrals; EVALSHA %.1f µs/call; search EVALSHA %.1f µs/call over %d calls",
			p.Addr, keys[i], 100*ks, commits[i].calls, 100*cs, b.N, commits[i].evalshaUsec, search[i].evalshaUsec, search[i].evalshaCalls)
	}
	b.ReportMetric(maxKeys, "max-key-share")
	b.ReportMetric(maxCalls, "max-command-share")
	b.ReportMetric(float64(totalKeys)/float64(b.N), "keys/referral")
	if spread && b.N >= 1000 { // fewer referrals fall unevenly by chance alone
		for i, p := range primaries {
			ks, cs := float64(keys[i])/float64(totalKeys), float64(commits[i].calls)/float64(totalCalls)
			if ks < 0.8/3 || ks > 1.2/3 || cs < 0.8/3 || cs > 1.2/3 {
				b.Errorf("primary %s holds %.1f%% of the keys and took %.1f%% of the commands: not within ±20%% of a third", p.Addr, 100*ks, 100*cs)
			}
		}
	}
}

// primaryStats is what INFO commandstats says of one primary.
type primaryStats struct {
	calls        int64   // every command
	evalshaCalls int64   // the scripts'
	evalshaUsec  float64 // Redis CPU per script call
}

func commandStats(b *testing.B, primaries []*redistest.Server) []primaryStats {
	b.Helper()
	out := make([]primaryStats, len(primaries))
	for i, p := range primaries {
		info, err := p.Client().Info(context.Background(), "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.HasPrefix(name, "cmdstat_") {
				continue
			}
			var calls int64
			var perCall float64
			for _, f := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(f, "=")
				switch k {
				case "calls":
					calls, _ = strconv.ParseInt(v, 10, 64)
				case "usec_per_call":
					perCall, _ = strconv.ParseFloat(v, 64)
				}
			}
			out[i].calls += calls
			if name == "cmdstat_evalsha" {
				out[i].evalshaCalls, out[i].evalshaUsec = calls, perCall
			}
		}
	}
	return out
}
