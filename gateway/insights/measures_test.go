package insights

import (
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/mappings"
)

func TestMedianCIIsTheSignTestInterval(t *testing.T) {
	// Binomial(n, ½): for n = 6, P(B ≤ 0) = 1/64 ≤ 0.025 < P(B ≤ 1), so
	// the interval is [x(1), x(6)]; for n = 10, P(B ≤ 1) = 11/1024 ≤ 0.025
	// < P(B ≤ 2) = 56/1024, so [x(2), x(9)]; for n = 5 none reaches 95%.
	for _, c := range []struct {
		xs     []float64
		lo, hi float64
		ok     bool
	}{
		{[]float64{3, 1, 2, 6, 5, 4}, 1, 6, true},
		{[]float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}, 2, 9, true},
		{[]float64{1, 2, 3, 4, 5}, 0, 0, false},
		// n = 20: P(B ≤ 5) = 0.0207 ≤ 0.025 < P(B ≤ 6) = 0.0577, so [x(6), x(15)].
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 6, 15, true},
	} {
		lo, hi, ok := MedianCI(c.xs, 0.95)
		if lo != c.lo || hi != c.hi || ok != c.ok {
			t.Errorf("MedianCI(%d values) = [%v, %v] %v, want [%v, %v] %v", len(c.xs), lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median %v", m)
	}
}

// exactSignTestK is k of the sign-test interval by exact integer
// arithmetic (the binomial's tail as a fraction of 2^n), the reference
// MedianCI's log-space sum is checked against.
func exactSignTestK(n int, conf float64) int {
	// cum/2^n > num/den  ⇔  cum·den > num·2^n
	tail := new(big.Rat).SetFloat64((1 - conf) / 2)
	limit := new(big.Int).Lsh(tail.Num(), uint(n))
	cum, term, scaled := new(big.Int), big.NewInt(1), new(big.Int) // term: C(n, 0)
	k := 0
	for j := 0; j < n; j++ {
		if j > 0 {
			term.Mul(term, big.NewInt(int64(n-j+1)))
			term.Quo(term, big.NewInt(int64(j)))
		}
		cum.Add(cum, term)
		if scaled.Mul(cum, tail.Denom()).Cmp(limit) > 0 {
			break
		}
		k = j + 1
	}
	return k
}

// The interval is the exact one for every n up to 1,000 and at the usual
// levels: the log-space sum never moves k.
func TestMedianCIMatchesExactBinomial(t *testing.T) {
	for _, conf := range []float64{0.9, 0.95, 0.99} {
		for n := 1; n <= 1000; n++ {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(i + 1) // x(i) = i, so the interval names k
			}
			want := exactSignTestK(n, conf)
			lo, hi, ok := MedianCI(xs, conf)
			if ok != (want > 0) || (ok && (lo != float64(want) || hi != float64(n-want+1))) {
				t.Fatalf("n=%d conf=%v: [%v, %v] %v, want k=%d", n, conf, lo, hi, ok, want)
			}
		}
	}
}

// The interval's cost grows with n, not n³: 10,000 pairs (a total row of a
// region's kept journeys) take milliseconds (15.8 s before, recomputing
// each binomial coefficient from scratch).
func TestMedianCIOfTenThousandPairsIsFast(t *testing.T) {
	xs := make([]float64, 10000)
	for i := range xs {
		xs[i] = float64(i%21 - 10)
	}
	start := time.Now()
	lo, hi, ok := MedianCI(xs, 0.95)
	took := time.Since(start)
	// k = 4902 for n = 10,000 (normal approximation: (n - 1.96·√n)/2 = 4902).
	if !ok || lo != xs[4901] || hi != xs[10000-4902] {
		t.Errorf("[%v, %v] %v", lo, hi, ok)
	}
	if took > 200*time.Millisecond {
		t.Errorf("10,000 pairs took %v", took)
	}
	t.Logf("10,000 pairs: %v", took)
}

func BenchmarkMedianCI(b *testing.B) {
	for _, n := range []int{100, 10000, 1000000} {
		xs := make([]float64, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				for i := range xs {
					xs[i] = float64(i%21 - 10)
				}
				MedianCI(xs, 0.95)
			}
		})
	}
}

const lifeKey = mappings.MeasureCodeSystem + "|ons4-life-satisfaction"
const uclaKey = mappings.MeasureCodeSystem + "|ucla3-total"

// pairedJourneys are eight referrals of two providers with life
// satisfaction before and after (changes +4 +3 +2 +1 +4 +2 +5 -1), one more
// with a before only, and UCLA totals for two.
func pairedJourneys(sent time.Time) []Journey {
	var js []Journey
	for i, p := range [][2]int{{3, 7}, {4, 7}, {5, 7}, {6, 7}, {2, 6}, {5, 7}, {1, 6}, {8, 7}} {
		provider := "walking"
		if i >= 6 {
			provider = "advice"
		}
		js = append(js, Journey{TaskID: "t", Category: "physical-activity", Practice: "A81001", ProviderID: provider, Sent: sent,
			Measures: map[string]MeasurePair{lifeKey: {Before: p[0], After: p[1], HasBefore: true, HasAfter: true}}})
	}
	js = append(js, Journey{Category: "physical-activity", Practice: "A81001", ProviderID: "walking", Sent: sent,
		Measures: map[string]MeasurePair{lifeKey: {Before: 2, HasBefore: true}}})
	js[0].Measures[uclaKey] = MeasurePair{Before: 8, After: 4, HasBefore: true, HasAfter: true}
	js[1].Measures[uclaKey] = MeasurePair{Before: 6, After: 5, HasBefore: true, HasAfter: true}
	return js
}

func TestReportCountsPairedMeasures(t *testing.T) {
	sent := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	r := BuildReport(pairedJourneys(sent), sent, sent.AddDate(0, 0, 1), func(id string) string { return id }, nil)
	if len(r.Total.Measures) != 2 || r.Total.Measures[0].Code != "ons4-life-satisfaction" || r.Total.Measures[1].Code != "ucla3-total" {
		t.Fatalf("measures %+v; want life satisfaction, then UCLA (the measures' order)", r.Total.Measures)
	}
	life := r.Total.Measures[0]
	// Differences sorted: -1 1 2 2 3 4 4 5: median 2.5; n = 8, P(B ≤ 0) =
	// 1/256 ≤ 0.025 < P(B ≤ 1) = 9/256, so the interval is [x(1), x(8)].
	if life.Measured != 9 || life.Pairs != 8 || life.Change != 2.5 || !life.HasCI || life.CILow != -1 || life.CIHigh != 5 || life.Before != 4.5 || life.After != 7 || !life.Improved() {
		t.Errorf("life satisfaction %+v", life)
	}
	if ucla := r.Total.Measures[1]; ucla.Pairs != 2 || ucla.Change != -2.5 || ucla.HasCI || !ucla.Improved() {
		t.Errorf("UCLA %+v; want 2 pairs, -2.5, no interval from 2 pairs, improved (lower is better)", ucla)
	}
	var walking ScoreChange
	for _, row := range r.ByProvider {
		if row.Key == "walking" {
			walking = row.Measures[0]
		}
	}
	if walking.Pairs != 6 || walking.Change != 2.5 {
		t.Errorf("walking %+v; want 6 pairs (+4 +3 +2 +1 +4 +2), median 2.5", walking)
	}

	var b strings.Builder
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasSuffix(lines[0], ",ons4_life_satisfaction_pairs,ons4_life_satisfaction_before_median,ons4_life_satisfaction_after_median,ons4_life_satisfaction_change_median,ons4_life_satisfaction_change_ci95_low,ons4_life_satisfaction_change_ci95_high,ucla3_total_pairs,ucla3_total_before_median,ucla3_total_after_median,ucla3_total_change_median,ucla3_total_change_ci95_low,ucla3_total_change_ci95_high") ||
		!strings.HasSuffix(lines[1], ",8,4.5,7,2.5,-1,5,2,7,4.5,-2.5,,") {
		t.Errorf("CSV:\n%s", b.String())
	}

	mr := r.MeasureReport("x", sent)
	if res := structure.Validate(mr); !res.Valid() {
		t.Errorf("MeasureReport is not valid R4: %v", res.Issues)
	}
	var m struct {
		Group []struct {
			Code struct {
				Coding []struct{ System, Code string }
			}
			Population   []struct{ Count int }
			MeasureScore *struct{ Value float64 }
			Extension    []struct {
				URL        string
				ValueRange struct{ Low, High struct{ Value float64 } }
			}
			Stratifier []struct {
				Stratum []struct {
					Value        struct{ Text string }
					Population   []struct{ Count int }
					MeasureScore *struct{ Value float64 }
				}
			}
		}
	}
	_ = json.Unmarshal(mr, &m)
	found := false
	for _, g := range m.Group {
		if g.Code.Coding[0].Code != "ons4-life-satisfaction" {
			continue
		}
		found = true
		if g.Population[0].Count != 8 || g.MeasureScore == nil || g.MeasureScore.Value != 2.5 || len(g.Extension) != 1 ||
			g.Extension[0].ValueRange.Low.Value != -1 || g.Extension[0].ValueRange.High.Value != 5 {
			t.Errorf("life satisfaction group %+v", g)
		}
		if len(g.Stratifier) != 3 {
			t.Errorf("stratifiers %d, want by category, practice and provider", len(g.Stratifier))
		}
	}
	if !found {
		t.Errorf("no group for life satisfaction: %s", mr)
	}
}
