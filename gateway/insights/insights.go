package insights

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // report days are UK days on any machine

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// Insights are what link workers and commissioners ask of referrals: how
// many got where (the funnel), how fast, and why some were declined. They
// are read from the referral Tasks: from the milestones each Task version
// records as it is written (the first version to reach each, with its
// time: gateway.Reached) and the first and current versions, so the
// figures cannot drift from the record, and what the view reads of a Task
// does not grow with its versions.

// Journey is one referral's path, read from its Task's versions.
type Journey struct {
	TaskID   string
	Category string
	Practice string // the requester's organisation identifier (or display)
	// PracticeName is the requester's display, when the referral gave one.
	PracticeName string
	ProviderID   string
	Sent         time.Time
	// The first time each step was reached (zero: not reached).
	Delivered, Accepted, FirstContact, Started, Ended time.Time
	// End is how the referral ended: "" while it is open, or one of the
	// End* values.
	End           string
	DeclineReason string // the code, when declined with a coded reason
	// Measures are the outcome measures' scores recorded for the referral,
	// before (first contact) and after (completion), keyed system|code.
	Measures map[string]MeasurePair
}

// How a referral ended (and EndDidNotAttend).
const (
	EndCompleted = "completed"
	EndDeclined  = "declined"
	EndFailed    = "failed"
	EndCancelled = "cancelled"
)

// journeyPage is how many Tasks are read per round trip.
const journeyPage = 500

// OlderTaskWindow is what the outcomes view and retention read of a Task
// written before its versions recorded their milestones: its first
// version and the newest 50 others, of at most 256 KiB together (the
// newest whatever its size), so it costs what Signpost allows, however
// many versions it has. A referral's working life is a dozen versions of a
// few KiB, which the window holds whole, so its journey is exact; of a
// longer history the journey is read from the versions the window holds
// (an approximation: a milestone first reached in a version left unread
// counts from the first read that reached it, or not at all).
var OlderTaskWindow = gateway.HistoryWindow{Versions: 50, Bytes: 256 << 10}

// Journeys reads the paths of the referrals sent in [from, to).
func (s *Service) Journeys(ctx context.Context, from, to time.Time) ([]Journey, error) {
	var out []Journey
	// A Task sent in the period was last changed at or after its start, so
	// the index narrows the read to those; the sent time then decides.
	q := &gateway.StoreQuery{Type: gateway.TypeTask, Since: from, Count: journeyPage}
	// A Task changed during the read moves to the end of the order: it may
	// be met twice, so each is counted once. (One that moves before the
	// offset is met again, later: none is missed.)
	seen := map[string]bool{}
	for {
		ids, total, err := s.Store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		records, err := s.Store.JourneyRecords(ctx, ids, OlderTaskWindow)
		if err != nil {
			return nil, err
		}
		var page []*Journey
		var latest []*gateway.Resource
		for i, rec := range records {
			if seen[ids[i]] {
				continue
			}
			seen[ids[i]] = true
			j, ok := journeyOf(ids[i], rec)
			if ok && !j.Sent.Before(from) && j.Sent.Before(to) {
				page = append(page, &j)
				latest = append(latest, rec.Versions[len(rec.Versions)-1])
			}
		}
		if err := s.readMeasures(ctx, page, latest); err != nil {
			return nil, err
		}
		for _, j := range page {
			out = append(out, *j)
		}
		q.Offset += len(ids)
		if len(ids) == 0 || q.Offset >= total {
			break
		}
	}
	// The referrals retention removed count as they did before: by the
	// summary it kept of each. A referral read above and removed since is
	// met again here; it is counted once.
	kept, err := s.Store.KeptJourneys(ctx, from, to)
	if err != nil {
		return nil, err
	}
	for _, b := range kept {
		j, err := ParseSummary(b)
		if err != nil || seen[j.TaskID] {
			continue
		}
		seen[j.TaskID] = true
		for key := range j.Measures { // as readMeasures reads them
			if system, code, _ := strings.Cut(key, "|"); !s.knownScore(system, code) {
				delete(j.Measures, key)
			}
		}
		if !j.Sent.Before(from) && j.Sent.Before(to) {
			out = append(out, j)
		}
	}
	return out, nil
}

// Summarise is what retention keeps of a referral as it goes: its journey
// read from its Task's record (read with OlderTaskWindow) with every score
// the current version names, for the outcomes view to count as before. ok
// is false for a Task entered in error, which is no referral and is
// counted nowhere.
func Summarise(ctx context.Context, store gateway.Store, id string, rec gateway.JourneyRecord) (keep *gateway.KeptJourney, ok bool, err error) {
	j, ok := journeyOf(id, rec)
	if !ok {
		return nil, false, nil
	}
	everyScore := func(string, string) bool { return true } // the view picks its measures' when it reads them
	if err := readScores(ctx, store, []*Journey{&j}, rec.Versions[len(rec.Versions)-1:], everyScore); err != nil {
		return nil, false, err
	}
	s := j.Summary()
	return &s, true, nil
}

// summary is a journey as retention keeps it: times in Unix nanoseconds
// (0: not reached), so the figures read from it are those read from the
// Task's versions to the nanosecond.
type summary struct {
	TaskID        string `json:"id"`
	Category      string `json:"c,omitempty"`
	Practice      string `json:"p,omitempty"`
	PracticeName  string `json:"pn,omitempty"`
	ProviderID    string `json:"o,omitempty"`
	Sent          int64  `json:"s"`
	Delivered     int64  `json:"d,omitempty"`
	Accepted      int64  `json:"a,omitempty"`
	FirstContact  int64  `json:"f,omitempty"`
	Started       int64  `json:"b,omitempty"`
	Ended         int64  `json:"e,omitempty"`
	End           string `json:"end,omitempty"`
	DeclineReason string `json:"r,omitempty"`
	// Scores are the outcome measures' scores, by "system|code".
	Scores map[string]keptScore `json:"m,omitempty"`
}

// keptScore is one score's pair, as Summary keeps it.
type keptScore struct {
	Before    int  `json:"b,omitempty"`
	After     int  `json:"a,omitempty"`
	HasBefore bool `json:"hb,omitempty"`
	HasAfter  bool `json:"ha,omitempty"`
}

// Summary is the journey as retention keeps it once the referral goes:
// what the outcomes view counts, and nothing of the patient.
func (j Journey) Summary() gateway.KeptJourney {
	nanos := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	b, err := json.Marshal(summary{TaskID: j.TaskID, Category: j.Category, Practice: j.Practice, PracticeName: j.PracticeName,
		ProviderID: j.ProviderID, Sent: nanos(j.Sent), Delivered: nanos(j.Delivered), Accepted: nanos(j.Accepted),
		FirstContact: nanos(j.FirstContact), Started: nanos(j.Started), Ended: nanos(j.Ended), End: j.End, DeclineReason: j.DeclineReason,
		Scores: keptScores(j.Measures)})
	if err != nil {
		panic(err) // strings and numbers
	}
	return gateway.KeptJourney{TaskID: j.TaskID, Sent: j.Sent, Summary: b}
}

// ParseSummary reads a journey back from what Summary kept.
func ParseSummary(b []byte) (Journey, error) {
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		return Journey{}, err
	}
	at := func(n int64) time.Time {
		if n == 0 {
			return time.Time{}
		}
		return time.Unix(0, n).UTC()
	}
	j := Journey{TaskID: s.TaskID, Category: s.Category, Practice: s.Practice, PracticeName: s.PracticeName,
		ProviderID: s.ProviderID, Sent: at(s.Sent), Delivered: at(s.Delivered), Accepted: at(s.Accepted),
		FirstContact: at(s.FirstContact), Started: at(s.Started), Ended: at(s.Ended), End: s.End, DeclineReason: s.DeclineReason}
	for key, p := range s.Scores {
		if j.Measures == nil {
			j.Measures = map[string]MeasurePair{}
		}
		j.Measures[key] = MeasurePair(p)
	}
	return j, nil
}

func keptScores(m map[string]MeasurePair) map[string]keptScore {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]keptScore, len(m))
	for key, p := range m {
		out[key] = keptScore(p)
	}
	return out
}

// journeyOf reads a journey from a Task's record: the milestones its
// versions recorded, or, for a Task written before they did, those the
// versions read give, recorded as the store records them. A Task entered
// in error is no referral and is left out (ok false).
func journeyOf(id string, rec gateway.JourneyRecord) (Journey, bool) {
	j := Journey{TaskID: id}
	if len(rec.Versions) == 0 {
		return j, false
	}
	reached := rec.Journey()
	if !reached.At[gateway.MilestoneVoid].IsZero() {
		return j, false
	}
	var first struct {
		AuthoredOn string `json:"authoredOn"`
		Requester  struct {
			Reference  string `json:"reference"`
			Display    string `json:"display"`
			Identifier struct {
				Value string `json:"value"`
			} `json:"identifier"`
		} `json:"requester"`
		Owner struct {
			Reference string `json:"reference"`
		} `json:"owner"`
		Input []struct {
			ValueCoding struct {
				System string `json:"system"`
				Code   string `json:"code"`
			} `json:"valueCoding"`
		} `json:"input"`
	}
	_ = jsonv2.Unmarshal(rec.Versions[0].Body, &first)
	j.Sent = rec.Versions[0].LastUpdated
	if t, err := time.Parse(time.RFC3339Nano, first.AuthoredOn); err == nil {
		j.Sent = t.UTC()
	}
	j.Practice = cmp.Or(first.Requester.Identifier.Value, first.Requester.Display, first.Requester.Reference)
	j.PracticeName = first.Requester.Display
	j.ProviderID = strings.TrimPrefix(first.Owner.Reference, gateway.TypeOrganization+"/")
	for _, in := range first.Input {
		if in.ValueCoding.System == gateway.CategorySystem {
			j.Category = in.ValueCoding.Code
		}
	}
	at := &reached.At
	j.Delivered, j.Accepted, j.FirstContact, j.Started = at[gateway.MilestoneDelivered], at[gateway.MilestoneAccepted],
		at[gateway.MilestoneContacted], at[gateway.MilestoneStarted]
	if ended := at[gateway.MilestoneEnded]; !ended.IsZero() {
		j.Ended = ended
		switch end := reached.End; end.Status {
		case gateway.TaskCompleted:
			j.End = EndCompleted
		case gateway.TaskRejected:
			j.End, j.DeclineReason = EndDeclined, end.Reason
		case gateway.TaskFailed:
			j.End = EndFailed
			if end.Reason == gateway.EndDidNotAttend {
				j.End = gateway.EndDidNotAttend
			}
		case gateway.TaskCancelled:
			j.End = EndCancelled
		}
	}
	return j, true
}

// Funnel counts referrals by how far they got. The stages are cumulative:
// a referral that reached a later stage counts as having passed the
// earlier ones (a completed referral was started, accepted and delivered,
// whether or not each step was recorded). The endings are exclusive: each
// referral ended one way, or is still open.
type Funnel struct {
	Sent, Delivered, Accepted, Started, Completed int
	Declined, Failed, DidNotAttend, Cancelled     int
}

// Open counts the referrals that have not ended.
func (f Funnel) Open() int {
	return f.Sent - f.Completed - f.Declined - f.Failed - f.DidNotAttend - f.Cancelled
}

// Durations summarises how long a step took.
type Durations struct {
	N           int
	Median, P90 time.Duration
}

// ReportRow is the funnel and timings of one group of referrals.
type ReportRow struct {
	Key, Label     string
	Funnel         Funnel
	ToAcceptance   Durations // from sent to accepted
	ToFirstContact Durations // from sent to the first contact recorded
	// Measures are how the outcome measures' scores changed, before to
	// after, score by score (those recorded for the group's referrals).
	Measures []ScoreChange
}

// ReasonCount is how many referrals were declined for one reason.
type ReasonCount struct {
	Code, Display string
	Count         int
}

// Report is the outcomes of the referrals sent in a period.
type Report struct {
	From, To                           time.Time
	Total                              ReportRow
	ByCategory, ByPractice, ByProvider []ReportRow
	DeclineReasons                     []ReasonCount
	// OverTime counts the referrals sent in each day, week or month of the
	// period (Interval says which), oldest first, empty ones included.
	OverTime []Interval
}

// Interval is one day, week or month of a report's period: how many
// referrals were sent in it. A week starts on Monday; the first and last
// may be cut short by the period.
type Interval struct {
	Start, End time.Time // [Start, End), UK days
	Unit       string    // "day", "week" or "month"
	Sent       int
}

// Insights builds the report of the referrals sent in [from, to).
func (s *Service) Insights(ctx context.Context, from, to time.Time) (*Report, error) {
	journeys, err := s.Journeys(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return BuildReportWith(journeys, from, to, s.providerName, s.Organizations, s.Measures), nil
}

func (s *Service) providerName(id string) string {
	if p, ok := s.Router().Provider(id); ok {
		return p.Name
	}
	return id
}

// BuildReport totals journeys into a report. providerName labels providers;
// the directory names practices by their ODS codes (else the name the
// referral gave, else the code).
func BuildReport(journeys []Journey, from, to time.Time, providerName func(string) string, directory gateway.Directory) *Report {
	return BuildReportWith(journeys, from, to, providerName, directory, mappings.DefaultMeasures())
}

// BuildReportWith is BuildReport naming the scores of a deployment's own
// measures.
func BuildReportWith(journeys []Journey, from, to time.Time, providerName func(string) string, directory gateway.Directory, measures *mappings.Measures) *Report {
	infos := scoreInfos(measures)
	row := func(key, label string, js []Journey) ReportRow { return row(key, label, js, infos) }
	rowsBy := func(js []Journey, key func(Journey) string, label func(string) string) []ReportRow {
		return rowsBy(js, key, label, infos)
	}
	r := &Report{From: from, To: to, Total: row("all", "All referrals", journeys), OverTime: overTime(journeys, from, to)}
	r.ByCategory = rowsBy(journeys, func(j Journey) string { return j.Category }, mappings.CategoryLabel)
	practices := map[string]string{}
	for _, j := range journeys {
		switch {
		case directory.Name(j.Practice) != "":
			practices[j.Practice] = directory.Label(j.Practice)
		case j.PracticeName != "" && j.PracticeName != j.Practice:
			practices[j.Practice] = j.PracticeName + " (" + j.Practice + ")"
		}
	}
	r.ByPractice = rowsBy(journeys, func(j Journey) string { return j.Practice }, func(k string) string { return cmp.Or(practices[k], k) })
	r.ByProvider = rowsBy(journeys, func(j Journey) string { return j.ProviderID }, providerName)
	counts := map[string]int{}
	for _, j := range journeys {
		if j.End == EndDeclined {
			counts[cmp.Or(j.DeclineReason, "unspecified")]++
		}
	}
	for code, n := range counts {
		display := "Reason coded " + code // another system's code
		if o, ok := gateway.OptionNamed(gateway.DeclineReasons, code); ok {
			display = o.Display
		} else if code == "unspecified" {
			display = "No coded reason"
		}
		r.DeclineReasons = append(r.DeclineReasons, ReasonCount{code, display, n})
	}
	slices.SortFunc(r.DeclineReasons, func(a, b ReasonCount) int {
		return cmp.Or(b.Count-a.Count, strings.Compare(a.Code, b.Code))
	})
	return r
}

// overTime counts the journeys sent in each interval of [from, to): days
// for a period of up to 31 days, weeks up to 26 weeks, months beyond, so
// a chart has a few dozen bars at most.
func overTime(journeys []Journey, from, to time.Time) []Interval {
	from, to = from.In(UKTime), to.In(UKTime)
	days := int(math.Round(to.Sub(from).Hours() / 24))
	unit, start := "day", from
	switch {
	case days <= 31:
	case days <= 26*7:
		unit = "week"
		start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7)) // back to Monday
	default:
		unit = "month"
		start = time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, UKTime)
	}
	var out []Interval
	for at := start; at.Before(to); {
		next := at.AddDate(0, 0, 1)
		switch unit {
		case "week":
			next = at.AddDate(0, 0, 7)
		case "month":
			next = at.AddDate(0, 1, 0)
		}
		out = append(out, Interval{Start: maxTime(at, from), End: minTime(next, to), Unit: unit})
		at = next
	}
	for _, j := range journeys {
		i, _ := slices.BinarySearchFunc(out, j.Sent, func(iv Interval, t time.Time) int {
			switch {
			case !t.Before(iv.End):
				return -1
			case t.Before(iv.Start):
				return 1
			}
			return 0
		})
		if i < len(out) && !j.Sent.Before(out[i].Start) && j.Sent.Before(out[i].End) {
			out[i].Sent++
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func rowsBy(journeys []Journey, key func(Journey) string, label func(string) string, infos map[string]scoreInfo) []ReportRow {
	groups := map[string][]Journey{}
	for _, j := range journeys {
		groups[key(j)] = append(groups[key(j)], j)
	}
	out := make([]ReportRow, 0, len(groups))
	for k, js := range groups {
		out = append(out, row(k, cmp.Or(label(k), k, "Unknown"), js, infos))
	}
	slices.SortFunc(out, func(a, b ReportRow) int {
		return cmp.Or(b.Funnel.Sent-a.Funnel.Sent, strings.Compare(a.Key, b.Key))
	})
	return out
}

func row(key, label string, journeys []Journey, infos map[string]scoreInfo) ReportRow {
	r := ReportRow{Key: key, Label: label, Measures: scoreChanges(journeys, infos)}
	var toAccept, toContact []time.Duration
	for _, j := range journeys {
		f := &r.Funnel
		f.Sent++
		if !j.Delivered.IsZero() {
			f.Delivered++
		}
		if !j.Accepted.IsZero() {
			f.Accepted++
			toAccept = append(toAccept, j.Accepted.Sub(j.Sent))
		}
		if !j.Started.IsZero() {
			f.Started++
		}
		if !j.FirstContact.IsZero() {
			toContact = append(toContact, j.FirstContact.Sub(j.Sent))
		}
		switch j.End {
		case EndCompleted:
			f.Completed++
		case EndDeclined:
			f.Declined++
		case EndFailed:
			f.Failed++
		case gateway.EndDidNotAttend:
			f.DidNotAttend++
		case EndCancelled:
			f.Cancelled++
		}
	}
	r.ToAcceptance, r.ToFirstContact = summarise(toAccept), summarise(toContact)
	return r
}

// summarise takes the median and 90th percentile by the nearest-rank
// method: each is a time some referral actually took.
func summarise(ds []time.Duration) Durations {
	if len(ds) == 0 {
		return Durations{}
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		return ds[max(0, int(math.Ceil(p*float64(len(ds))))-1)]
	}
	return Durations{N: len(ds), Median: rank(0.5), P90: rank(0.9)}
}

// Stages are the funnel's columns in order, with their codes in the
// MeasureReport and the CSV. Exit marks the endings other than completion.
var Stages = []struct {
	Code, Display string
	Exit          bool
	Count         func(Funnel) int
}{
	{"sent", "Sent", false, func(f Funnel) int { return f.Sent }},
	{"delivered", "Delivered", false, func(f Funnel) int { return f.Delivered }},
	{"accepted", "Accepted", false, func(f Funnel) int { return f.Accepted }},
	{"started", "Started", false, func(f Funnel) int { return f.Started }},
	{"completed", "Completed", false, func(f Funnel) int { return f.Completed }},
	{"declined", "Declined", true, func(f Funnel) int { return f.Declined }},
	{"failed", "Failed", true, func(f Funnel) int { return f.Failed }},
	{"did-not-attend", "Did not attend", true, func(f Funnel) int { return f.DidNotAttend }},
	{"cancelled", "Cancelled", true, func(f Funnel) int { return f.Cancelled }},
}

// WriteCSV writes the report as CSV: one row per group (all referrals, then
// each category, practice and provider), a column per stage, and the
// timings in hours.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"period_start", "period_end", "group_by", "group", "label"}
	for _, st := range Stages {
		head = append(head, strings.ReplaceAll(st.Code, "-", "_"))
	}
	head = append(head, "accepted_n", "hours_to_acceptance_median", "hours_to_acceptance_p90",
		"first_contact_n", "hours_to_first_contact_median", "hours_to_first_contact_p90")
	// The outcome measures: per score recorded in the period, the pairs
	// (before and after) and the median change with its 95% interval.
	for _, sc := range r.Total.Measures {
		c := strings.ReplaceAll(sc.Code, "-", "_")
		head = append(head, c+"_pairs", c+"_before_median", c+"_after_median", c+"_change_median", c+"_change_ci95_low", c+"_change_ci95_high")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, g := range r.groups() {
		for _, row := range g.rows {
			rec := []string{r.FirstDay(), r.LastDay(), g.by, csvSafe(row.Key), csvSafe(row.Label)}
			for _, st := range Stages {
				rec = append(rec, strconv.Itoa(st.Count(row.Funnel)))
			}
			rec = append(rec, durationCells(row.ToAcceptance)...)
			rec = append(rec, durationCells(row.ToFirstContact)...)
			for _, sc := range r.Total.Measures {
				rec = append(rec, measureCells(row.Measures, sc.Code)...)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// UKTime is the zone people's dates are read and shown in: a report's
// days, the dates chosen for a period, the times on the pages.
var UKTime = func() *time.Location {
	l, err := time.LoadLocation("Europe/London")
	if err != nil {
		panic(err) // time/tzdata is embedded below
	}
	return l
}()

// FirstDay is the report's first day, as a UK date.
func (r *Report) FirstDay() string { return r.From.In(UKTime).Format(time.DateOnly) }

// LastDay is the report's last day (To is the instant after it), as a UK date.
func (r *Report) LastDay() string { return r.To.Add(-time.Nanosecond).In(UKTime).Format(time.DateOnly) }

// csvSafe stops a spreadsheet reading a cell as a formula (CSV injection):
// labels come from configuration and referrers' displays.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// measureCells are one score's columns for a row: empty figures where the
// row has no pair (and no interval below 6 pairs).
func measureCells(ms []ScoreChange, code string) []string {
	for _, m := range ms {
		if m.Code != code || m.Pairs == 0 {
			continue
		}
		cells := []string{strconv.Itoa(m.Pairs), Number(m.Before), Number(m.After), Number(m.Change), "", ""}
		if m.HasCI {
			cells[4], cells[5] = Number(m.CILow), Number(m.CIHigh)
		}
		return cells
	}
	return []string{"0", "", "", "", "", ""}
}

func durationCells(d Durations) []string {
	if d.N == 0 {
		return []string{"0", "", ""}
	}
	return []string{strconv.Itoa(d.N), Hours(d.Median), Hours(d.P90)}
}

// Hours formats a duration in hours to one decimal place.
func Hours(d time.Duration) string { return strconv.FormatFloat(d.Hours(), 'f', 1, 64) }

type reportGroup struct {
	by   string
	rows []ReportRow
}

func (r *Report) groups() []reportGroup {
	return []reportGroup{{"all", []ReportRow{r.Total}}, {"category", r.ByCategory}, {"practice", r.ByPractice}, {"provider", r.ByProvider}}
}

// ConfidenceIntervalExtension carries, on a MeasureReport group or stratum
// of an outcome measure, the 95% confidence interval of its measureScore
// (valueRange): R4's MeasureReport has no element for one.
const ConfidenceIntervalExtension = "https://signpost.health/fhir/StructureDefinition/confidence-interval-95"

// scoreGroup is a MeasureReport group (code given) or stratum (code nil)
// of one score's change.
func scoreGroup(code map[string]any, sc ScoreChange, population func(int) []map[string]any) map[string]any {
	g := map[string]any{"population": population(sc.Pairs)}
	if code != nil {
		g["code"] = code
	}
	if sc.Pairs > 0 {
		g["measureScore"] = map[string]any{"value": sc.Change}
	}
	if sc.HasCI {
		g["extension"] = []map[string]any{{"url": ConfidenceIntervalExtension, "valueRange": map[string]any{"low": map[string]any{"value": sc.CILow}, "high": map[string]any{"value": sc.CIHigh}}}}
	}
	return g
}

// MeasureURL is the canonical of the measure the MeasureReport reports on.
const MeasureURL = "https://signpost.health/fhir/Measure/social-prescribing-referral-outcomes"

// StageSystem codes the MeasureReport's groups (the funnel's stages and timings).
const StageSystem = "https://signpost.health/fhir/CodeSystem/referral-outcome-measure"

// MeasureReport renders the report as a FHIR R4 MeasureReport (summary):
// a group per stage whose initial population counts the referrals that
// reached it, stratified by category, practice and provider; groups for
// the timings with their score in hours; and the decline reasons as a
// stratifier of the declined group. Evaluators can pool these across areas.
func (r *Report) MeasureReport(id string, now time.Time) []byte {
	type coding = map[string]string
	concept := func(system, code, display string) map[string]any {
		return map[string]any{"coding": []coding{{"system": system, "code": code, "display": display}}, "text": display}
	}
	population := func(n int) []map[string]any {
		return []map[string]any{{"code": concept("http://terminology.hl7.org/CodeSystem/measure-population", "initial-population", "Initial Population"), "count": n}}
	}
	var groups []map[string]any
	for _, st := range Stages {
		g := map[string]any{"code": concept(StageSystem, st.Code, st.Display), "population": population(st.Count(r.Total.Funnel))}
		var strat []map[string]any
		for _, by := range r.groups()[1:] {
			var strata []map[string]any
			for _, row := range by.rows {
				value := map[string]any{"text": cmp.Or(row.Label, row.Key, "Unknown")}
				if row.Key != "" {
					value["coding"] = []coding{{"code": row.Key}}
				}
				strata = append(strata, map[string]any{"value": value, "population": population(st.Count(row.Funnel))})
			}
			if len(strata) > 0 {
				strat = append(strat, map[string]any{"code": []map[string]any{concept(StageSystem, by.by, "By "+by.by)}, "stratum": strata})
			}
		}
		if st.Code == "declined" && len(r.DeclineReasons) > 0 {
			var strata []map[string]any
			for _, rc := range r.DeclineReasons {
				value := map[string]any{"text": rc.Display}
				if _, known := gateway.OptionNamed(gateway.DeclineReasons, rc.Code); known {
					value["coding"] = []coding{{"system": gateway.DeclineReasonSystem, "code": rc.Code, "display": rc.Display}}
				}
				strata = append(strata, map[string]any{"value": value, "population": population(rc.Count)})
			}
			strat = append(strat, map[string]any{"code": []map[string]any{concept(StageSystem, "decline-reason", "By decline reason")}, "stratum": strata})
		}
		if len(strat) > 0 {
			g["stratifier"] = strat
		}
		groups = append(groups, g)
	}
	for _, t := range []struct {
		code, display string
		d             Durations
	}{
		{"hours-to-acceptance-median", "Median hours from sent to accepted", r.Total.ToAcceptance},
		{"hours-to-acceptance-p90", "90th percentile hours from sent to accepted", r.Total.ToAcceptance},
		{"hours-to-first-contact-median", "Median hours from sent to first contact", r.Total.ToFirstContact},
		{"hours-to-first-contact-p90", "90th percentile hours from sent to first contact", r.Total.ToFirstContact},
	} {
		g := map[string]any{"code": concept(StageSystem, t.code, t.display), "population": population(t.d.N)}
		if t.d.N > 0 {
			v := t.d.Median
			if strings.HasSuffix(t.code, "p90") {
				v = t.d.P90
			}
			hours, _ := strconv.ParseFloat(Hours(v), 64)
			g["measureScore"] = map[string]any{"value": hours, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}
		}
		groups = append(groups, g)
	}
	// The outcome measures: a group per score, its population the referrals
	// with a pair, its score the median change (after minus before) with the
	// 95% interval as an extension, stratified like the stages.
	for _, sc := range r.Total.Measures {
		g := scoreGroup(concept(mappings.MeasureCodeSystem, sc.Code, "Change in "+sc.Display+" (median, after minus before)"), sc, population)
		var strat []map[string]any
		for _, by := range r.groups()[1:] {
			var strata []map[string]any
			for _, row := range by.rows {
				for _, m := range row.Measures {
					if m.Code == sc.Code && m.Pairs > 0 {
						value := map[string]any{"text": cmp.Or(row.Label, row.Key, "Unknown")}
						if row.Key != "" {
							value["coding"] = []coding{{"code": row.Key}}
						}
						stratum := scoreGroup(nil, m, population)
						stratum["value"] = value
						strata = append(strata, stratum)
					}
				}
			}
			if len(strata) > 0 {
				strat = append(strat, map[string]any{"code": []map[string]any{concept(StageSystem, by.by, "By "+by.by)}, "stratum": strata})
			}
		}
		if len(strat) > 0 {
			g["stratifier"] = strat
		}
		groups = append(groups, g)
	}
	mr := map[string]any{
		"resourceType": "MeasureReport", "id": id, "status": "complete", "type": "summary",
		"measure": MeasureURL, "date": now.UTC().Format(time.RFC3339),
		"period": map[string]string{"start": r.From.UTC().Format(time.RFC3339), "end": r.To.UTC().Add(-time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")},
		"group":  groups,
	}
	b, err := json.MarshalIndent(mr, "", "  ")
	if err != nil {
		panic(err) // maps of strings and numbers
	}
	return b
}
