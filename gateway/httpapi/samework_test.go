package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/cmd/load/benchkit"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// The same-work floor S of the performance harness (cmd/floor -mode same)
// claims to write exactly what Signpost's commit of one new referral
// writes. Both take the load generator's referral; the Redis commands that
// write, and the shape of what they write (hash fields, stream fields, how
// many keys of each type), must be the same. Only the reads commit.lua
// makes to check its preconditions, and the script itself, are Signpost's
// alone.
func TestSameWorkFloorWritesWhatACommitWrites(t *testing.T) {
	bodies := benchkit.NewBodies("same")
	ctx := context.Background()

	// Signpost: the second referral of a fresh store (the first registers
	// the token systems, which only a new system's first referral does), on
	// one Redis, which never spreads referrals (S keeps one tag).
	e := setup(t, unspread, onOneRedis)
	sp := e.redis.Client()
	post := func(url string, n uint64, header ...string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(bodies.Append(nil, n))))
		req.Header.Set("Content-Type", "application/fhir+json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d", url, res.StatusCode)
		}
	}
	post(e.base+"/ServiceRequest", 1, callerHeader, "practice-a")
	before := keyShapes(t, sp, "{signpost}")
	if err := sp.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	post(e.base+"/ServiceRequest", 2, callerHeader, "practice-a")
	spWrites, spReads := writeCommands(t, sp)
	spShape := shapeDelta(before, keyShapes(t, sp, "{signpost}"))

	// S, on its own Redis.
	r := redistest.Start(t)
	same := r.Client()
	srv := httptest.NewServer(benchkit.SameWorkHandler(same, 1<<20))
	t.Cleanup(srv.Close)
	post(srv.URL+"/fhir/ServiceRequest", 1)
	before = keyShapes(t, same, "{samework}")
	if err := same.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	post(srv.URL+"/fhir/ServiceRequest", 2)
	sWrites, sReads := writeCommands(t, same)
	sShape := shapeDelta(before, keyShapes(t, same, "{samework}"))

	want := "hset=2 set=2 xadd=2 zadd=15"
	if spWrites != want {
		t.Errorf("Signpost's commit wrote %s; the S write set was derived from %s: derive it again", spWrites, want)
	}
	if sWrites != spWrites {
		t.Errorf("S wrote %s, Signpost's commit %s", sWrites, spWrites)
	}
	if sReads != "exec=1 multi=1" {
		t.Errorf("S ran %q besides its writes, want one MULTI/EXEC and nothing else", sReads)
	}
	t.Logf("Signpost's commit besides its writes: %s", spReads)
	t.Logf("keys one referral adds or changes, S and Signpost alike: %q", sShape)
	if !slices.Equal(sShape, spShape) {
		t.Errorf("what one referral adds:\nS        %q\nSignpost %q", sShape, spShape)
	}
}

// writeCommands reads INFO commandstats (which counts the commands a script
// runs too) and returns the write commands run and, apart, the others, as
// "name=calls" sorted by name. INFO and CONFIG are the test's own.
func writeCommands(t *testing.T, rdb *redis.Client) (writes, others string) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var w, o []string
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || name == line || name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		switch name {
		case "hset", "zadd", "set", "xadd":
			w = append(w, name+"="+calls)
		default:
			o = append(o, name+"="+calls)
		}
	}
	slices.Sort(w)
	slices.Sort(o)
	return strings.Join(w, " "), strings.Join(o, " ")
}

// keyShapes describes every key under the namespace without its ids: its
// type, and for a hash its field names, for a stream its last entry's field
// names, for a sorted set its size.
func keyShapes(t *testing.T, rdb *redis.Client, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	keys, err := rdb.Keys(ctx, ns+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		typ := rdb.Type(ctx, k).Val()
		desc := typ
		switch typ {
		case "hash":
			f := rdb.HKeys(ctx, k).Val()
			slices.Sort(f)
			desc += " " + strings.Join(f, ",")
		case "stream":
			last := rdb.XRevRangeN(ctx, k, "+", "-", 1).Val()
			if len(last) == 1 {
				var f []string
				for name := range last[0].Values {
					f = append(f, name)
				}
				slices.Sort(f)
				desc += " " + strings.Join(f, ",") + " len " + strconv.FormatInt(rdb.XLen(ctx, k).Val(), 10)
			}
		case "zset":
			desc += " card " + strconv.FormatInt(rdb.ZCard(ctx, k).Val(), 10)
		}
		out[k] = desc
	}
	return out
}

// shapeDelta lists, sorted, the shapes of the keys that are new or changed
// from before to after, without their names (which hold ids and namespaces).
func shapeDelta(before, after map[string]string) []string {
	var out []string
	for k, d := range after {
		if before[k] != d {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}
