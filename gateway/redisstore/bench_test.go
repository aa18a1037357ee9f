package redisstore

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// referralCommit is shaped like the commit of one accepted referral: a
// ServiceRequest and its Task with their index terms (7 and 6) and token
// systems (and the Task's journey step), two unique keys and the delivery
// job, with bodies of the size the intake benchmark sends.
func referralCommit(i int) *gateway.Commit {
	n := strconv.Itoa(i)
	sr, task := "sr-"+n, "task-"+n
	now := time.UnixMilli(1_800_000_000_000 + int64(i))
	body := []byte(`{"resourceType":"ServiceRequest","id":"` + sr + `",` + strings.Repeat(`"x":"padding",`, 110) + `"status":"active"}`)
	srTerms := []string{"status=active", "identifier=https://example-gp.nhs.uk/referral-id|REF-" + n,
		"subject:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919",
		"requester:identifier=https://fhir.nhs.uk/Id/ods-organization-code|A81001",
		"code=http://snomed.info/sct|390893007", "_client=practice-a", "_provider=leeds-walking"}
	taskTerms := []string{"status=requested", "focus=ServiceRequest/" + sr, "owner=Organization/leeds-walking",
		"subject:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919",
		"requester:identifier=https://fhir.nhs.uk/Id/ods-organization-code|A81001", "_client=practice-a"}
	return &gateway.Commit{
		Unique: []gateway.UniqueKey{{Key: "referral|practice-a|https://example-gp.nhs.uk/referral-id|REF-" + n, Value: "ServiceRequest/" + sr},
			{Key: "referral-task|" + sr, Value: "Task/" + task}},
		Writes: []gateway.Write{
			{Resource: &gateway.Resource{Type: "ServiceRequest", ID: sr, Owner: "practice-a", Version: 1, LastUpdated: now, Body: body}, Terms: srTerms},
			{Resource: &gateway.Resource{Type: "Task", ID: task, Owner: "practice-a", Version: 1, LastUpdated: now, Body: body[:1000]}, Terms: taskTerms,
				Step: gateway.TaskStep{Status: gateway.TaskRequested}},
		},
		Jobs: []gateway.Job{{Queue: gateway.QueueDelivery, Fields: []string{"event", "referral", "task", task}}},
		Systems: []string{"ServiceRequest identifier https://example-gp.nhs.uk/referral-id",
			"ServiceRequest subject:identifier https://fhir.nhs.uk/Id/nhs-number",
			"ServiceRequest requester:identifier https://fhir.nhs.uk/Id/ods-organization-code",
			"ServiceRequest code http://snomed.info/sct", "Task subject:identifier https://fhir.nhs.uk/Id/nhs-number",
			"Task requester:identifier https://fhir.nhs.uk/Id/ods-organization-code"},
	}
}

// BenchmarkCommitReferral commits referrals one after another, and reports
// Redis's own CPU time per commit (from INFO), which is what bounds intake
// on one Redis: go test ./gateway/redisstore -run '^$' -bench CommitReferral
func BenchmarkCommitReferral(b *testing.B) {
	r := redistest.Start(b)
	s := New(r.Client(), "bench")
	if _, err := s.Commit(context.Background(), referralCommit(-1)); err != nil { // loads the script
		b.Fatal(err)
	}
	measureCommits(b, r, s, referralCommit)
}

// measureCommits runs commit(0..b.N-1) one after another and reports
// Redis's CPU per commit, and the script's own time against the time of
// the commands it calls: the difference is the script around them
// (arguments, Lua, redis.call).
func measureCommits(b *testing.B, r *redistest.Server, s *Store, commit func(int) *gateway.Commit) {
	ctx := context.Background()
	// As the intake target is set (deploy/bench/run.sh), not as shipped: with
	// "always" the fsync of every commit would swamp the script's own cost.
	if err := r.Client().ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		b.Fatal(err)
	}
	if err := r.Client().ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	before := redisCPU(b, r)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Commit(ctx, commit(i))
		if err != nil || !res.OK() {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((redisCPU(b, r)-before).Microseconds())/float64(b.N), "redis-µs/op")
	script, commands := commandTimes(b, r)
	b.ReportMetric(script/float64(b.N), "script-µs/op")
	b.ReportMetric(commands/float64(b.N), "commands-µs/op")
}

// commandTimes sums INFO commandstats: the microseconds spent in EVALSHA,
// and in every other command.
func commandTimes(b *testing.B, r *redistest.Server) (script, commands float64) {
	info, err := r.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || name == line {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				us, _ := strconv.ParseFloat(v, 64)
				switch name {
				case "evalsha":
					script += us
				case "info", "config":
				default:
					commands += us
				}
			}
		}
	}
	return script, commands
}

// redisCPU is the CPU time the Redis server has used (user + system).
func redisCPU(b *testing.B, r *redistest.Server) time.Duration {
	info, err := r.Client().Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// hostileCommit is referralCommit(i) with n more codings on the
// ServiceRequest, each in a system of its own that no commit has used
// before: the body a client controls, at the store.
func hostileCommit(i, n int) *gateway.Commit {
	c := referralCommit(i)
	sr := &c.Writes[0]
	for k := 0; k < n; k++ {
		system := "https://made-up.example/" + strconv.Itoa(i) + "/" + strconv.Itoa(k)
		sr.Terms = append(sr.Terms, "code="+system+"|C"+strconv.Itoa(k))
		c.Systems = append(c.Systems, "ServiceRequest code "+system)
	}
	return c
}

// BenchmarkCommitHostile runs the commit of a normal referral and of
// referrals with many codings in new systems, one after another, against a
// registry whose "ServiceRequest code" parameter is already full (so every
// new system overflows to bare entries, the costly path), then the largest
// commit the gateway's request bounds allow (boundedCommit), and reports for
// each the slowest script Redis ran (SLOWLOG, every command logged) and the
// slowest answer another client had to a PING sent meanwhile. The gateway
// now refuses a referral with more than 16 codings; the store is still
// given 4,000, to compare with what a client could once send. The sizes are
// set with SIGNPOST_HOSTILE_CODINGS (comma-separated; default 16,4000).
// Compare the figures within one run only: the machine is noisy.
//
//	go test ./gateway/redisstore -run '^$' -bench CommitHostile -benchtime 3x
func BenchmarkCommitHostile(b *testing.B) {
	sizes := []int{0, 16, 4000}
	if v := os.Getenv("SIGNPOST_HOSTILE_CODINGS"); v != "" {
		sizes = []int{0}
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	r := redistest.Start(b)
	s := New(r.Client(), "bench")
	ctx := context.Background()
	rdb := r.Client()
	if err := rdb.ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		b.Fatal(err)
	}
	// Fill the parameter's registry up to its cap.
	fill := referralCommit(-1)
	for k := 0; k < s.maxSystems; k++ {
		fill.Systems = append(fill.Systems, "ServiceRequest code https://registered.example/"+strconv.Itoa(k))
	}
	if res, err := s.Commit(ctx, fill); err != nil || !res.OK() {
		b.Fatal(res, err)
	}
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "slowlog-max-len", "1024").Err(); err != nil {
		b.Fatal(err)
	}
	next := 0
	type shape struct {
		name   string
		commit func(i int) *gateway.Commit
	}
	var shapes []shape
	for _, n := range sizes {
		shapes = append(shapes, shape{"codings=" + strconv.Itoa(n), func(i int) *gateway.Commit { return hostileCommit(i, n) }})
	}
	// A transaction of 100 ordinary referrals, which Signpost always took.
	shapes = append(shapes, shape{"100-referrals", func(i int) *gateway.Commit {
		c := &gateway.Commit{}
		for k := 0; k < conform.MaxTransactionEntries; k++ {
			r := referralCommit(i*1000 + k)
			c.Unique = append(c.Unique, r.Unique...)
			c.Writes = append(c.Writes, r.Writes...)
			c.Jobs = append(c.Jobs, r.Jobs...)
			c.Systems = r.Systems
		}
		return c
	}})
	// The largest commit the gateway's request bounds let through, with
	// every system over the cap: a transaction's worth of writes.
	shapes = append(shapes, shape{"request-bounds", boundedCommit})
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			if err := rdb.SlowLogReset(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			// Another client, on its own connection, pings for as long as
			// the commits run; its slowest answer is what everyone else
			// waits while one script runs.
			other := redis.NewClient(&redis.Options{Addr: r.Addr})
			defer other.Close()
			stop := make(chan struct{})
			type pings struct {
				worst time.Duration
				busy  int
			}
			done := make(chan pings)
			go func() {
				var p pings
				for {
					select {
					case <-stop:
						done <- p
						return
					default:
					}
					start := time.Now()
					if err := other.Ping(ctx).Err(); err != nil {
						p.busy++ // BUSY: a script ran past busy-reply-threshold
					}
					p.worst = max(p.worst, time.Since(start))
				}
			}()
			failed := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				next++
				// A commit whose script outlasts the client's read timeout
				// fails here although Redis applies it: counted, not fatal,
				// so the figures of such a run can still be read.
				res, err := s.Commit(ctx, sh.commit(next))
				if err != nil || !res.OK() {
					failed++
				}
			}
			b.StopTimer()
			close(stop)
			p := <-done
			// A commit given up on may still be running: wait for Redis.
			for rdb.Ping(ctx).Err() != nil {
				time.Sleep(100 * time.Millisecond)
			}
			var script int64
			for _, e := range rdb.SlowLogGet(ctx, 1024).Val() {
				if len(e.Args) > 0 && strings.EqualFold(e.Args[0], "evalsha") {
					script = max(script, e.Duration.Microseconds())
				}
			}
			b.ReportMetric(float64(script), "slowest-script-µs")
			b.ReportMetric(float64(p.worst.Microseconds()), "other-client-worst-µs")
			b.ReportMetric(float64(p.busy), "other-client-errors")
			b.ReportMetric(float64(failed), "failed-commits")
		})
	}
}

// BenchmarkSearchOthersData searches as a GP system with 10 Tasks of its
// own, by two statuses, in a store where other clients hold 200,000 Tasks
// with those statuses, and reports the slowest script (SLOWLOG): what one
// client's search costs everybody, as other clients' data grows.
//
//	go test ./gateway/redisstore -run '^$' -bench SearchOthersData -benchtime 20x
func BenchmarkSearchOthersData(b *testing.B) {
	r := redistest.Start(b)
	s := New(r.Client(), "bench")
	ctx := context.Background()
	rdb := r.Client()
	pipe := rdb.Pipeline()
	for i := 0; i < 200_000; i++ {
		id := "other-" + strconv.Itoa(i)
		status := []string{"status=requested", "status=accepted"}[i%2]
		pipe.ZAdd(ctx, s.keys.term("Task", status), redis.Z{Score: float64(i), Member: id})
		pipe.ZAdd(ctx, s.keys.term("Task", "_client=practice-b"), redis.Z{Score: float64(i), Member: id})
		if i%10_000 == 9_999 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := 0; i < 10; i++ {
		id := "own-" + strconv.Itoa(i)
		pipe.ZAdd(ctx, s.keys.term("Task", "status=requested"), redis.Z{Score: float64(i), Member: id})
		pipe.ZAdd(ctx, s.keys.term("Task", "_client=practice-a"), redis.Z{Score: float64(i), Member: id})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	q := &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested", "status=accepted"}, {"_client=practice-a"}}, Count: 50}
	if _, _, err := s.Search(ctx, q); err != nil { // loads the script
		b.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.SlowLogReset(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ids, total, err := s.Search(ctx, q)
		if err != nil || total != 10 || len(ids) != 10 {
			b.Fatalf("%v %d %v", ids, total, err)
		}
	}
	b.StopTimer()
	var script int64
	for _, e := range rdb.SlowLogGet(ctx, 128).Val() {
		if len(e.Args) > 0 && strings.EqualFold(e.Args[0], "evalsha") {
			script = max(script, e.Duration.Microseconds())
		}
	}
	b.ReportMetric(float64(script), "slowest-script-µs")
}

// BenchmarkPartitionCostOnOneRedis measures, in one run on one Redis, what
// spreading referrals over partitions costs where it buys nothing: the
// same referrals committed and the same searches run by a store that
// keeps one partition and by one that spreads over 16 (and legacy, 17
// visited by a search). It reports Redis's CPU per commit and per search
// (INFO cpu) and the wall time per search, for each, and their ratios.
//
//	go test ./gateway/redisstore -run '^$' -bench PartitionCostOnOneRedis -benchtime 2x
func BenchmarkPartitionCostOnOneRedis(b *testing.B) {
	const referrals, searches = 2000, 500
	r := redistest.Start(b)
	ctx := context.Background()
	type cost struct{ commitCPU, searchCPU, searchWall time.Duration }
	measure := func(s *Store) cost {
		var c cost
		before := redisCPU(b, r)
		for i := range referrals {
			cm := referralCommit(i)
			if s.Spread() {
				place := idPrefix(placeReferral(cm.Unique[0].Key))
				for _, w := range cm.Writes {
					w.Resource.ID = place + w.Resource.ID
				}
				cm.Unique[0].Value = "ServiceRequest/" + cm.Writes[0].Resource.ID
				cm.Unique[1] = gateway.UniqueKey{Key: "referral-task|" + cm.Writes[0].Resource.ID, Value: "Task/" + cm.Writes[1].Resource.ID}
			}
			if res, err := s.Commit(ctx, cm); err != nil || !res.OK() {
				b.Fatalf("commit %d: %+v %v", i, res, err)
			}
		}
		c.commitCPU = (redisCPU(b, r) - before) / referrals
		q := func() *gateway.StoreQuery {
			return &gateway.StoreQuery{Type: "Task", Groups: [][]string{{"status=requested"}, {"_client=practice-a"}}, Count: 20,
				Descending: true, Keyset: &gateway.Keyset{Snapshot: time.UnixMilli(1_900_000_000_000)}}
		}
		if _, _, err := s.Search(ctx, q()); err != nil { // loads the script
			b.Fatal(err)
		}
		before, start := redisCPU(b, r), time.Now()
		for range searches {
			ids, total, err := s.Search(ctx, q())
			if err != nil || total != referrals || len(ids) != 20 {
				b.Fatalf("search: %d ids of %d, %v", len(ids), total, err)
			}
		}
		c.searchWall = time.Since(start) / searches
		c.searchCPU = (redisCPU(b, r) - before) / searches
		return c
	}
	var one, many cost // summed over the runs
	for i := range b.N {
		// Each run in its own namespaces, the two measured in turn first,
		// so that neither gains from being measured on an emptier Redis.
		n := strconv.Itoa(i)
		spread := New(r.Client(), "spread"+n)
		spread.SpreadReferrals()
		var o, m cost
		if i%2 == 0 {
			o, m = measure(New(r.Client(), "one"+n)), measure(spread)
		} else {
			m, o = measure(spread), measure(New(r.Client(), "one"+n))
		}
		one.commitCPU, one.searchCPU, one.searchWall = one.commitCPU+o.commitCPU, one.searchCPU+o.searchCPU, one.searchWall+o.searchWall
		many.commitCPU, many.searchCPU, many.searchWall = many.commitCPU+m.commitCPU, many.searchCPU+m.searchCPU, many.searchWall+m.searchWall
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(us(one.commitCPU), "one-commit-redis-µs")
	b.ReportMetric(us(many.commitCPU), "spread-commit-redis-µs")
	b.ReportMetric(us(one.searchCPU), "one-search-redis-µs")
	b.ReportMetric(us(many.searchCPU), "spread-search-redis-µs")
	b.ReportMetric(us(one.searchWall), "one-search-wall-µs")
	b.ReportMetric(us(many.searchWall), "spread-search-wall-µs")
	b.ReportMetric(float64(many.commitCPU)/float64(one.commitCPU), "commit-ratio")
	b.ReportMetric(float64(many.searchCPU)/float64(one.searchCPU), "search-redis-ratio")
	b.ReportMetric(float64(many.searchWall)/float64(one.searchWall), "search-wall-ratio")
}

// taskChangeCommit is shaped like the commit recording a delivery: the
// referral's Task (of referralCommit(i)) at its next version with the same
// index terms and the delivered milestone, a Provenance of it, and the
// audit record of what was sent.
func taskChangeCommit(i int) *gateway.Commit {
	ref := referralCommit(i)
	task := *ref.Writes[1].Resource
	task.Version, task.LastUpdated = 2, task.LastUpdated.Add(time.Second)
	prov := &gateway.Resource{Type: "Provenance", ID: "prov-" + strconv.Itoa(i), Owner: "practice-a", Version: 1, LastUpdated: task.LastUpdated,
		Body: task.Body[:600]}
	return &gateway.Commit{
		Writes: []gateway.Write{{Resource: &task, Expect: 1, Terms: ref.Writes[1].Terms, Step: gateway.TaskStep{Status: gateway.TaskRequested, Business: gateway.BusinessDelivered}},
			{Resource: prov, Terms: []string{"target=Task/" + task.ID, "_client=practice-a"}}},
		Audit: &gateway.AuditRecord{Recorded: task.LastUpdated, Interaction: "export", Action: "R", Status: 200, Client: "leeds-walking", What: []string{"Task/" + task.ID + "/_history/1"}},
	}
}

// BenchmarkCommitTaskChange commits, one after another, the Task change
// each delivery records, over as many referrals, and reports Redis's CPU
// per commit as BenchmarkCommitReferral does, to compare the two in one run:
// go test ./gateway/redisstore -run '^$' -bench 'Commit(Referral|TaskChange)$'
func BenchmarkCommitTaskChange(b *testing.B) {
	r := redistest.Start(b)
	s := New(r.Client(), "bench")
	ctx := context.Background()
	for i := -1; i < b.N; i++ {
		if res, err := s.Commit(ctx, referralCommit(i)); err != nil || !res.OK() {
			b.Fatalf("%+v %v", res, err)
		}
	}
	if _, err := s.Commit(ctx, taskChangeCommit(-1)); err != nil { // the update's path, once
		b.Fatal(err)
	}
	measureCommits(b, r, s, taskChangeCommit)
}
