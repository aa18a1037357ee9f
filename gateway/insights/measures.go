package insights

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// Outcome measures in the report: for each score (ONS4 life satisfaction,
// UCLA loneliness, ...) how many referrals have it before (first contact)
// and after (completion), and how it changed. The change is the median of
// the paired differences (after minus before), with a distribution-free
// 95% confidence interval from the sign test: scores are small whole
// numbers on bounded scales, far from normal, and pairs are few per group.

// MeasurePair is one referral's score before and after.
type MeasurePair struct {
	Before, After       int
	HasBefore, HasAfter bool
}

// Paired reports whether both were recorded.
func (p MeasurePair) Paired() bool { return p.HasBefore && p.HasAfter }

// ScoreChange is how one score changed over a group of referrals.
type ScoreChange struct {
	Code, Display string
	Better        mappings.Direction
	// Measured counts the referrals with the score at either point;
	// Pairs those with it at both, which the figures below are read from.
	Measured, Pairs int
	// Before and After are the medians of the paired scores; Change the
	// median of the paired differences.
	Before, After, Change float64
	// CILow and CIHigh bound the median difference with at least 95%
	// confidence (sign test); HasCI is false with fewer than 6 pairs, where
	// no interval reaches 95%.
	CILow, CIHigh float64
	HasCI         bool
	order         int
}

// Improved reports whether the median change is an improvement: up for a
// score where higher is better, down where lower is.
func (c ScoreChange) Improved() bool {
	if c.Better == mappings.LowerIsBetter {
		return c.Change < 0
	}
	return c.Change > 0
}

// scoreInfo is what the report needs to know of a score beside its code.
type scoreInfo struct {
	display string
	better  mappings.Direction
	order   int
}

// readMeasures fills in the journeys' scores from the Observations their
// Tasks' latest versions name (one read for the page): the scores of the
// deployment's measures.
func (s *Service) readMeasures(ctx context.Context, journeys []*Journey, latest []*gateway.Resource) error {
	return readScores(ctx, s.Store, journeys, latest, s.knownScore)
}

// knownScore reports whether a score is one of the deployment's measures'.
func (s *Service) knownScore(system, code string) bool {
	_, _, known := s.Measures.ScoreByCode(system, code)
	return known
}

// readScores fills in the journeys' scores from the Observations their
// Tasks' latest versions name, those known says.
func readScores(ctx context.Context, store gateway.Store, journeys []*Journey, latest []*gateway.Resource, known func(system, code string) bool) error {
	var refs []string
	byTask := map[string]*Journey{}
	for i, j := range journeys {
		byTask[gateway.TypeTask+"/"+j.TaskID] = j
		view, err := gateway.ParseTask(latest[i].Body)
		if err != nil {
			continue
		}
		for _, o := range view.Outputs {
			if o.Type.System == gateway.MeasureOutputSystem && o.Type.Code == gateway.MeasureScoreOutput {
				refs = append(refs, o.Reference)
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	obs, err := store.ReadMany(ctx, refs)
	if err != nil {
		return err
	}
	for _, o := range obs {
		var v struct {
			Extension []struct {
				URL       string `json:"url"`
				ValueCode string `json:"valueCode"`
			} `json:"extension"`
			Code struct {
				Coding []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"coding"`
			} `json:"code"`
			Focus []struct {
				Reference string `json:"reference"`
			} `json:"focus"`
			ValueInteger *int `json:"valueInteger"`
		}
		if jsonv2.Unmarshal(o.Body, &v) != nil || v.ValueInteger == nil || len(v.Code.Coding) == 0 || len(v.Focus) == 0 {
			continue
		}
		j := byTask[v.Focus[0].Reference]
		if j == nil {
			continue
		}
		code := v.Code.Coding[0]
		key := code.System + "|" + code.Code
		if !known(code.System, code.Code) {
			continue
		}
		if j.Measures == nil {
			j.Measures = map[string]MeasurePair{}
		}
		p := j.Measures[key]
		for _, e := range v.Extension {
			switch {
			case e.URL != gateway.MeasurePointExtension:
			case e.ValueCode == string(gateway.MeasureFirstContact):
				p.Before, p.HasBefore = *v.ValueInteger, true
			case e.ValueCode == string(gateway.MeasureCompletion):
				p.After, p.HasAfter = *v.ValueInteger, true
			}
		}
		j.Measures[key] = p
	}
	return nil
}

// scoreInfos names every score of a measure set, keyed system|code.
func scoreInfos(m *mappings.Measures) map[string]scoreInfo {
	out := map[string]scoreInfo{}
	if m == nil {
		return out
	}
	n := 0
	for _, q := range m.List() {
		for _, sc := range q.Scores {
			out[sc.Code.System+"|"+sc.Code.Code] = scoreInfo{display: sc.Code.Display, better: sc.Better, order: n}
			n++
		}
	}
	return out
}

// scoreChanges totals the journeys' scores, in the measure set's order.
func scoreChanges(journeys []Journey, infos map[string]scoreInfo) []ScoreChange {
	byKey := map[string]*ScoreChange{}
	diffs := map[string][]float64{}
	befores, afters := map[string][]float64{}, map[string][]float64{}
	for _, j := range journeys {
		for key, p := range j.Measures {
			c := byKey[key]
			if c == nil {
				info, ok := infos[key]
				_, code, _ := strings.Cut(key, "|")
				if !ok {
					info = scoreInfo{display: code, better: mappings.HigherIsBetter, order: math.MaxInt}
				}
				c = &ScoreChange{Code: code, Display: info.display, Better: info.better, order: info.order}
				byKey[key] = c
			}
			c.Measured++
			if p.Paired() {
				c.Pairs++
				diffs[key] = append(diffs[key], float64(p.After-p.Before))
				befores[key] = append(befores[key], float64(p.Before))
				afters[key] = append(afters[key], float64(p.After))
			}
		}
	}
	out := make([]ScoreChange, 0, len(byKey))
	for key, c := range byKey {
		if c.Pairs > 0 {
			c.Before, c.After, c.Change = median(befores[key]), median(afters[key]), median(diffs[key])
			c.CILow, c.CIHigh, c.HasCI = MedianCI(diffs[key], 0.95)
		}
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ScoreChange) int {
		return cmp.Or(cmp.Compare(a.order, b.order), strings.Compare(a.Code, b.Code))
	})
	return out
}

// median is the middle value (the mean of the two middle ones for an even
// count); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// MedianCI is the distribution-free confidence interval for the median of
// xs from the sign test (order statistics): the widest-excluded pair
// [x(k), x(n-k+1)] whose coverage 1 - 2·P(Binomial(n, ½) ≤ k-1) is at
// least conf. ok is false when even [min, max] covers less (fewer than 6
// values at 95%). xs is sorted in place.
//
// The binomial tail is summed in log space, each term from the one before
// (C(n, j+1) = C(n, j)·(n-j)/(j+1)), and the sum stops at the first j past
// the tail, below n/2: O(n) for a row of any size (the total row grows with
// every kept journey). Float64 keeps the tail's relative error near 1e-13
// at n in the millions, far from moving k except where P(B ≤ j) sits on
// the tail itself; the tests check it against exact integer arithmetic.
func MedianCI(xs []float64, conf float64) (lo, hi float64, ok bool) {
	n := len(xs)
	if n == 0 {
		return 0, 0, false
	}
	slices.Sort(xs)
	logTail := math.Log((1 - conf) / 2)
	logTerm := -float64(n) * math.Ln2 // log P(B = 0) = log 2^-n
	logCum := logTerm
	k := 0
	for j := 0; j < n; j++ {
		if j > 0 {
			logTerm += math.Log(float64(n-j+1)) - math.Log(float64(j))
			logCum = logAdd(logCum, logTerm)
		}
		if logCum > logTail {
			break
		}
		k = j + 1 // P(B ≤ k-1) ≤ tail
	}
	if k == 0 {
		return 0, 0, false
	}
	return xs[k-1], xs[n-k], true
}

// logAdd is log(e^a + e^b), without leaving float64's range.
func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// Number formats a score or change as people read it: whole numbers plain,
// halves with one decimal.
func Number(x float64) string {
	if x == math.Trunc(x) {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

// Signed is a change with its sign: +4, -1.5, 0.
func Signed(x float64) string {
	if x > 0 {
		return "+" + Number(x)
	}
	return Number(x)
}
