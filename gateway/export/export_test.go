package export

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// clock is a test's time, moved on by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// pastClockLag lets these tests' stores take what is written by the fixed
// clock they run on, behind Redis's (redisstore.SetStampLag).
const pastClockLag = 100 * 365 * 24 * time.Hour

func setup(t *testing.T) (*Service, *redisstore.Store, *clock, string) {
	t.Helper()
	store := redisstore.New(redistest.Start(t).Client(), "signpost")
	store.SetStampLag(pastClockLag)
	clk := &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	core := gateway.NewCore(gateway.Options{Store: store, Now: clk.now, FHIRBase: "http://signpost.test/fhir"})
	dir := t.TempDir()
	s := New(core, Options{Jobs: store, Dir: dir, Keep: time.Hour})
	t.Cleanup(s.Stop)
	return s, store, clk, dir
}

var operator = gateway.Caller{ClientID: "ops", Kind: gateway.CallerOperator}

func isNotFound(err error) bool {
	e := gateway.AsError(err)
	return err != nil && e.Kind == gateway.KindNotFound
}

// A job whose process stopped (its heartbeat no longer renewed) is
// reported failed, never done, and its half-written files are removed.
func TestInterruptedExportIsFailed(t *testing.T) {
	t.Parallel()
	s, store, clk, dir := setup(t)
	ctx := context.Background()
	j := &Job{ID: randomName(16), Client: operator.ClientID, Types: []string{gateway.TypeTask}, TransactionTime: clk.now(),
		Status: StatusRunning, Heartbeat: clk.now()}
	if err := store.SaveJob(ctx, j.ID, encode(j), s.runningExpiry(j)); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, j.ID, "Task-partial.ndjson")
	if err := os.MkdirAll(filepath.Dir(half), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(half, []byte(`{"resourceType":"Task"`), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	if got, err := s.Status(ctx, operator, j.ID); err != nil || got.Status != StatusRunning {
		t.Fatalf("a job with a recent heartbeat: %+v %v", got, err)
	}
	clk.add(2 * time.Minute)
	got, err := s.Status(ctx, operator, j.ID)
	if err != nil || got.Status != StatusFailed || got.Failure == "" || len(got.Output) != 0 {
		t.Fatalf("an interrupted job: %+v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, j.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("its files are still there: %v", err)
	}
	// Failed is what it stays, until it is swept Keep later.
	if again, _ := s.Status(ctx, operator, j.ID); again.Status != StatusFailed {
		t.Errorf("second status: %+v", again)
	}
	clk.add(time.Hour + time.Second)
	if _, err := s.Status(ctx, operator, j.ID); !isNotFound(err) {
		t.Errorf("swept job: %v", err)
	}
}

// A finished export stays Keep, then goes with its files at the next
// request; one nobody polls again goes all the same.
func TestFinishedExportIsSwept(t *testing.T) {
	t.Parallel()
	s, store, clk, dir := setup(t)
	ctx := context.Background()
	id := exportNothing(t, s)
	j, err := s.Status(ctx, operator, id)
	if err != nil || j.Status != StatusDone || len(j.Output) != 0 {
		t.Fatalf("an export of nothing: %+v %v", j, err)
	}
	if _, err := s.Status(ctx, gateway.Caller{ClientID: "other", Kind: gateway.CallerOperator}, id); !isNotFound(err) {
		t.Errorf("another operator's view of it: %v", err)
	}
	clk.add(59 * time.Minute)
	if _, err := s.Status(ctx, operator, id); err != nil {
		t.Fatalf("within keep: %v", err)
	}
	clk.add(2 * time.Minute)
	// A kick-off sweeps too: the old job goes though nobody asks for it.
	if _, err := s.Start(ctx, operator, Request{Types: []string{gateway.TypeTask}}); err != nil {
		t.Fatal(err)
	}
	s.Wait()
	swept(t, store, dir, id)
}

// The timer's Sweep removes an expired export though no request comes.
func TestSweepWithoutRequests(t *testing.T) {
	t.Parallel()
	s, store, clk, dir := setup(t)
	ctx := context.Background()
	id := exportNothing(t, s)
	s.Sweep(ctx)
	if _, err := store.LoadJob(ctx, id); err != nil {
		t.Fatalf("swept within keep: %v", err)
	}
	clk.add(61 * time.Minute)
	s.Sweep(ctx)
	swept(t, store, dir, id)
}

// exportNothing starts an export of an empty store as the operator and
// waits for it to finish.
func exportNothing(t *testing.T, s *Service) string {
	t.Helper()
	id, err := s.Start(context.Background(), operator, Request{URL: "http://signpost.test/fhir/$export"})
	if err != nil {
		t.Fatal(err)
	}
	s.Wait()
	return id
}

// swept checks that job id and its files are gone.
func swept(t *testing.T, store *redisstore.Store, dir, id string) {
	t.Helper()
	if _, err := store.LoadJob(context.Background(), id); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("the job is still stored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("its directory is still there: %v", err)
	}
}

func TestOnlyOperatorsExport(t *testing.T) {
	t.Parallel()
	s, _, _, _ := setup(t)
	for _, kind := range []gateway.CallerKind{gateway.CallerGP, gateway.CallerProvider} {
		_, err := s.Start(context.Background(), gateway.Caller{ClientID: "x", Kind: kind}, Request{})
		if e := gateway.AsError(err); err == nil || e.Kind != gateway.KindForbidden {
			t.Errorf("kind %v: %v", kind, err)
		}
	}
	if _, err := CheckTypes([]string{"Task,Bogus,Medication"}); err == nil {
		t.Error("unknown types accepted")
	}
	if got, err := CheckTypes([]string{"Task, Task", "Patient"}); err != nil || len(got) != 2 {
		t.Errorf("CheckTypes = %v %v", got, err)
	}
}

// A de-identified line that is not valid R4 is never written: the export
// fails, leaves no file, and says which resource by its place in the file,
// never by its id (a Patient's may be its NHS number).
func TestDeidentifiedExportFailsOnInvalidLine(t *testing.T) {
	t.Parallel()
	store := redisstore.New(redistest.Start(t).Client(), "signpost")
	store.SetStampLag(pastClockLag)
	clk := &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	core := gateway.NewCore(gateway.Options{Store: store, Now: clk.now, FHIRBase: "http://signpost.test/fhir"})
	var logs bytes.Buffer
	dir := t.TempDir()
	s := New(core, Options{Jobs: store, Dir: dir, Keep: time.Hour, PseudonymKey: []byte(strings.Repeat("s", 32)),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(s.Stop)
	ctx := context.Background()
	// Stored before intake checked dates: reduced to its "year", "not-",
	// it is no R4 date.
	body := `{"resourceType":"Patient","id":"9434765919","birthDate":"not-a-date"}`
	// Stored a minute before the export: one written in its last
	// gateway.FollowLag is after its snapshot, and not in it.
	p := &gateway.Resource{Type: gateway.TypePatient, ID: "9434765919", Version: 1, LastUpdated: clk.now().Add(-time.Minute), Owner: "practice-a", Body: []byte(body)}
	if _, err := core.Store.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: p}}}); err != nil {
		t.Fatal(err)
	}
	id, err := s.Start(ctx, operator, Request{Types: []string{gateway.TypePatient}, Deidentify: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Wait()
	j, err := s.Status(ctx, operator, id)
	if err != nil || j.Status != StatusFailed || len(j.Output) != 0 {
		t.Fatalf("an export with an invalid de-identified line: %+v %v", j, err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("the export left %d entries (%v)", len(entries), err)
	}
	if !strings.Contains(logs.String(), "not valid R4") || strings.Contains(logs.String(), "9434765919") {
		t.Errorf("logs: %s", logs.String())
	}
}
