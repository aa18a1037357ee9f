package export

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
)

// JobStore keeps export jobs where every replica reads them. A job is
// opaque to the store (its bytes are encoded here, by one codec).
type JobStore interface {
	// SaveJob stores a job's state under id; expires is when the sweep
	// may remove it.
	SaveJob(ctx context.Context, id string, state []byte, expires time.Time) error
	// UpdateJob stores a job's state only if the job is held and was not
	// changed while the update was made, and reports whether it stored it.
	UpdateJob(ctx context.Context, id string, state []byte, expires time.Time) (bool, error)
	// LoadJob returns a job's state, or gateway.ErrNotFound.
	LoadJob(ctx context.Context, id string) ([]byte, error)
	// DeleteJob forgets a job (no error if it is not held).
	DeleteJob(ctx context.Context, id string) error
	// ExpiredJobs returns up to n ids of jobs whose expiry is before now.
	ExpiredJobs(ctx context.Context, now time.Time, n int) ([]string, error)
}

// Status is where a job stands.
type Status string

const (
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
)

// Job is an export's state: what was asked, by whom, and what was written.
// It is encoded as JSON by encode and decode only.
type Job struct {
	ID     string `json:"id"`
	Client string `json:"client"` // the caller's ClientID: only it may see the job
	// Request is the kick-off URL as the client sent it (manifest.request).
	Request string    `json:"request"`
	Types   []string  `json:"types"`
	Since   time.Time `json:"since,omitzero"`
	// Deidentified: every resource was de-identified as it was written
	// (the key is never part of the job).
	Deidentified bool `json:"deidentified,omitempty"`
	// TransactionTime is the export's snapshot (snapshotAt): resources
	// changed after it are left out (or exported as they are now, if they
	// already were in the snapshot).
	TransactionTime time.Time `json:"transactionTime"`
	Status          Status    `json:"status"`
	// Heartbeat is renewed by the process running the job; a running job
	// whose heartbeat is older than staleAfter was interrupted.
	Heartbeat time.Time `json:"heartbeat"`
	Finished  time.Time `json:"finished,omitzero"`
	Progress  string    `json:"progress,omitempty"`
	Output    []Output  `json:"output,omitempty"`
	// Failure is what the caller is told when the job failed.
	Failure string `json:"failure,omitempty"`
}

// Output is one NDJSON file of a job: the resources of one type.
type Output struct {
	Type  string `json:"type"`
	File  string `json:"file"` // the file's name in the job's directory
	Count int    `json:"count"`
}

func encode(j *Job) []byte {
	b, _ := json.Marshal(j) // a Job always encodes
	return b
}

func decode(b []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("export job state: %w", err)
	}
	return &j, nil
}

// Options configure the export use case.
type Options struct {
	Jobs JobStore
	// Dir is where the files go (one directory per job, mode 0700).
	Dir string
	// Keep is how long a finished job and its files stay.
	Keep time.Duration
	// PageSize is how many resources are read from the store at once: the
	// bound on what a running export holds in memory (default 200).
	PageSize int
	// PseudonymKey is the deployment's key for the de-identified export
	// (see ParsePseudonymKey); nil refuses de-identified exports. It is
	// never logged, stored with a job or written to a file.
	PseudonymKey []byte
	// PatientDates is how dates of birth and death are reduced (default
	// DatesYear).
	PatientDates PatientDates
	Logger       *slog.Logger
}

// DefaultKeep is how long a finished export stays when Options.Keep is 0.
const DefaultKeep = 24 * time.Hour

// Heartbeats: a running job's heartbeat is renewed at least every
// heartbeatEvery; one not renewed for staleAfter belongs to a process that
// stopped.
const (
	heartbeatEvery = 5 * time.Second
	staleAfter     = 2 * time.Minute
	// sweepBatch bounds the jobs one lazy sweep removes.
	sweepBatch = 20
)

// Service runs exports.
type Service struct {
	core *gateway.Core
	o    Options
	log  *slog.Logger
	// running are the jobs this process runs, to cancel them.
	mu      sync.Mutex
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// New returns the export use case. o.Dir "" is a directory under the
// operating system's temporary directory.
func New(core *gateway.Core, o Options) *Service {
	if o.Dir == "" {
		o.Dir = filepath.Join(os.TempDir(), "signpost-export")
	}
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	if o.PageSize <= 0 {
		o.PageSize = 200
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Service{core: core, o: o, log: log, running: map[string]context.CancelFunc{}}
}

// Types are the resource types an export may ask for: those Signpost
// serves, in the order a whole export writes them.
func Types() []string {
	return append([]string{gateway.TypeServiceRequest, gateway.TypeTask, gateway.TypePatient, gateway.TypeProvenance}, gateway.SupportingTypes()...)
}

// Request is a kick-off, as the HTTP layer parsed it.
type Request struct {
	// URL is the request as the client sent it (for the manifest).
	URL string
	// Types are the resource types asked for (nil: every one of Types()).
	Types []string
	Since time.Time
	// Deidentify asks for the de-identified variant (_deidentify=true).
	Deidentify bool
}

// CheckTypes parses a _type value: a comma-separated list of types
// Signpost serves. Every unknown type is named.
func CheckTypes(values []string) ([]string, error) {
	var out []string
	known := Types()
	var bad []string
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "":
			case !slices.Contains(known, t):
				bad = append(bad, t)
			case !slices.Contains(out, t):
				out = append(out, t)
			}
		}
	}
	if len(bad) > 0 {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueNotSupported, "_type",
			"_type names types Signpost does not export: %s; it exports %s", strings.Join(bad, ", "), strings.Join(known, ", "))
	}
	return out, nil
}

// snapshotAt is the snapshot of an export started at now: gateway.FollowLag
// and a millisecond before it, in whole milliseconds. Every write stamped
// at or before it has landed by now, so none moves among the pages the
// export reads as unchanged (and is written twice); every later one scores
// after it and is followed. It keeps Bulk Data's transactionTime: every
// resource changed up to it is in the export, and those changed after it
// may be, as they are when read (a server may first let its pending
// transactions resolve).
func snapshotAt(now time.Time) time.Time {
	return now.Truncate(time.Millisecond).Add(-gateway.FollowLag - time.Millisecond)
}

// Start begins an export for caller and returns its job id. Only an
// operator may export: a system-level export holds every client's
// referrals.
func (s *Service) Start(ctx context.Context, caller gateway.Caller, req Request) (string, error) {
	may, deidentifiedOnly := caller.MayExport()
	if !may {
		return "", gateway.NewError(gateway.KindForbidden, fhir.IssueForbidden, "",
			"a system-level export holds every client's referrals: only an operator or evaluator (operators: in the configuration) may start one")
	}
	if deidentifiedOnly && !req.Deidentify {
		return "", gateway.NewError(gateway.KindForbidden, fhir.IssueForbidden, "_deidentify",
			"this client may take de-identified exports only: send _deidentify=true (its operators[].export is deidentified)")
	}
	if req.Deidentify && len(s.o.PseudonymKey) == 0 {
		return "", gateway.NewError(gateway.KindUnprocessable, fhir.IssueNotSupported, "_deidentify",
			"this deployment has no pseudonym key, so it cannot de-identify an export: its operator sets the key in the environment variable export.pseudonym_key_env names (SIGNPOST_PSEUDONYM_KEY unless changed), e.g. to the output of `openssl rand -base64 32`")
	}
	s.sweep(ctx)
	types := req.Types
	if len(types) == 0 {
		types = Types()
	}
	now := s.core.Now().UTC()
	j := &Job{ID: randomName(16), Client: caller.ClientID, Request: req.URL, Types: types, Since: req.Since, Deidentified: req.Deidentify,
		TransactionTime: snapshotAt(now), Status: StatusRunning, Heartbeat: now}
	dir := s.jobDir(j.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("export directory: %w", err)
	}
	if err := s.o.Jobs.SaveJob(ctx, j.ID, encode(j), s.runningExpiry(j)); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	s.running[j.ID] = cancel
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.running, j.ID)
			s.mu.Unlock()
			cancel()
		}()
		s.run(run, j)
	}()
	return j.ID, nil
}

// Keep is how long a finished export stays.
func (s *Service) Keep() time.Duration { return s.o.Keep }

// Wait waits for the jobs this process runs to end (after Stop, or in tests).
func (s *Service) Wait() { s.wg.Wait() }

// Stop cancels the jobs this process runs; they are reported as failed
// once their heartbeat is stale (another process cannot tell a stop from a
// crash, and need not).
func (s *Service) Stop() {
	s.mu.Lock()
	for _, cancel := range s.running {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Status returns the job for its client: gateway.NotFound for anyone else
// and for a job removed or never made. A running job whose heartbeat is
// stale is reported as failed.
func (s *Service) Status(ctx context.Context, caller gateway.Caller, id string) (*Job, error) {
	s.sweep(ctx)
	j, err := s.job(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if j.Status == StatusRunning && s.core.Now().Sub(j.Heartbeat) > staleAfter {
		j.Status, j.Failure, j.Finished = StatusFailed, "the export was interrupted (the server running it stopped) before it finished; its files are incomplete and were removed: start it again", s.core.Now().UTC()
		_ = os.RemoveAll(s.jobDir(j.ID))
		j.Output = nil
		if err := s.o.Jobs.SaveJob(ctx, j.ID, encode(j), j.Finished.Add(s.o.Keep)); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// Cancel stops a job (if this process runs it) and removes it with its files.
func (s *Service) Cancel(ctx context.Context, caller gateway.Caller, id string) error {
	j, err := s.job(ctx, caller, id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	cancel := s.running[j.ID]
	s.mu.Unlock()
	if err := s.o.Jobs.DeleteJob(ctx, j.ID); err != nil {
		return err
	}
	if cancel != nil {
		cancel()
	}
	return os.RemoveAll(s.jobDir(j.ID))
}

// File opens one output file of a finished job of the caller's.
func (s *Service) File(ctx context.Context, caller gateway.Caller, id, name string) (*os.File, error) {
	j, err := s.job(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	// Only names the manifest lists: a name never reaches the file
	// system unless Signpost made it.
	if j.Status != StatusDone || !slices.ContainsFunc(j.Output, func(o Output) bool { return o.File == name }) {
		return nil, gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, "", "no such export file")
	}
	f, err := os.Open(filepath.Join(s.jobDir(j.ID), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, "", "the export file is no longer kept")
	}
	return f, err
}

func (s *Service) job(ctx context.Context, caller gateway.Caller, id string) (*Job, error) {
	notFound := gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, "", "no such export is known to this client (finished exports are kept for %s)", s.o.Keep)
	if may, _ := caller.MayExport(); !validName(id) || !may {
		return nil, notFound
	}
	b, err := s.o.Jobs.LoadJob(ctx, id)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	j, err := decode(b)
	if err != nil {
		return nil, err
	}
	if j.Client != caller.ClientID {
		return nil, notFound
	}
	return j, nil
}

func (s *Service) jobDir(id string) string { return filepath.Join(s.o.Dir, id) }

// runningExpiry is when a running job may be swept: Keep after its
// heartbeat went stale. Each heartbeat moves it on, so a live job is never
// swept, and one whose process died is, even if nobody polls it again.
func (s *Service) runningExpiry(j *Job) time.Time { return j.Heartbeat.Add(staleAfter + s.o.Keep) }

// Sweep removes what expired exports left (serve calls it on a timer, so
// files go export.keep after the export finished even when nobody asks for
// exports any more).
func (s *Service) Sweep(ctx context.Context) {
	for range maxSweepBatches {
		if s.sweep(ctx) < sweepBatch {
			return
		}
	}
}

// maxSweepBatches bounds one Sweep; the next timer takes the rest.
const maxSweepBatches = 20

// sweep removes up to sweepBatch expired jobs and their files, and says
// how many it found. Failing to sweep never fails the request that
// triggered it.
func (s *Service) sweep(ctx context.Context) int {
	ids, err := s.o.Jobs.ExpiredJobs(ctx, s.core.Now(), sweepBatch)
	if err != nil {
		s.log.Warn("export sweep: listing expired exports failed", "error", err)
		return 0
	}
	for _, id := range ids {
		if !validName(id) {
			continue
		}
		if err := os.RemoveAll(s.jobDir(id)); err != nil {
			s.log.Warn("export sweep: removing files failed", "job", id, "error", err)
			continue
		}
		if err := s.o.Jobs.DeleteJob(ctx, id); err != nil {
			s.log.Warn("export sweep: forgetting job failed", "job", id, "error", err)
		}
	}
	return len(ids)
}

// run writes the job's files and records the outcome.
func (s *Service) run(ctx context.Context, j *Job) {
	err := s.write(ctx, j)
	if ctx.Err() != nil {
		// Cancelled (its job is deleted) or stopped with the process (its
		// heartbeat goes stale and a status request reports it failed).
		return
	}
	j.Finished = s.core.Now().UTC()
	j.Progress = ""
	if errors.Is(err, errGone) {
		_ = os.RemoveAll(s.jobDir(j.ID))
		return
	}
	if err != nil {
		s.log.Error("export failed", "job", j.ID, "error", err)
		j.Status, j.Failure, j.Output = StatusFailed, failure(err), nil
		_ = os.RemoveAll(s.jobDir(j.ID))
	} else {
		j.Status = StatusDone
	}
	if err := s.save(context.WithoutCancel(ctx), j, j.Finished.Add(s.o.Keep)); err != nil && !errors.Is(err, errGone) {
		s.log.Error("export: recording the outcome failed", "job", j.ID, "error", err)
	}
}

// errGone stops a runner whose job was cancelled or swept meanwhile.
var errGone = errors.New("export job no longer held")

// save stores the job's state unless it was cancelled meanwhile.
func (s *Service) save(ctx context.Context, j *Job, expires time.Time) error {
	held, err := s.o.Jobs.UpdateJob(ctx, j.ID, encode(j), expires)
	if err == nil && !held {
		err = errGone
	}
	return err
}

func (s *Service) write(ctx context.Context, j *Job) error {
	last := s.core.Now()
	for i, typ := range j.Types {
		out := Output{Type: typ, File: typ + "-" + randomName(12) + ".ndjson"}
		f, err := os.OpenFile(filepath.Join(s.jobDir(j.ID), out.File), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 64<<10)
		err = s.writeType(ctx, j, typ, w, &out.Count, func() error {
			if s.core.Now().Sub(last) < heartbeatEvery {
				return nil
			}
			last = s.core.Now()
			j.Heartbeat = last.UTC()
			j.Progress = fmt.Sprintf("%s: %d written (type %d of %d)", typ, out.Count, i+1, len(j.Types))
			return s.save(ctx, j, s.runningExpiry(j))
		})
		if err == nil {
			err = w.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		// A type with no resources gets no file, as the Bulk Data IG allows.
		if out.Count == 0 {
			if err := os.Remove(filepath.Join(s.jobDir(j.ID), out.File)); err != nil {
				return err
			}
			continue
		}
		j.Output = append(j.Output, out)
	}
	return nil
}

// failure is what the client is told of an export that failed with err.
func failure(err error) string {
	var many *tooManyChanged
	if errors.As(err, &many) {
		return fmt.Sprintf("more than %d %s resources the export had yet to write changed while it ran: it keeps where each stood at transactionTime, and stopped rather than hold more; its files were removed: start it again when fewer are changing", gateway.MaxFollowedAhead, many.typ)
	}
	return "the export failed before it finished; start it again"
}

// tooManyChanged is an export of typ stopped because more of its
// resources changed ahead of it than a search keeps (the store's
// gateway.ErrTooManyFollowed).
type tooManyChanged struct{ typ string }

func (e *tooManyChanged) Error() string {
	return e.typ + ": " + gateway.ErrTooManyFollowed.Error()
}

func (e *tooManyChanged) Unwrap() error { return gateway.ErrTooManyFollowed }

// writeType streams one type's current resources, a page at a time, in
// the order of the store's index as it was at the transaction time. It
// keeps what the store followed of the resources written since (one
// record for the whole type), so that each is looked at once, and each
// store run is given only the changed ones nearest ahead of the page
// (gateway.Keyset.Followed): no client can fail an export by creating
// resources while it runs, nor by changing them short of
// gateway.MaxFollowedAhead of one type ahead of its page at once (whoever
// owns them: the export holds every client's), past which it fails
// (tooManyChanged) rather than grow without end.
func (s *Service) writeType(ctx context.Context, j *Job, typ string, w *bufio.Writer, count *int, beat func() error) error {
	followed := &gateway.Followed{}
	ks := &gateway.Keyset{Snapshot: j.TransactionTime, Followed: followed}
	var deid *deidentifier
	if j.Deidentified {
		if len(s.o.PseudonymKey) == 0 {
			return errors.New("a de-identified export, and no pseudonym key")
		}
		deid = &deidentifier{key: s.o.PseudonymKey, dates: s.o.PatientDates}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q := &gateway.StoreQuery{Type: typ, Since: j.Since, Count: s.o.PageSize, Keyset: ks}
		ids, _, err := s.core.Store.Search(ctx, q)
		if errors.Is(err, gateway.ErrTooManyFollowed) {
			return &tooManyChanged{typ: typ}
		}
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		refs := make([]string, len(ids))
		for i, id := range ids {
			refs[i] = typ + "/" + id
		}
		got, err := s.core.Store.ReadMany(ctx, refs)
		if err != nil {
			return err
		}
		for _, r := range got {
			// One resource a line: a body stored with line breaks (as a
			// client may send it) is compacted, which changes no value;
			// Patients are named by ids unique in the export
			// (withExportedPatientIDs).
			body := r.Body
			if deid != nil {
				// Re-encoded compactly: no line break survives. The
				// resource is named by its place in the file, never its id
				// (a Patient's may be its NHS number).
				if body, err = deid.resource(body, r.Owner); err != nil {
					return fmt.Errorf("de-identifying %s number %d: %w", typ, *count+1, err)
				}
				// Every line is valid R4, as the README promises: a rule
				// that left one invalid fails the export rather than
				// hand an evaluator a line its tools refuse.
				if v := structure.Validate(body); !v.Valid() {
					return fmt.Errorf("de-identified %s number %d is not valid R4: %s", typ, *count+1, issueExpressions(v.Issues))
				}
			} else if body, err = withExportedPatientIDs(body, typ, r.Owner, s.core.Base); err != nil {
				return fmt.Errorf("%s number %d: %w", typ, *count+1, err)
			}
			if _, err := w.Write(body); err != nil {
				return err
			}
			if err := w.WriteByte('\n'); err != nil {
				return err
			}
			*count++
		}
		if err := beat(); err != nil {
			return err
		}
		if len(ids) < s.o.PageSize {
			return nil
		}
		last := ks.Positions[len(ks.Positions)-1]
		ks = &gateway.Keyset{Snapshot: j.TransactionTime, After: &last, Followed: followed}
	}
}

// issueExpressions lists where the issues are (element paths, never values).
func issueExpressions(issues []fhir.Issue) string {
	var where []string
	for _, is := range issues {
		where = append(where, strings.Join(is.Expression, ","))
	}
	return strings.Join(where, "; ")
}

// randomName is n random bytes in hex: job ids and file names nobody can guess.
func randomName(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// validName reports whether id could be a job id (so it is safe in a path).
func validName(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}
