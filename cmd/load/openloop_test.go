package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A fixed-rate schedule holds rate × d requests, evenly spaced from the
// start, the last due before d has passed.
func TestScheduleIsEvenAndEndsBeforeTheDuration(t *testing.T) {
	for _, c := range []struct {
		rate float64
		d    time.Duration
		n    int
		gap  time.Duration
	}{
		{250, 10 * time.Second, 2500, 4 * time.Millisecond},
		{1000, 10 * time.Second, 10000, time.Millisecond},
		{2500, 10 * time.Second, 25000, 400 * time.Microsecond},
		{3, time.Second, 3, 333333333},
		{0.5, 3 * time.Second, 1, 0},
	} {
		s, err := newSchedule(c.rate, c.d)
		if err != nil {
			t.Fatal(err)
		}
		if s.n != c.n {
			t.Errorf("%v/s for %v: %d requests, want %d", c.rate, c.d, s.n, c.n)
		}
		if s.at(0) != 0 {
			t.Errorf("%v/s: the first is due at %v, want at once", c.rate, s.at(0))
		}
		if last := s.at(s.n - 1); last >= c.d {
			t.Errorf("%v/s for %v: the last is due at %v", c.rate, c.d, last)
		}
		for i := 1; i < s.n; i++ {
			if gap := s.at(i) - s.at(i-1); gap < c.gap-1 || gap > c.gap+1 {
				t.Fatalf("%v/s: request %d is due %v after the one before, want %v", c.rate, i, gap, c.gap)
			}
		}
		// No drift: the i-th is due at i/rate however many came before.
		if c.n > 1 {
			if got, want := s.at(c.n-1), time.Duration(float64(c.n-1)/c.rate*1e9); got-want > 1 || want-got > 1 {
				t.Errorf("%v/s: the last is due at %v, want %v", c.rate, got, want)
			}
		}
	}
	for _, bad := range []struct {
		rate float64
		d    time.Duration
	}{{0, time.Second}, {-1, time.Second}, {100, 0}, {100, 2 * time.Hour}} {
		if _, err := newSchedule(bad.rate, bad.d); err == nil {
			t.Errorf("newSchedule(%v, %v) did not fail", bad.rate, bad.d)
		}
	}
}

// The percentiles are nearest-rank over the sorted latencies.
func TestDistributionIsNearestRank(t *testing.T) {
	lat := make([]time.Duration, 0, 1000)
	for i := 1000; i >= 1; i-- { // 1..1000 ms, in reverse
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	p50, p90, p99, worst, mean := distribution(lat)
	if p50 != 500 || p90 != 900 || p99 != 990 || worst != 1000 || mean != 500.5 {
		t.Errorf("p50/p90/p99/max/mean = %v/%v/%v/%v/%v, want 500/900/990/1000/500.5", p50, p90, p99, worst, mean)
	}
	// One slow request in a hundred is the p99; in a hundred and one, not.
	lat = lat[:0]
	for i := 0; i < 99; i++ {
		lat = append(lat, time.Millisecond)
	}
	lat = append(lat, 250*time.Millisecond)
	if _, _, p99, worst, _ := distribution(lat); p99 != 1 || worst != 250 {
		t.Errorf("99 × 1 ms and 1 × 250 ms: p99 %v max %v, want 1 and 250", p99, worst)
	}
	lat = append(lat, 250*time.Millisecond)
	if _, _, p99, _, _ := distribution(lat); p99 != 250 {
		t.Errorf("99 × 1 ms and 2 × 250 ms: p99 %v, want 250", p99)
	}
	if p50, _, p99, worst, mean := distribution(nil); p50 != 0 || p99 != 0 || worst != 0 || mean != 0 {
		t.Error("no latencies gave figures")
	}
	if p50, _, p99, worst, _ := distribution([]time.Duration{3 * time.Millisecond}); p50 != 3 || p99 != 3 || worst != 3 {
		t.Error("one latency is every percentile")
	}
}

func TestIDFromLocation(t *testing.T) {
	for loc, want := range map[string]string{
		"http://127.0.0.1:8080/fhir/ServiceRequest/4d71-ab/_history/1": "4d71-ab",
		"/fhir/ServiceRequest/abc":                                     "abc",
		"https://signpost.example/fhir/ServiceRequest/0a7d":            "0a7d",
		"/fhir/Task/abc": "",
		"":               "",
	} {
		if got := idFromLocation(loc); got != want {
			t.Errorf("idFromLocation(%q) = %q, want %q", loc, got, want)
		}
	}
}

// The receiver notes each referral's first message by its ServiceRequest
// id, counts repeats and messages it cannot read, and answers 200.
func TestReceiverNotesFirstArrivals(t *testing.T) {
	r := &receiver{got: map[string]time.Time{}}
	send := func(body string) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/referrals", strings.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Errorf("answered %d", rec.Code)
		}
	}
	msg := func(id string) string {
		b, _ := json.Marshal(map[string]any{"type": "referral.requested",
			"referral": map[string]string{"serviceRequest": "http://127.0.0.1:1/fhir/ServiceRequest/" + id, "task": "http://127.0.0.1:1/fhir/Task/t"}})
		return string(b)
	}
	send(msg("a"))
	first := r.received()["a"]
	send(msg("b"))
	send(msg("a"))
	send(`{"type":"referral.requested"}`)
	send(`not json`)
	got := r.received()
	if len(got) != 2 || got["a"] != first || got["b"].IsZero() {
		t.Errorf("received %v", got)
	}
	if r.duplicates != 1 || r.unreadable != 2 {
		t.Errorf("duplicates %d, unreadable %d; want 1 and 2", r.duplicates, r.unreadable)
	}
}

// Deliveries are matched to the referrals sent; those after the deadline
// are not delivered "within", and messages for other referrals are counted
// apart. Latency runs from the POST's due time.
func TestJoinDeliveries(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	sent := map[string]time.Time{"a": t0, "b": t0.Add(time.Second), "c": t0.Add(2 * time.Second), "d": t0.Add(3 * time.Second)}
	got := map[string]time.Time{
		"a":      t0.Add(5 * time.Millisecond),
		"b":      t0.Add(time.Second + 40*time.Millisecond),
		"c":      t0.Add(9 * time.Second), // after the deadline
		"warmup": t0.Add(-time.Second),
	}
	lat, other, last := joinDeliveries(sent, got, t0.Add(5*time.Second))
	if len(lat) != 2 || other != 1 || !last.Equal(t0.Add(time.Second+40*time.Millisecond)) {
		t.Fatalf("lat %v, other %d, last %v", lat, other, last)
	}
	p50, _, p99, worst, _ := distribution(lat)
	if p50 != 5 || p99 != 40 || worst != 40 {
		t.Errorf("p50/p99/max = %v/%v/%v ms, want 5/40/40", p50, p99, worst)
	}
}

// The yardstick summary sets the figures of one run against issue 18's
// targets: ratios to S and F (and, held to none, to S+V), p99 against 2 ×
// F's + 1 ms, deliveries, the webhook p99, RSS; a run during an
// append-only file rewrite is shown beside them.
func TestYardstickVerdicts(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	add := func(r Result, latency time.Duration) {
		n := int(r.Created)
		lat := make([]time.Duration, n)
		for i := range lat {
			lat[i] = latency
		}
		r.LatenciesFile = filepath.Join(dir, r.Label+r.Mode+time.Duration(r.Rate).String())
		if err := writeLatencies(r.LatenciesFile, lat); err != nil {
			t.Fatal(err)
		}
		r.Seconds, r.Requests, r.Accepted = 10, r.Created, float64(r.Created)/10
		line, _ := json.Marshal(&r)
		lines = append(lines, string(line))
	}
	add(Result{Label: "F", Created: 60000, Conns: 64}, 10*time.Millisecond)
	add(Result{Label: "S", Created: 40000, Conns: 64}, 20*time.Millisecond)
	add(Result{Label: "SV", Created: 36000, Conns: 64}, 22*time.Millisecond)
	add(Result{Label: "signpost", Created: 30000, Conns: 64}, 30*time.Millisecond)
	add(Result{Label: "signpost", Mode: "rate", Rate: 200, Created: 2000,
		Webhook: &WebhookResult{Accepted: 2000, Delivered: 2000, DrainSeconds: 2, P99ms: 20, Connections: 16}}, 2*time.Millisecond)
	add(Result{Label: "F", Mode: "rate", Rate: 250, Created: 2500}, 2*time.Millisecond)
	add(Result{Label: "signpost", Mode: "rate", Rate: 250, Created: 2500,
		Webhook: &WebhookResult{Accepted: 2500, Delivered: 2500, DrainSeconds: 2}}, 5*time.Millisecond)
	add(Result{Label: "F", Mode: "rate", Rate: 1000, Created: 10000, LateMaxMs: 40}, 2*time.Millisecond)
	add(Result{Label: "signpost", Mode: "rate", Rate: 1000, Created: 10000,
		Webhook: &WebhookResult{Accepted: 10000, Delivered: 7000, DrainSeconds: 2}}, 6*time.Millisecond)
	// A run with Redis rewriting its append-only file is shown, and held
	// to no target: the 1,000/s verdict stays the steady state's.
	add(Result{Label: "signpost-rewriting", Mode: "rate", Rate: 1000, Created: 10000,
		Webhook: &WebhookResult{Accepted: 10000, Delivered: 10000, DrainSeconds: 2}}, 50*time.Millisecond)
	out := yardstickOf(t, filepath.Join(dir, "results.jsonl"), lines)
	// The connections the workers opened show beside the webhook latency.
	if !strings.Contains(out, "0.0 / 20.0 / 0.0 (16 connections)") {
		t.Errorf("no connection count in the fixed-rate table:\n%s", out)
	}
	if !strings.Contains(out, "1000  signpost-rewriting") {
		t.Errorf("no row for the run with a rewrite in the fixed-rate table:\n%s", out)
	}
	// S+V is shown beside S, with the ratios to it, and held to no target.
	for _, want := range []string{"signpost / SV = 0.83", "SV / S = 0.90", `"signpost_over_SV":0.833`, `"SV_over_S":0.9`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	_, verdicts, ok := strings.Cut(out, "Against issue 18's targets:\n")
	if !ok {
		t.Fatalf("no verdicts in:\n%s", out)
	}
	var got []string
	for _, line := range strings.Split(verdicts, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "{" && !strings.HasPrefix(f[0], "{") {
			got = append(got, strings.Join(f, " "))
		}
	}
	want := []string{
		"closed loop: Signpost ≥ 0.8 × S 0.75 × S NOT met",
		"closed loop: Signpost/F no worse than when filed (0.38) 0.50 × F met",
		"200/s: POST → webhook p99 ≤ 50 ms 20.0 ms (2000 of 2000 delivered) met",
		"250/s: Signpost p99 ≤ 2 × F's + 1 ms, no errors 5.00 ms against 5.00 ms, 0 errors met",
		"250/s: every referral delivered within 2 s of the run's end 2500 of 2500 met",
		"1000/s: Signpost p99 ≤ 2 × F's + 1 ms, no errors 6.00 ms against 5.00 ms, 0 errors NOT met (suspect: the generator fell 40 ms behind)",
		"1000/s: every referral delivered within 2 s of the run's end 7000 of 10000 NOT met",
		"peak RSS < 100 MiB 80.0 MiB met",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// With more than one round, each pooled closed-loop ratio, and the drain's
// over intake's, is followed by the ratio of each round (the n-th runs of
// the two), which shows how far the host moved between rounds; with one
// round, by nothing. The drain's verdict is on the rounds pooled.
func TestYardstickShowsEachRoundsRatio(t *testing.T) {
	dir := t.TempDir()
	// Each round: F, S, SV and Signpost's accepted referrals in 10 s, then
	// the seconds a worker took to drain what Signpost's intake queued.
	run := func(name string, rounds [][5]int64) string {
		var lines []string
		for i, round := range rounds {
			for k, label := range []string{"F", "S", "SV", "signpost"} {
				r := Result{Label: label, Conns: 64, Created: round[k], Seconds: 10, Requests: round[k], Accepted: float64(round[k]) / 10}
				r.LatenciesFile = filepath.Join(dir, name+label+strconv.Itoa(i))
				if err := writeLatencies(r.LatenciesFile, []time.Duration{time.Millisecond}); err != nil {
					t.Fatal(err)
				}
				line, _ := json.Marshal(&r)
				lines = append(lines, string(line))
			}
			d := Result{Label: "signpost", Mode: "drain", Requests: round[3], Created: round[3], Seconds: float64(round[4])}
			d.Throughput = float64(d.Created) / d.Seconds
			line, _ := json.Marshal(&d)
			lines = append(lines, string(line))
		}
		return yardstickOf(t, filepath.Join(dir, name+".jsonl"), lines)
	}
	// Round 1 drains 30,000 in 12 s (2,500/s against 3,000/s), round 2
	// 24,000 in 8 s (3,000/s against 2,400/s): pooled 54,000 in 20 s,
	// 2,700/s against 2,700/s.
	two := run("two", [][5]int64{{60000, 40000, 36000, 30000, 12}, {60000, 40000, 44000, 24000, 8}})
	for _, want := range []string{
		"drained / intake's closed-loop rate = 1.00 (each round: 0.83, 1.25)\n",
		`"drain_over_intake_rounds":[0.833,1.25]`,
		"delivery drains at least intake's sustained (closed-loop) rate  2700/s against 2700/s",
		"signpost / S = 0.68 (each round: 0.75, 0.60)\n",
		"SV / S = 1.00 (each round: 0.90, 1.10)\n",
		"S / F = 0.67 (each round: 0.67, 0.67)\n",
		`"signpost_over_S_rounds":[0.75,0.6]`,
		`"SV_over_S_rounds":[0.9,1.1]`,
	} {
		if !strings.Contains(two, want) {
			t.Errorf("two rounds: no %q in:\n%s", want, two)
		}
	}
	one := run("one", [][5]int64{{60000, 40000, 36000, 30000, 12}})
	if strings.Contains(one, "each round") || strings.Contains(one, "_rounds") {
		t.Errorf("one round, yet ratios by round:\n%s", one)
	}
	for _, want := range []string{"signpost / S = 0.75\n", "drained / intake's closed-loop rate = 0.83\n"} {
		if !strings.Contains(one, want) {
			t.Errorf("one round: no %q in:\n%s", want, one)
		}
	}
}

// A run in which other work inside the machine took a large share of the
// CPUs (a build during the yardstick) is named, and the verdicts that rest
// on it are marked suspect; the runs around it are not.
func TestYardstickMarksDisturbedRuns(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	add := func(r Result) {
		r.LatenciesFile = filepath.Join(dir, strconv.Itoa(len(lines)))
		if err := writeLatencies(r.LatenciesFile, []time.Duration{time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(&r)
		lines = append(lines, string(line))
	}
	for round, others := range []float64{0.01, 0.45} {
		for _, label := range []string{"F", "S", "signpost"} {
			r := Result{Label: label, Conns: 64, Created: 30000, Requests: 30000, Seconds: 10, Accepted: 3000, Others: 0.01}
			if label == "signpost" {
				r.Others = others
			}
			add(r)
		}
		if round == 0 {
			add(Result{Label: "signpost", Mode: "drain", Requests: 30000, Created: 30000, Seconds: 10, Throughput: 3000})
		}
	}
	add(Result{Label: "F", Mode: "rate", Rate: 1000, Created: 10000, Requests: 10000, Seconds: 10, Accepted: 1000, Others: 0.01})
	add(Result{Label: "signpost", Mode: "rate", Rate: 1000, Created: 10000, Requests: 10000, Seconds: 10, Accepted: 1000, Others: 0.3})
	got := yardstickOf(t, filepath.Join(dir, "rounds.jsonl"), lines)
	for _, want := range []string{
		"disturbed: round 2's signpost, other work in the machine took 45% of its CPUs' time",
		"disturbed: the 1000/s run of signpost, other work in the machine took 30% of its CPUs' time",
		"1000/s: Signpost p99 ≤ 2 × F's + 1 ms, no errors",
		`"disturbed":["closed signpost round 2","rate 1000 signpost"]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "round 1's") || strings.Contains(got, "'s F,") || strings.Contains(got, "run of F") {
		t.Errorf("an undisturbed run is named as disturbed:\n%s", got)
	}
	// Each verdict resting on a disturbed run says so, with the share of the
	// runs it compares (pooled: round 2's 45 % over two rounds is 23 %).
	for prefix, want := range map[string]string{
		"closed loop: Signpost ≥ 0.8 × S":       "met (suspect: other work took 23% of the machine)",
		"closed loop: Signpost/F":               "met (suspect: other work took 23% of the machine)",
		"1000/s: Signpost p99 ≤ 2 × F's + 1 ms": "met (suspect: other work took 30% of the machine)",
	} {
		if line := lineStarting(got, prefix); !strings.HasSuffix(line, want) {
			t.Errorf("verdict %q, want it to end %q", line, want)
		}
	}
}

// lineStarting is the first line of out that starts with prefix once
// trimmed, or "".
func lineStarting(out, prefix string) string {
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// yardstickOf is the yardstick's report of the runs given as JSON lines,
// written to path, with a peak RSS of 80 MiB.
func yardstickOf(t *testing.T, path string, lines []string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := yardstick(&out, path, 80<<10); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
