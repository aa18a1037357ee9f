package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// compare pools each label's rounds, in the order first run, with the
// percentiles over every latency of every round, and gives each label's
// throughput relative to the first.
func TestComparePoolsRoundsByLabel(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	round := func(label string, created int64, latency time.Duration, n int) {
		lat := make([]time.Duration, n)
		for i := range lat {
			lat[i] = latency
		}
		file := filepath.Join(dir, label+"-"+latency.String())
		if err := writeLatencies(file, lat); err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(&Result{Label: label, Seconds: 10, Requests: created, Created: created,
			Accepted: float64(created) / 10, LatenciesFile: file})
		lines = append(lines, string(line))
	}
	round("1-main", 40000, 10*time.Millisecond, 90)
	round("2-.", 50000, 8*time.Millisecond, 90)
	round("1-main", 60000, 30*time.Millisecond, 10)
	round("2-.", 60000, 8*time.Millisecond, 10)
	path := filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := compare(&out, path); err != nil {
		t.Fatal(err)
	}
	// The last section: one line per label, its accepted/s over the first's
	// (100,000 and 110,000 referrals in 20 s each).
	_, relative, ok := strings.Cut(out.String(), "Accepted/s relative to 1-main:\n")
	if !ok {
		t.Fatalf("no comparison in:\n%s", out.String())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(relative), "\n") {
		got = append(got, strings.Join(strings.Fields(line), " "))
	}
	if strings.Join(got, "; ") != "1-main 1.000; 2-. 1.100" {
		t.Errorf("relative throughput %q, want 1-main 1.000; 2-. 1.100", got)
	}
	rounds, err := readRounds(path)
	if err != nil {
		t.Fatal(err)
	}
	main, err := pool(rounds, "1-main")
	if err != nil {
		t.Fatal(err)
	}
	// 90 latencies of 10 ms and 10 of 30 ms: the 99th percentile is 30 ms,
	// which no single round's own p99 averaged with the other's would give.
	if main.P50ms != 10 || main.P99ms != 30 {
		t.Errorf("pooled p50/p99 = %v/%v ms, want 10/30", main.P50ms, main.P99ms)
	}
	if _, err := pool(rounds, "3-other"); err == nil {
		t.Error("pooling a label with no rounds did not fail")
	}
}

// Steal, the CPU time the hypervisor gave to other machines, is reported
// beside how busy the machine was: as a fraction of all CPUs' time between
// two samples, and pooled over runs by their length, as busy is.
func TestStealIsReportedBesideBusy(t *testing.T) {
	// 1,000 ticks of all CPUs' time (10 s): 900 busy, 50 of them stolen;
	// the processes watched used 5 s of it, so 3.5 s went to others.
	a := cpuSample{procs: map[string]float64{"server": 1}, all: 1000, busy: 400, steal: 10}
	b := cpuSample{procs: map[string]float64{"server": 4}, self: 2, all: 2000, busy: 1300, steal: 60}
	procs, busy, steal, others := cpuDelta(a, b)
	if procs["server"] != 3 || procs["load"] != 2 || busy != 0.9 || steal != 0.05 || math.Abs(others-0.35) > 1e-9 {
		t.Errorf("cpuDelta: %v, busy %v, steal %v, others %v; want server 3 s, load 2 s, busy 0.9, steal 0.05, others 0.35", procs, busy, steal, others)
	}
	// A process the machine's clock has not caught up with yet: never below none.
	if _, _, _, others := cpuDelta(cpuSample{}, cpuSample{self: 3, all: 200, busy: 100}); others != 0 {
		t.Errorf("others %v, want 0 when the processes watched account for all the busy time", others)
	}
	if got := (&Result{MachineBusy: 0.9, Steal: 0.05, Others: 0.35}).busy(); got != "machine busy 90%, steal 5.0%, others 35%" {
		t.Errorf("shown as %q", got)
	}
	if got := (&Result{Mode: "drain", MachineBusy: 0.9, Steal: 0.05, Others: 0.35}).busy(); got != "machine busy 90%, steal 5.0%" {
		t.Errorf("a drain (its worker not watched) shown as %q", got)
	}
	agg, err := pool([]*Result{{Label: "x", Seconds: 10, Steal: 0.1}, {Label: "x", Seconds: 30}}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if agg.Steal != 0.025 {
		t.Errorf("pooled steal %v, want 0.025 (10 s at 10 %% and 30 s at none)", agg.Steal)
	}
	agg, err = pool([]*Result{{Label: "x", Seconds: 10, Others: 0.4}, {Label: "x", Seconds: 30}}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if agg.Others != 0.1 {
		t.Errorf("pooled others %v, want 0.1 (10 s at 40 %% and 30 s at none)", agg.Others)
	}
	// This machine's own counters read in order: steal is part of busy.
	s := sampleCPU(nil)
	if s.all <= 0 || s.steal < 0 || s.steal > s.busy || s.busy > s.all {
		t.Errorf("/proc/stat read as all %v, busy %v, steal %v", s.all, s.busy, s.steal)
	}
}
