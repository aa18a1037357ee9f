// Package disclosures answers a referring practice's question "who outside
// the practice saw this patient's referral, and how": the records of the
// audit trail in which a provider was sent or read the referral's
// resources (a delivery by any path, an API read or search, an inbox page).
// It reads the audit trail Signpost keeps anyway; it writes nothing.
package disclosures

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// Trail is the audit trail, read newest first.
type Trail interface {
	// AuditBefore returns up to n records older than the stream position
	// before ("+" for the newest) and not older than since, newest first.
	AuditBefore(ctx context.Context, before string, since time.Time, n int64) ([]gateway.AuditEntry, error)
}

// Service finds a referral's disclosures.
type Service struct {
	*gateway.Core
	Trail Trail

	mu sync.Mutex
	// asking are the clients with a question being answered: one at a
	// time each, so no client can keep Redis and a core busy with
	// parallel scans of the trail.
	asking map[string]bool
}

// New returns the use case over the core and the trail.
func New(core *gateway.Core, trail Trail) *Service {
	return &Service{Core: core, Trail: trail, asking: map[string]bool{}}
}

// MaxScanned bounds the audit records one question reads: the trail is
// read from its newest record back to the referral's creation (the first
// version of its Task or ServiceRequest), and a referral in a deployment
// busy enough to hold more since is answered with what the newest records
// say, and says so (Result.Complete). At this bound a question reads a few
// megabytes from Redis.
const MaxScanned = 20_000

// page is how many records are read per round trip: small enough that no
// one reply is large, whatever the records hold.
const page = 500

// Result is a referral's disclosures, newest first.
type Result struct {
	Records []gateway.AuditRecord
	// Complete is false when MaxScanned records were read before the
	// referral's creation was reached.
	Complete bool
}

// ForReferral returns the disclosures of the referral a GP system (or an
// operator) names by its ServiceRequest or its Task: the records whose
// recipient or reader is a provider and which name the referral's
// ServiceRequest, Task, Patient or supporting resources. A referral the
// caller may not see is ErrNotFound; a provider may not ask.
func (s *Service) ForReferral(ctx context.Context, c gateway.Caller, entity string) (*Result, error) {
	if c.Kind == gateway.CallerProvider {
		return nil, gateway.NewError(gateway.KindForbidden, fhir.IssueForbidden, "", "a referral's disclosures are its referrer's to read")
	}
	typ, id, ok := strings.Cut(entity, "/")
	if !ok || (typ != gateway.TypeServiceRequest && typ != gateway.TypeTask) || gateway.CheckID(id) != nil {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueValue, "entity",
			"entity names the referral: ServiceRequest/{id} or Task/{id}")
	}
	if !s.begin(c.ClientID) {
		return nil, gateway.NewError(gateway.KindTooManyRequests, fhir.IssueThrottled, "",
			"a question about disclosures from this client is being answered; ask again when it is")
	}
	defer s.end(c.ClientID)
	r, err := s.ReadVisible(ctx, c, typ, id)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, gateway.NotFound(typ, id)
	}
	if err != nil {
		return nil, err
	}
	refs, since, err := s.referralRefs(ctx, r)
	if err != nil {
		return nil, err
	}
	patients := &patientMatch{ref: refs.patient, key: refs.patientKey, resolved: map[string]bool{}}
	res := &Result{Complete: true}
	before, scanned := "+", 0
	for {
		entries, err := s.Trail.AuditBefore(ctx, before, since, page)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if r, ok := s.disclosure(ctx, e.Record, refs, patients); ok {
				res.Records = append(res.Records, r)
			}
		}
		scanned += len(entries)
		if len(entries) < page {
			return res, nil
		}
		if scanned >= MaxScanned {
			res.Complete = false
			return res, nil
		}
		before = "(" + entries[len(entries)-1].ID
	}
}

func (s *Service) begin(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asking[client] {
		return false
	}
	s.asking[client] = true
	return true
}

func (s *Service) end(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.asking, client)
}

// referral is what a disclosure of one referral names: its own resources
// (the Task, the ServiceRequest and the resources that came with it, whose
// ids are its alone), and its Patient, whose FHIR id is only the practice's
// own (gateway.PatientKey): another practice's Patient may have the same.
type referral struct {
	own []string
	// patient is the Patient's reference as records name it, patientKey
	// the key it is kept under.
	patient, patientKey string
}

// referralRefs are the references a disclosure of the referral names,
// and when the referral was made.
func (s *Service) referralRefs(ctx context.Context, r *gateway.Resource) (referral, time.Time, error) {
	var task, sr *gateway.Resource
	var err error
	switch r.Type {
	case gateway.TypeTask:
		task = r
		view, err := gateway.ParseTask(task.Body)
		if err != nil {
			return referral{}, time.Time{}, err
		}
		if id, ok := strings.CutPrefix(s.LocalRef(view.Focus), gateway.TypeServiceRequest+"/"); ok {
			if sr, err = s.Store.Read(ctx, gateway.TypeServiceRequest, id); err != nil {
				return referral{}, time.Time{}, err
			}
		}
	default:
		sr = r
		holder, err := s.Store.Lookup(ctx, gateway.ReferralTaskKey(sr.ID))
		if err != nil {
			return referral{}, time.Time{}, err
		}
		if holder != "" {
			if task, err = s.Store.Read(ctx, gateway.TypeTask, strings.TrimPrefix(holder, gateway.TypeTask+"/")); err != nil {
				return referral{}, time.Time{}, err
			}
		}
	}
	var refs []string
	var patient, patientKey string
	since := time.Now()
	if task != nil {
		refs = append(refs, task.Ref())
		view, err := gateway.ParseTask(task.Body)
		if err != nil {
			return referral{}, time.Time{}, err
		}
		if p := s.LocalRef(view.For); strings.HasPrefix(p, gateway.TypePatient+"/") {
			patient, patientKey = p, gateway.PatientKey(task.Owner, strings.TrimPrefix(p, gateway.TypePatient+"/"))
		}
		if first, err := s.Store.ReadVersion(ctx, gateway.TypeTask, task.ID, 1); err == nil {
			since = first.LastUpdated
		}
	}
	if sr != nil {
		refs = append(refs, sr.Ref())
		more, err := s.Supporting(ctx, sr.Ref())
		if err != nil {
			return referral{}, time.Time{}, err
		}
		for _, m := range more {
			refs = append(refs, m.Ref())
		}
		if first, err := s.Store.ReadVersion(ctx, gateway.TypeServiceRequest, sr.ID, 1); err == nil && first.LastUpdated.Before(since) {
			since = first.LastUpdated
		}
	}
	return referral{own: refs, patient: patient, patientKey: patientKey}, since.Add(-time.Second), err
}

// patientMatch decides whether a record naming the referral's Patient by
// its FHIR id alone means this practice's Patient. Within a record that
// also names the referral's own resources it does (a provider reads a
// Patient through its Task). Standing alone it does when the provider that
// read it resolves that id to this practice's Patient (a provider names a
// Patient only through the Tasks it holds; gateway.Core.PatientKeyFor),
// asked once per provider per question.
type patientMatch struct {
	ref, key string
	resolved map[string]bool
}

func (s *Service) alone(ctx context.Context, m *patientMatch, provider string) bool {
	if ok, seen := m.resolved[provider]; seen {
		return ok
	}
	key, err := s.PatientKeyFor(ctx, gateway.Caller{ClientID: provider, Kind: gateway.CallerProvider}, strings.TrimPrefix(m.ref, gateway.TypePatient+"/"))
	ok := err == nil && key == m.key
	m.resolved[provider] = ok
	return ok
}

// disclosure returns, for a record that is a provider's receipt or
// reading of the referral's resources, the part of it that concerns this
// referral: its references to the referral (others, which may be other
// practices' referrals from the same search page, are only counted), and
// the provider; not the network address it called from or the e-mail
// address of the person who used its portal, which are the provider's
// business, not the practice's.
func (s *Service) disclosure(ctx context.Context, r gateway.AuditRecord, ref referral, patients *patientMatch) (gateway.AuditRecord, bool) {
	provider, ok := s.Router().Provider(r.Client)
	if !ok || r.Status >= 400 {
		return r, false
	}
	base := func(w string) string { b, _, _ := strings.Cut(w, "/_history/"); return b }
	var what []string
	others, patientNamed := r.Unlisted, false
	for _, w := range r.What {
		switch b := base(w); {
		case slices.Contains(ref.own, b):
			what = append(what, w)
		case ref.patient != "" && b == ref.patient:
			patientNamed = true
		default:
			others++
		}
	}
	if patientNamed {
		if len(what) > 0 || s.alone(ctx, patients, r.Client) {
			for _, w := range r.What {
				if base(w) != ref.patient {
					continue
				}
				if slices.Contains(what, w) {
					others++ // another practice's Patient of the same id and version
				} else {
					what = append(what, w)
				}
			}
		} else {
			others++
		}
	}
	if len(what) == 0 {
		return r, false
	}
	r.What, r.Unlisted = what, others
	r.Address = ""
	if r.User != "" {
		r.User = ""
		if r.Query == "" {
			r.Query = "portal"
		}
	}
	if r.Org.Value == "" {
		r.Org = provider.Organization
	}
	return r, true
}
