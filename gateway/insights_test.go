package gateway

import (
	"strings"
	"testing"
	"time"
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
	r := BuildReport(js, sent, sent.AddDate(0, 0, 1), func(id string) string { return "Provider " + id })
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
