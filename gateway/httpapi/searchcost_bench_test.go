package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/query"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/usecases"
)

// BenchmarkSearchHostile fills one Redis with 4,000 referrals of
// practice-a (40 transactions of 100), routed to the provider walking,
// then runs the costliest searches a client could shape, as practice-a,
// as walking and as the operator, and reports for each the Redis time of
// its scripts (usec of evalsha in INFO commandstats) and the sets
// combined (ZINTERSTORE and ZUNIONSTORE calls), or that it was refused
// (err true: past query.MaxUnions) — the figures of
// deploy/BENCHMARKS.md's search section.
//
//	go test ./gateway/httpapi -run '^$' -bench SearchHostile -benchtime 1x
func BenchmarkSearchHostile(b *testing.B) {
	r := redistest.Start(b)
	rdb := r.Client()
	store := redisstore.New(rdb, "signpost")
	svc := usecases.New(gateway.Options{Store: store, Providers: testProviders, StrictNHSNumber: true, FHIRBase: "http://signpost.test/fhir"})
	ctx := context.Background()
	gp, provider, operator := testCallers["practice-a"], testCallers["walking"], testCallers[""]
	const batches, per = 40, 100
	for n := range batches {
		var entries []string
		for i := range per {
			body := string(referral(fmt.Sprintf("COST-%d-%d", n, i), "390893007"))
			if i%2 == 1 { // two patients: an OR of both is two large sets
				body = strings.Replace(body, nhsNumber, nhsNumber2, 1)
			}
			entries = append(entries, entry(fmt.Sprintf("urn:uuid:sr-%d", i), "ServiceRequest", body))
		}
		if _, err := svc.Intake.Transaction(ctx, gp, transaction(entries...)); err != nil {
			b.Fatal(err)
		}
	}
	values := func(first string, n int, filler string) string {
		v := []string{first}
		for i := 1; i < n; i++ {
			v = append(v, filler+strconv.Itoa(i))
		}
		return strings.Join(v, ",")
	}
	const nhsSystem = "https://fhir.nhs.uk/Id/nhs-number"
	repeated := strings.TrimSuffix(strings.Repeat("requested,", 50), ",")
	type search struct {
		name, typ, query string
	}
	searches := []search{
		{"plain", "Task", "status=requested"},
		{"repeated", "Task", strings.Repeat("status="+repeated+"&", 4)},
		{"distinct", "Task", "status=" + values("requested", 50, "a") + "&status=" + values("requested", 50, "b") +
			"&status=" + values("requested", 50, "c") + "&status=" + values("requested", 50, "d")},
	}
	var pairs []string
	for i := range 100 {
		pairs = append(pairs, "status=requested,x"+strconv.Itoa(i))
	}
	searches = append(searches, search{"100 groups", "Task", strings.Join(pairs, "&")})
	var codes []string
	for i := range 100 {
		codes = append(codes, "code=390893007,x"+strconv.Itoa(i))
	}
	searches = append(searches, search{"100 bare code groups", "ServiceRequest", strings.Join(codes, "&")})
	var owners []string
	for i := range 12 {
		owners = append(owners, "owner=walking,x"+strconv.Itoa(i))
	}
	searches = append(searches, search{"12 bare owner groups", "Task", strings.Join(owners, "&")})
	var patients []string
	for i := range 66 {
		patients = append(patients, "subject:identifier="+url.QueryEscape(nhsSystem+"|"+nhsNumber+","+nhsSystem+"|"+nhsNumber2)+",x"+strconv.Itoa(i))
	}
	searches = append(searches, search{"66 two-patient groups", "ServiceRequest", strings.Join(patients, "&")},
		search{"4 two-patient groups", "ServiceRequest", strings.Join(patients[:query.MaxUnions], "&")})
	var ands []string
	for i := range 200 {
		ands = append(ands, "status=x"+strconv.Itoa(i))
	}
	searches = append(searches, search{"200 ANDs", "Task", strings.Join(ands, "&")})
	searches = append(searches, search{"deep offset", "Task", "status=requested,received&_offset=3900&_count=100"})

	b.ResetTimer()
	for range b.N {
		for _, who := range []struct {
			name   string
			caller gateway.Caller
		}{{"gp", gp}, {"provider", provider}, {"operator", operator}} {
			for _, s := range searches {
				params, err := url.ParseQuery(s.query)
				if err != nil {
					b.Fatal(err)
				}
				if !params.Has("_count") {
					params.Set("_count", "1")
				}
				if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
					b.Fatal(err)
				}
				res, err := svc.Search.Search(ctx, who.caller, s.typ, params, false)
				usec, calls := scriptCost(b, rdb)
				total := -1
				if res != nil {
					total = res.Total
				}
				fmt.Fprintf(os.Stderr, "%-8s %-22s total %5d  err %-5v  script %8d µs  zinterstore %4d  zunionstore %4d\n", who.name, s.name, total, err != nil, usec, calls["zinterstore"], calls["zunionstore"])
				b.ReportMetric(float64(usec), who.name+"/"+strings.ReplaceAll(s.name, " ", "-")+"-µs")
			}
		}
	}
}

// scriptCost reads INFO commandstats: the microseconds Redis spent in
// scripts (evalsha and eval) and the calls of each command.
func scriptCost(tb testing.TB, rdb *redis.Client) (int64, map[string]int) {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var usec int64
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || name == line {
			continue
		}
		for _, field := range strings.Split(stats, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch {
			case k == "calls":
				calls[name], _ = strconv.Atoi(v)
			case k == "usec" && (name == "evalsha" || name == "eval"):
				n, _ := strconv.ParseInt(v, 10, 64)
				usec += n
			}
		}
	}
	return usec, calls
}

// A security review's search: four parameters each of status=requested
// fifty times over, as a GP system holding referrals beside another's.
// Its script combined 200 sets one by one (4.2 s and 14.5 s of Redis with
// 4,000 Tasks, every client answered BUSY meanwhile); it finds what
// status=requested finds and combines what that does: one ZINTERSTORE with
// the caller's Tasks, no union. Counted from INFO commandstats, not timed.
func TestRepeatedSearchValuesCombineOneSet(t *testing.T) {
	t.Parallel()
	e := setup(t, onOneRedis)
	rdb := e.rdb.(*redis.Client)
	for _, who := range []string{"practice-a", "practice-b"} {
		var entries []string
		for i := range 3 {
			body := strings.Replace(string(referral(fmt.Sprintf("REP-%s-%d", who, i), "390893007")), practiceODS, testCallers[who].Organization.Value, 1)
			entries = append(entries, entry(fmt.Sprintf("urn:uuid:sr-%d", i), "ServiceRequest", body))
		}
		e.post("", transaction(entries...), as(who)...).must(t, 200)
	}
	many := strings.TrimSuffix(strings.Repeat("requested,", 50), ",")
	for _, query := range []string{"status=requested", strings.Repeat("status="+many+"&", 4)} {
		if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		if got := total(t, e.get("/Task?"+query+"&_count=1", as("practice-a")...)); got != 3 {
			t.Errorf("%.40s: total %d, want 3", query, got)
		}
		if _, calls := scriptCost(t, rdb); calls["zinterstore"] != 1 || calls["zunionstore"] != 0 {
			t.Errorf("%.40s: %d ZINTERSTORE and %d ZUNIONSTORE, want 1 and 0", query, calls["zinterstore"], calls["zunionstore"])
		}
	}
}
