package insights

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

func TestReportTakesNearestRankPercentiles(t *testing.T) {
	sent := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var js []Journey
	for h := 1; h <= 10; h++ {
		js = append(js, Journey{TaskID: "t", Category: "housing", Practice: "A81001", ProviderID: "p", Sent: sent,
			Delivered: sent, Accepted: sent.Add(time.Duration(h) * time.Hour)})
	}
	js = append(js, Journey{Category: "food", Practice: "A81001", PracticeName: "Leeds Road Surgery", ProviderID: "p", Sent: sent,
		End: EndDeclined, DeclineReason: "no-capacity"})
	r := BuildReport(js, sent, sent.AddDate(0, 0, 1), func(id string) string { return "Provider " + id }, nil)
	if a := r.Total.ToAcceptance; a.N != 10 || a.Median != 5*time.Hour || a.P90 != 9*time.Hour {
		t.Errorf("to acceptance %+v; want 10 timed, median 5h, p90 9h", a)
	}
	if f := r.Total.Funnel; f.Sent != 11 || f.Delivered != 10 || f.Accepted != 10 || f.Declined != 1 {
		t.Errorf("funnel %+v", f)
	}
	if len(r.ByCategory) != 2 || r.ByCategory[0].Key != "housing" || r.ByCategory[0].Label != "Housing" {
		t.Errorf("by category %+v; want housing (the larger) first", r.ByCategory)
	}
	if r.ByPractice[0].Label != "Leeds Road Surgery (A81001)" || r.ByProvider[0].Label != "Provider p" {
		t.Errorf("labels %q, %q", r.ByPractice[0].Label, r.ByProvider[0].Label)
	}
	if len(r.DeclineReasons) != 1 || r.DeclineReasons[0].Code != "no-capacity" || r.DeclineReasons[0].Count != 1 {
		t.Errorf("decline reasons %+v", r.DeclineReasons)
	}
	var b strings.Builder
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "2026-11-02,2026-11-03,all,all,All referrals,11,10,10,0,0,1,0,0,0,10,5.0,9.0,0,,") {
		t.Errorf("CSV:\n%s", b.String())
	}
}

func TestCSVCellsCannotBeFormulas(t *testing.T) {
	for in, want := range map[string]string{"=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "Leeds": "Leeds", "": ""} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReportEdgesFoundInReview(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	from := time.Date(2026, 6, 1, 0, 0, 0, 0, london)
	sent := from.Add(9 * time.Hour)
	// Completed straight from accepted: started all the same.
	v1 := &gateway.Resource{Version: 1, LastUpdated: sent, Body: []byte(`{"resourceType":"Task","status":"requested","intent":"order","requester":{"identifier":{"value":"=HYPERLINK(\"x\")"}}}`)}
	v2 := &gateway.Resource{Version: 2, LastUpdated: sent.Add(time.Hour), Body: []byte(`{"resourceType":"Task","status":"accepted","intent":"order"}`)}
	v3 := &gateway.Resource{Version: 3, LastUpdated: sent.Add(2 * time.Hour), Body: []byte(`{"resourceType":"Task","status":"completed","intent":"order"}`)}
	j, ok := journeyOf("t1", gateway.JourneyRecord{Versions: []*gateway.Resource{v1, v2, v3}})
	if !ok || j.Started.IsZero() || j.End != EndCompleted {
		t.Fatalf("journey %+v", j)
	}
	r := BuildReport([]Journey{j}, from, from.AddDate(0, 1, 0), func(string) string { return "" }, nil)
	if f := r.Total.Funnel; f.Started != 1 || f.Completed != 1 {
		t.Errorf("funnel %+v: a completed referral was not counted as started", f)
	}
	var b strings.Builder
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	csvText := b.String()
	if !strings.Contains(csvText, "2026-06-01,2026-06-30,all") {
		t.Errorf("a June period's days in the CSV:\n%s", csvText)
	}
	if strings.Contains(csvText, ",=HYPERLINK") || !strings.Contains(csvText, `'=HYPERLINK`) {
		t.Errorf("a practice key reached the CSV as a formula:\n%s", csvText)
	}
	// No category: the MeasureReport says "Unknown", never an empty code.
	mr := string(r.MeasureReport("x", time.Now()))
	if strings.Contains(mr, `""`) || !strings.Contains(mr, "Unknown") {
		t.Errorf("MeasureReport with an uncategorised referral:\n%s", mr)
	}
}

// movingStore answers the outcomes read as Redis would when a Task changes
// between two pages: the changed Task moves to the end of the order and is
// met again on the next page.
type movingStore struct {
	gateway.Store // only Search, JourneyRecords and KeptJourneys are used
	calls         int
}

func (m *movingStore) Search(_ context.Context, q *gateway.StoreQuery) ([]string, int, error) {
	m.calls++
	if q.Offset == 0 {
		return []string{"t1", "t2"}, 3, nil
	}
	return []string{"t2", "t3"}, 3, nil // t2 changed after the first page
}

func (m *movingStore) JourneyRecords(_ context.Context, ids []string, _ gateway.HistoryWindow) ([]gateway.JourneyRecord, error) {
	out := make([]gateway.JourneyRecord, len(ids))
	for i, id := range ids {
		out[i].Reached = &gateway.Reached{}
		out[i].Versions = []*gateway.Resource{{Type: gateway.TypeTask, ID: id, Version: 1, LastUpdated: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC),
			Body: []byte(`{"resourceType":"Task","id":"` + id + `","status":"requested","authoredOn":"2026-06-01T09:00:00Z"}`)}}
	}
	return out, nil
}

func (m *movingStore) KeptJourneys(context.Context, time.Time, time.Time) ([][]byte, error) {
	return nil, nil
}

func TestJourneysCountATaskMovedMidReadOnce(t *testing.T) {
	st := &movingStore{}
	s := New(gateway.NewCore(gateway.Options{Store: st}))
	js, err := s.Journeys(context.Background(), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range js {
		ids = append(ids, j.TaskID)
	}
	if st.calls != 2 || strings.Join(ids, ",") != "t1,t2,t3" {
		t.Errorf("journeys %v over %d pages, want t1,t2,t3 once each over 2", ids, st.calls)
	}
}

// TestReportNamesPracticesFromTheDirectory: "By practice", its CSV and the
// MeasureReport say the name people know, the code beside it; the
// directory's name wins over the name a referral gave itself.
func TestReportNamesPracticesFromTheDirectory(t *testing.T) {
	sent := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	js := []Journey{
		{Practice: "A81001", Sent: sent},
		{Practice: "B82005", PracticeName: "Surgery as the GP system spelt it", Sent: sent},
		{Practice: "C83003", PracticeName: "Hill Top Medical Centre", Sent: sent},
		{Practice: "D84004", Sent: sent},
	}
	dir := gateway.Directory{"A81001": "Example Surgery", "B82005": "Park Lane Surgery"}
	r := BuildReport(js, sent, sent.AddDate(0, 0, 1), func(id string) string { return id }, dir)
	var labels []string
	for _, row := range r.ByPractice {
		labels = append(labels, row.Label)
	}
	want := "Example Surgery (A81001),Park Lane Surgery (B82005),Hill Top Medical Centre (C83003),D84004"
	if got := strings.Join(labels, ","); got != want {
		t.Errorf("by practice %s; want %s", got, want)
	}
	var b strings.Builder
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ",practice,A81001,Example Surgery (A81001),1,") {
		t.Errorf("CSV:\n%s", b.String())
	}
	if mr := string(r.MeasureReport("x", sent)); !strings.Contains(mr, `"text": "Park Lane Surgery (B82005)"`) {
		t.Errorf("MeasureReport strata do not name the practice:\n%s", mr)
	}
}

// TestFunnelIsCumulative: a referral that reached a later stage counts as
// having passed the earlier ones, recorded or not. The issue saw "0
// contacted" beside "5 started": a provider that starts and completes
// without recording contact has still contacted the person.
func TestFunnelIsCumulative(t *testing.T) {
	sent := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	version := func(n int, status string) *gateway.Resource {
		return &gateway.Resource{Version: n, LastUpdated: sent.Add(time.Duration(n) * time.Hour),
			Body: []byte(`{"resourceType":"Task","status":"` + status + `","intent":"order"}`)}
	}
	var js []Journey
	for i := range 5 {
		vs := []*gateway.Resource{version(1, "requested"), version(2, "accepted"), version(3, "in-progress")}
		if i < 3 {
			vs = append(vs, version(4, "completed"))
		}
		j, ok := journeyOf("t", gateway.JourneyRecord{Versions: vs})
		if !ok {
			t.Fatal("not a journey")
		}
		js = append(js, j)
	}
	r := BuildReport(js, sent, sent.AddDate(0, 0, 1), func(id string) string { return id }, nil)
	f := r.Total.Funnel
	if f.Sent != 5 || f.Delivered != 5 || f.Accepted != 5 || f.Started != 5 || f.Completed != 3 || f.Open() != 2 {
		t.Errorf("funnel %+v, open %d", f, f.Open())
	}
	if c := r.Total.ToFirstContact; c.N != 5 || c.Median != 2*time.Hour {
		t.Errorf("first contact %+v; want all 5 started counted as contacted, at their start, 2h after sending", c)
	}
	for i := 1; i < len(Stages)-4; i++ { // the stages before the endings never grow
		if Stages[i].Exit || Stages[i].Count(f) > Stages[i-1].Count(f) {
			t.Errorf("%s (%d) is more than %s (%d)", Stages[i].Display, Stages[i].Count(f), Stages[i-1].Display, Stages[i-1].Count(f))
		}
	}
}

// TestOverTimeIntervals: days for a month, Monday weeks for a quarter,
// months for a year; every referral in exactly one interval.
func TestOverTimeIntervals(t *testing.T) {
	uk := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, UKTime) }
	sent := []time.Time{uk(2026, 9, 1).Add(9 * time.Hour), uk(2026, 10, 25).Add(23*time.Hour + 30*time.Minute), uk(2026, 11, 29).Add(12 * time.Hour)}
	var js []Journey
	for _, s := range sent {
		js = append(js, Journey{Sent: s.UTC()})
	}
	for _, c := range []struct {
		from, to    time.Time
		unit        string
		n           int
		first, last string
	}{
		{uk(2026, 11, 1), uk(2026, 12, 1), "day", 30, "2026-11-01", "2026-11-30"},
		{uk(2026, 9, 1), uk(2026, 11, 30), "week", 13, "2026-09-01", "2026-11-23"}, // 1 September is a Tuesday
		{uk(2025, 12, 1), uk(2026, 12, 1), "month", 12, "2025-12-01", "2026-11-01"},
	} {
		got := overTime(js, c.from, c.to)
		if len(got) != c.n || got[0].Unit != c.unit || got[0].Start.Format(time.DateOnly) != c.first || got[len(got)-1].Start.Format(time.DateOnly) != c.last {
			t.Errorf("%s to %s: %d %ss from %s to %s", c.from, c.to, len(got), got[0].Unit, got[0].Start, got[len(got)-1].Start)
		}
		total, want := 0, 0
		for _, iv := range got {
			total += iv.Sent
		}
		for _, s := range sent {
			if !s.Before(c.from) && s.Before(c.to) {
				want++
			}
		}
		if total != want {
			t.Errorf("%s to %s: %d counted, want %d", c.from, c.to, total, want)
		}
	}
}
