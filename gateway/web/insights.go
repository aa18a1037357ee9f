package web

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
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
		Funnel: funnelChart(rep.Total.Funnel), Reasons: reasonsChart(rep.DeclineReasons)})
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
// to the largest and its number after it.
type chart struct {
	ID     string // names the chart's title for screen readers
	Title  string
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
	chartBarMax = 480
	chartRow    = 42
)

func layout(id, title string, labels []string, values []int, exits []bool) chart {
	c := chart{ID: id, Title: title, Height: len(values)*chartRow + 4}
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

func funnelChart(f insights.Funnel) chart {
	var labels []string
	var values []int
	var exits []bool
	for _, st := range insights.Stages {
		labels, values, exits = append(labels, st.Display), append(values, st.Count(f)), append(exits, st.Exit)
	}
	return layout("funnel-chart", "How far referrals got", labels, values, exits)
}

func reasonsChart(reasons []insights.ReasonCount) chart {
	var labels []string
	var values []int
	var exits []bool
	for _, r := range reasons {
		labels, values, exits = append(labels, r.Display), append(values, r.Count), append(exits, true)
	}
	return layout("reasons-chart", "Why referrals were declined", labels, values, exits)
}
