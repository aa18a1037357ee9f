package web

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/insights"
)

// The outcomes view: counts and times only, never a person's details.

// defaultPeriodDays is the period shown when none is chosen.
const defaultPeriodDays = 90

// period reads the chosen dates (from and to inclusive, YYYY-MM-DD) as
// [from, to) instants; the default is the last 90 days to today.
func (p *Pages) period(r *http.Request) (from, to time.Time, fromDay, toDay string, err error) {
	today := p.now().In(insights.UKTime)
	toDate := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, insights.UKTime)
	fromDate := toDate.AddDate(0, 0, -(defaultPeriodDays - 1))
	q := r.URL.Query()
	if v := q.Get("from"); v != "" {
		if fromDate, err = time.ParseInLocation(time.DateOnly, v, insights.UKTime); err != nil {
			return from, to, "", "", fmt.Errorf("the start date %q is not a date like 2026-04-01", v)
		}
	}
	if v := q.Get("to"); v != "" {
		if toDate, err = time.ParseInLocation(time.DateOnly, v, insights.UKTime); err != nil {
			return from, to, "", "", fmt.Errorf("the end date %q is not a date like 2026-06-30", v)
		}
	}
	if toDate.Before(fromDate) {
		return from, to, "", "", fmt.Errorf("the period ends before it starts")
	}
	if toDate.Sub(fromDate) > 5*366*24*time.Hour {
		return from, to, "", "", fmt.Errorf("the period is longer than five years; choose a shorter one")
	}
	return fromDate, toDate.AddDate(0, 0, 1), fromDate.Format(time.DateOnly), toDate.Format(time.DateOnly), nil
}

// report reads the report of the chosen period, or answers the problem.
func (p *Pages) report(w http.ResponseWriter, r *http.Request, s *account.WebSession) (*insights.Report, string, string, bool) {
	from, to, fromDay, toDay, err := p.period(r)
	if err != nil {
		p.problem(w, r, s, http.StatusBadRequest, err.Error()+".")
		return nil, "", "", false
	}
	rep, err := p.outcomes.Insights(r.Context(), from, to)
	if err != nil {
		p.failed(w, r, s, err)
		return nil, "", "", false
	}
	return rep, fromDay, toDay, true
}

func (p *Pages) insights(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	rep, fromDay, toDay, ok := p.report(w, r, s)
	if !ok {
		return
	}
	p.render(w, r, http.StatusOK, "insights", page{Title: "Referral outcomes", Session: s, Report: rep, From: fromDay, To: toDay,
		FromText: longDay(rep.From), ToText: longDay(rep.To.Add(-time.Nanosecond)),
		Funnel: funnelChart(rep.Total.Funnel), Endings: endingsChart(rep.Total.Funnel), Reasons: reasonsChart(rep.DeclineReasons),
		OverTime: overTimeChart(rep.OverTime), Changes: changeChart(rep.Total.Measures)})
}

// longDay is a date as people in the UK write it: 3 December 2026.
func longDay(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(insights.UKTime).Format("2 January 2006")
}

func (p *Pages) insightsCSV(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	rep, fromDay, toDay, ok := p.report(w, r, s)
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := rep.WriteCSV(&b); err != nil {
		p.failed(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="signpost-outcomes-`+fromDay+`-to-`+toDay+`.csv"`)
	_, _ = w.Write(b.Bytes())
}

func (p *Pages) measureReport(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	rep, fromDay, toDay, ok := p.report(w, r, s)
	if !ok {
		return
	}
	body := rep.MeasureReport("outcomes-"+fromDay+"-to-"+toDay, p.now())
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="signpost-outcomes-`+fromDay+`-to-`+toDay+`.json"`)
	_, _ = w.Write(body)
}

// chart is a horizontal bar chart, laid out here and drawn as SVG by the
// template: one row per bar, its label above it, its length in proportion
// to the largest and its number after it. Every bar carries its label and
// number as text, so colour is never the only way to tell bars apart.
type chart struct {
	ID     string // names the chart's title for screen readers
	Title  string
	Desc   string // how to read it, for screen readers (and the caption)
	Height int
	Bars   []bar
}

type bar struct {
	Label, Value  string
	LabelY, BarY  int
	Width, ValueX int
	Exit          bool // an ending other than completion: drawn in another colour
}

// Chart geometry, in SVG user units (the SVG scales to its box, 560 wide).
const (
	chartWidth  = 560
	chartBarMax = 480
	chartRow    = 42
)

func layout(id, title, desc string, labels []string, values []int, exits []bool) chart {
	c := chart{ID: id, Title: title, Desc: desc, Height: len(values)*chartRow + 4}
	largest := 1
	for _, v := range values {
		largest = max(largest, v)
	}
	for i, v := range values {
		width := max(2, v*chartBarMax/largest)
		c.Bars = append(c.Bars, bar{Label: labels[i], Value: strconv.Itoa(v), LabelY: i*chartRow + 14, BarY: i*chartRow + 20,
			Width: width, ValueX: width + 6, Exit: exits[i]})
	}
	return c
}

// funnelChart draws the stages a referral passes, cumulatively: each bar
// counts the referrals that reached that stage or a later one.
func funnelChart(f insights.Funnel) chart {
	var labels []string
	var values []int
	var exits []bool
	for _, st := range insights.Stages {
		if !st.Exit {
			labels, values, exits = append(labels, st.Display), append(values, st.Count(f)), append(exits, false)
		}
	}
	return layout("funnel-chart", "How far referrals got",
		"Each bar counts the referrals that reached that stage or a later one, so no bar is longer than the one above it.",
		labels, values, exits)
}

// endingsChart draws how the referrals ended (or that they have not): each
// referral is in exactly one bar.
func endingsChart(f insights.Funnel) chart {
	labels := []string{"Completed"}
	values := []int{f.Completed}
	exits := []bool{false}
	for _, st := range insights.Stages {
		if st.Exit {
			labels, values, exits = append(labels, st.Display), append(values, st.Count(f)), append(exits, true)
		}
	}
	labels, values, exits = append(labels, "Still open"), append(values, f.Open()), append(exits, false)
	return layout("endings-chart", "How referrals ended",
		"Each referral is counted once: how it ended, or still open. Endings other than completion are drawn in red and named in their labels.",
		labels, values, exits)
}

func reasonsChart(reasons []insights.ReasonCount) chart {
	var labels []string
	var values []int
	var exits []bool
	for _, r := range reasons {
		labels, values, exits = append(labels, r.Display), append(values, r.Count), append(exits, true)
	}
	return layout("reasons-chart", "Why referrals were declined", "Each bar counts the referrals declined for that reason.", labels, values, exits)
}

// columns is a column chart of referrals sent over time, laid out here and
// drawn as SVG by the template: a column per day, week or month, the
// largest count marked on the axis, dates under the first, middle and last
// columns, and each column's number above it when there is room.
type columns struct {
	ID, Title, Desc string
	Unit            string // "day", "week" or "month"
	Cols            []column
	Largest         string
	AxisTop, AxisY  int // the y of the largest count's line and of the baseline
	Height          int
	ShowValues      bool
}

type column struct {
	X, Y, Width, Height int
	CentreX             int
	Value               string
	Label               *axisLabel // the date under the column, when it has one
	Long                string     // the interval in words, for the table and the description
}

// axisLabel is a date under a column, anchored so the first and last stay
// inside the chart.
type axisLabel struct {
	Text, Anchor string
	LabelX       int
}

// Column chart geometry: a left margin for the axis, columns in between.
const (
	colLeft   = 36
	colTop    = 20
	colBottom = 170
)

func overTimeChart(ivs []insights.Interval) columns {
	c := columns{ID: "over-time-chart", AxisTop: colTop, AxisY: colBottom, Height: colBottom + 28}
	if len(ivs) == 0 {
		return c
	}
	c.Unit = ivs[0].Unit
	c.Title = "Referrals sent each " + c.Unit
	largest := 0
	for _, iv := range ivs {
		largest = max(largest, iv.Sent)
	}
	c.Largest = strconv.Itoa(largest)
	c.ShowValues = len(ivs) <= 16
	step := (chartWidth - colLeft) / len(ivs)
	width := max(2, step*3/4)
	labelled := map[int]bool{0: true, len(ivs) / 2: true, len(ivs) - 1: true}
	var parts []string
	for i, iv := range ivs {
		h := 0
		if largest > 0 {
			h = iv.Sent * (colBottom - colTop) / largest
		}
		col := column{X: colLeft + i*step + (step-width)/2, Width: width, Height: max(h, 1), Y: colBottom - max(h, 1),
			Value: strconv.Itoa(iv.Sent), Long: intervalWords(iv)}
		col.CentreX = col.X + width/2
		if labelled[i] {
			col.Label = &axisLabel{Text: shortInterval(iv), Anchor: "middle", LabelX: col.CentreX}
			switch i {
			case 0:
				col.Label.Anchor, col.Label.LabelX = "start", col.X
			case len(ivs) - 1:
				col.Label.Anchor, col.Label.LabelX = "end", col.X+width
			}
		}
		c.Cols = append(c.Cols, col)
		parts = append(parts, col.Long+": "+col.Value)
	}
	c.Desc = "From " + intervalWords(ivs[0]) + " to " + intervalWords(ivs[len(ivs)-1]) + ". " + strings.Join(parts, "; ") + "."
	return c
}

// intervalWords names an interval as people say it.
func intervalWords(iv insights.Interval) string {
	switch iv.Unit {
	case "week":
		return "week beginning " + longDay(iv.Start)
	case "month":
		return iv.Start.In(insights.UKTime).Format("January 2006")
	}
	return longDay(iv.Start)
}

// shortInterval is the date under a column: short enough to fit.
func shortInterval(iv insights.Interval) string {
	if iv.Unit == "month" {
		return iv.Start.In(insights.UKTime).Format("Jan 2006")
	}
	return iv.Start.In(insights.UKTime).Format("2 Jan")
}

// changes is the outcome measures' chart, laid out here and drawn as SVG
// by the template: a row per score with pairs, its median change as a dot
// on a line through zero and its 95% interval as a whisker, the figures
// written beside it, so nothing is read from position or colour alone.
type changes struct {
	ID, Title, Desc string
	Height          int
	ZeroX           int
	LeftX, RightX   int
	Limit           string // the axis runs from -Limit to +Limit
	Rows            []changeRow
}

type changeRow struct {
	Label, Text    string
	LabelY, LineY  int
	X, LowX, HighX int
	HasCI          bool
	// Class draws the dot: better, worse or no change (the words beside
	// it say the same).
	Class string
	TextY int
	// WhiskerTop and WhiskerBottom are the ends of the interval's caps.
	WhiskerTop, WhiskerBottom int
}

// Change chart geometry: the axis across the middle of the 560 units.
const (
	changeLeft      = 20
	changeRight     = 540
	changeRowHeight = 64
)

func changeChart(ms []insights.ScoreChange) changes {
	c := changes{ID: "changes-chart", Title: "Change from first contact to completion", LeftX: changeLeft, RightX: changeRight,
		ZeroX: (changeLeft + changeRight) / 2}
	limit := 1.0
	var shown []insights.ScoreChange
	for _, m := range ms {
		if m.Pairs == 0 {
			continue
		}
		shown = append(shown, m)
		limit = max(limit, abs(m.Change))
		if m.HasCI {
			limit = max(limit, abs(m.CILow), abs(m.CIHigh))
		}
	}
	c.Limit = insights.Number(limit)
	half := float64(changeRight-changeLeft) / 2
	x := func(v float64) int { return c.ZeroX + int(v/limit*half) }
	var parts []string
	for i, m := range shown {
		text := changeWords(m)
		r := changeRow{Label: m.Display, Text: text, LabelY: i*changeRowHeight + 14, LineY: i*changeRowHeight + 32, TextY: i*changeRowHeight + 54,
			X: x(m.Change), HasCI: m.HasCI, Class: dotClass(m), WhiskerTop: i*changeRowHeight + 26, WhiskerBottom: i*changeRowHeight + 38}
		if m.HasCI {
			r.LowX, r.HighX = x(m.CILow), x(m.CIHigh)
		}
		c.Rows = append(c.Rows, r)
		parts = append(parts, m.Display+": "+text)
	}
	c.Height = len(c.Rows)*changeRowHeight + 4
	c.Desc = "Median change in each score from first contact to completion, among referrals with both, with its 95% confidence interval where there are enough pairs; the axis runs from -" +
		c.Limit + " to +" + c.Limit + " with zero (no change) in the middle. " + strings.Join(parts, "; ") + "."
	return c
}

func dotClass(m insights.ScoreChange) string {
	switch {
	case m.Change == 0:
		return "dot-same"
	case m.Improved():
		return "bar"
	}
	return "bar-exit"
}

// changeWords says a score's change in words: the median change, its
// interval, how many pairs, and which way is better.
func changeWords(m insights.ScoreChange) string {
	s := "median change " + insights.Signed(m.Change)
	if m.HasCI {
		s += " (95% CI " + insights.Signed(m.CILow) + " to " + insights.Signed(m.CIHigh) + ")"
	} else {
		s += " (too few pairs for a 95% interval)"
	}
	s += ", " + strconv.Itoa(m.Pairs) + " pairs; " + string(m.Better) + " is better"
	return s
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
