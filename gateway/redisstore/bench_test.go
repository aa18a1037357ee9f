package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// referralCommit is shaped like the commit of one accepted referral: a
// ServiceRequest and its Task with their index terms (7 and 6) and token
// systems, two unique keys and the delivery job, with bodies of the size
// the intake benchmark sends.
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
			{Resource: &gateway.Resource{Type: "Task", ID: task, Owner: "practice-a", Version: 1, LastUpdated: now, Body: body[:1000]}, Terms: taskTerms},
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
	ctx := context.Background()
	// As the intake target is set (bench/run.sh), not as shipped: with
	// "always" the fsync of every commit would swamp the script's own cost.
	if err := r.Client().ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Commit(ctx, referralCommit(-1)); err != nil { // loads the script
		b.Fatal(err)
	}
	if err := r.Client().ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	before := redisCPU(b, r)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Commit(ctx, referralCommit(i))
		if err != nil || !res.OK() {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((redisCPU(b, r)-before).Microseconds())/float64(b.N), "redis-µs/op")
	// The script's own time against the time of the commands it calls: the
	// difference is the script around them (arguments, Lua, redis.call).
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
