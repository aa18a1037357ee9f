package export

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// pagedStore calls afterPage once each page of a search is answered: a
// test writes there, between an export's pages, as other clients would.
type pagedStore struct {
	*redisstore.Store
	afterPage func(page int)
	pages     int
}

func (p *pagedStore) Search(ctx context.Context, q *gateway.StoreQuery) ([]string, int, error) {
	ids, total, err := p.Store.Search(ctx, q)
	p.pages++
	p.afterPage(p.pages)
	return ids, total, err
}

// An export is of the resources its snapshot holds, however many are
// created while it runs: more Tasks created between its pages than the
// store follows changes of (3 here) neither fail it nor appear in it,
// while a Task of the snapshot changed meanwhile is still written once,
// as it is when read. The same on a store that spreads referrals.
func TestExportOutlastsCreationsWhileItRuns(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) {
			t.Parallel()
			testExportOutlastsCreations(t, spread)
		})
	}
}

func testExportOutlastsCreations(t *testing.T, spread bool) {
	ctx := context.Background()
	store := redisstore.New(redistest.Start(t).Client(), "signpost")
	store.SetStampLag(pastClockLag)
	if spread {
		store.SpreadReferrals()
	}
	const bound = 3
	store.SetFollowLimits(bound, 2) // three changes followed, two looked at a run
	clk := &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	snapshot := clk.now()
	id := func(name string) string {
		place, rest, _ := strings.Cut(name, "/")
		return store.Place(place) + place + rest
	}
	put := func(name string, version int, at time.Time, status string) {
		t.Helper()
		w := gateway.Write{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: id(name), Version: version, LastUpdated: at, Owner: "practice-a",
			Body: fmt.Appendf(nil, `{"resourceType":"Task","id":%q,"status":%q}`, id(name), status)}, Expect: version - 1, Terms: []string{"status=" + status}}
		if res, err := store.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("%s version %d: %+v %v", name, version, res, err)
		}
	}
	var inSnapshot []string
	for i := range 5 {
		name := fmt.Sprintf("s%d", i+1)
		put(name, 1, snapshot.Add(-time.Minute+time.Duration(i)*time.Second), "requested")
		inSnapshot = append(inSnapshot, id(name))
	}
	paged := &pagedStore{Store: store, afterPage: func(page int) {
		if page != 1 {
			return
		}
		// After the first page (s1, s2): more created than are followed,
		// s1 (written already) and s5 (not yet) accepted.
		// (On a spreading store, all in one partition: a partition follows
		// its own.)
		for i := range 4 * bound {
			put(fmt.Sprintf("new/%02d", i), 1, snapshot.Add(time.Second+time.Duration(i)*time.Millisecond), "requested")
		}
		put("s1", 2, snapshot.Add(2*time.Second), "accepted")
		put("s5", 2, snapshot.Add(2*time.Second), "accepted")
	}}
	core := gateway.NewCore(gateway.Options{Store: paged, Now: clk.now, FHIRBase: "http://signpost.test/fhir"})
	dir := t.TempDir()
	s := New(core, Options{Jobs: store, Dir: dir, Keep: time.Hour, PageSize: 2})
	t.Cleanup(s.Stop)

	jobID, err := s.Start(ctx, operator, Request{URL: "http://signpost.test/fhir/$export?_type=Task", Types: []string{gateway.TypeTask}})
	if err != nil {
		t.Fatal(err)
	}
	s.Wait()
	j, err := s.Status(ctx, operator, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != StatusDone || len(j.Output) != 1 {
		t.Fatalf("the export: %s %q, %d files (more created while it ran than are followed must not fail it)", j.Status, j.Failure, len(j.Output))
	}
	f, err := os.Open(filepath.Join(dir, jobID, j.Output[0].File))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	status := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct{ ID, Status string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ID)
		status[r.ID] = r.Status
	}
	slices.Sort(got)
	slices.Sort(inSnapshot)
	if !slices.Equal(got, inSnapshot) {
		t.Errorf("exported %v, want the snapshot's %v, each once", got, inSnapshot)
	}
	if status[id("s5")] != "accepted" {
		t.Errorf("s5, changed before it was written, is written as %q, want as it is then (accepted)", status[id("s5")])
	}
	if paged.pages < 3 {
		t.Errorf("%d pages: the writes did not come between pages", paged.pages)
	}
}

// exportedEachOnce fails t unless the export ended done with every Task
// of its snapshot, each once, in order; what names the case.
func exportedEachOnce(t *testing.T, got, want []string, status Status, failure, what string) {
	t.Helper()
	if status != StatusDone {
		t.Fatalf("export %s: %s (%s)", status, failure, what)
	}
	if !slices.Equal(got, want) {
		t.Errorf("exported %v, want the snapshot's %v, each once (%s)", got, want, what)
	}
}

// exportTasks runs a Task export of n Tasks (s1..sn, created a minute
// before the snapshot, two a page) on a fresh store, spreading or not,
// calling between(page, put) after each page answered, and returns the
// ids written (sorted), the snapshot's ids (sorted) and the job's status
// and failure.
func exportTasks(t *testing.T, n int, spread bool, limits func(*redisstore.Store), between func(page int, put func(name string, version int, at time.Time))) (got, want []string, status Status, failure string) {
	t.Helper()
	ctx := context.Background()
	store := redisstore.New(redistest.Start(t).Client(), "signpost")
	store.SetStampLag(pastClockLag)
	if spread {
		store.SpreadReferrals()
	}
	if limits != nil {
		limits(store)
	}
	clk := &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	snapshot := clk.now()
	put := func(name string, version int, at time.Time) {
		t.Helper()
		id := store.Place(name) + name
		w := gateway.Write{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: id, Version: version, LastUpdated: at, Owner: "practice-a",
			Body: fmt.Appendf(nil, `{"resourceType":"Task","id":%q,"status":"requested","note":[{"text":"v%d"}]}`, id, version)}, Expect: version - 1, Terms: []string{"status=requested"}}
		if res, err := store.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			t.Fatalf("%s version %d: %+v %v", name, version, res, err)
		}
	}
	for i := range n {
		name := fmt.Sprintf("s%d", i+1)
		put(name, 1, snapshot.Add(-time.Minute+time.Duration(i)*time.Second))
		want = append(want, store.Place(name)+name)
	}
	slices.Sort(want)
	paged := &pagedStore{Store: store, afterPage: func(page int) { between(page, put) }}
	core := gateway.NewCore(gateway.Options{Store: paged, Now: clk.now, FHIRBase: "http://signpost.test/fhir"})
	dir := t.TempDir()
	s := New(core, Options{Jobs: store, Dir: dir, Keep: time.Hour, PageSize: 2})
	t.Cleanup(s.Stop)
	jobID, err := s.Start(ctx, operator, Request{URL: "http://signpost.test/fhir/$export?_type=Task", Types: []string{gateway.TypeTask}})
	if err != nil {
		t.Fatal(err)
	}
	s.Wait()
	j, err := s.Status(ctx, operator, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status == StatusDone && len(j.Output) == 1 {
		f, err := os.Open(filepath.Join(dir, jobID, j.Output[0].File))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r struct{ ID string }
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			got = append(got, r.ID)
		}
	}
	slices.Sort(got)
	return got, want, j.Status, j.Failure
}

// An export outlasts any number of changes to the resources it holds, as
// providers and delivery workers update Tasks while a long export runs:
// every Task of its snapshot updated after each of its pages (some 80
// changes, where the store gives a run 1 of them: 1,000 in use) fails it
// no more, and each is written once. A page of two, where a run is given
// one, is read in parts; the export still ends only at the last. The same
// on a store that spreads referrals.
func TestExportOutlastsChangesWhileItRuns(t *testing.T) {
	t.Parallel()
	for _, spread := range []bool{false, true} {
		t.Run(fmt.Sprintf("spread=%v", spread), func(t *testing.T) {
			t.Parallel()
			snapshot := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
			const tasks = 12
			got, want, status, failure := exportTasks(t, tasks, spread, func(s *redisstore.Store) { s.SetFollowLimits(1, 2) }, func(page int, put func(string, int, time.Time)) {
				for i := range tasks {
					put(fmt.Sprintf("s%d", i+1), page+1, snapshot.Add(time.Duration(page)*time.Second+time.Duration(i)*time.Millisecond))
				}
			})
			exportedEachOnce(t, got, want, status, failure, "every Task updated between its pages")
		})
	}
}

// An export under more changes ahead of it than the store keeps (its
// bound, gateway.MaxFollowedAhead, set to 3 here; every Task updated
// after the first page) fails saying so, rather than grow the process
// without end: the client is told how many of which type changed, and to
// start again.
func TestExportFailsPastTheChangesItKeeps(t *testing.T) {
	t.Parallel()
	snapshot := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	const tasks = 12
	_, _, status, failure := exportTasks(t, tasks, false, func(s *redisstore.Store) { s.SetFollowLimits(1, 2); s.SetFollowedBound(3) }, func(page int, put func(string, int, time.Time)) {
		if page == 1 {
			for i := range tasks {
				put(fmt.Sprintf("s%d", i+1), 2, snapshot.Add(time.Duration(i)*time.Millisecond))
			}
		}
	})
	if want := fmt.Sprintf("more than %d Task resources the export had yet to write changed while it ran", gateway.MaxFollowedAhead); status != StatusFailed || !strings.Contains(failure, want) {
		t.Errorf("export %s: %q, want failed: %q...", status, failure, want)
	}
}

// A write whose lastUpdated is a moment before the kick-off but that
// lands in Redis after the export's first page (a commit in flight then,
// or from a process whose clock is a little behind: what gateway.FollowLag
// allows for) is after the snapshot, taken FollowLag before the kick-off,
// so it is followed rather than moved among the resources the export reads
// as unchanged: a Task already written (s1, on page 1) is not written
// again.
func TestExportWritesALateWriteBeforeTheSnapshotOnce(t *testing.T) {
	t.Parallel()
	got, want, status, failure := exportTasks(t, 5, false, nil, func(page int, put func(string, int, time.Time)) {
		if page == 1 {
			snapshot := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
			put("s1", 2, snapshot.Add(-time.Second)) // lands late, stamped before the snapshot
		}
	})
	exportedEachOnce(t, got, want, status, failure, "s1 written late")
}

// A Task of the snapshot updated many times (51 here) before the store
// first looks at it (between two pages here; in a real export, while the
// types before Task are exported: all types share one transaction time) is
// still written: the store finds its version current at the snapshot
// however many came since (a walk back of 50 versions once left it out).
func TestExportKeepsATaskUpdatedManyTimesMeanwhile(t *testing.T) {
	t.Parallel()
	snapshot := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	got, want, status, failure := exportTasks(t, 5, false, nil, func(page int, put func(string, int, time.Time)) {
		if page == 1 {
			for v := 2; v <= 52; v++ { // 51 notes added by its provider
				put("s4", v, snapshot.Add(time.Second+time.Duration(v)*time.Millisecond))
			}
		}
	})
	exportedEachOnce(t, got, want, status, failure, "s4 changed 51 times")
}
