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
}

// New returns the use case over the core and the trail.
func New(core *gateway.Core, trail Trail) *Service { return &Service{Core: core, Trail: trail} }

// MaxScanned bounds the audit records one question reads: the trail is
// read from its newest record back to the referral's creation, and a
// referral in a deployment busy enough to hold more since is answered with
// what the newest records say, and says so (Result.Complete).
const MaxScanned = 200_000

// page is how many records are read per round trip.
const page = 2000

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
	res := &Result{Complete: true}
	before, scanned := "+", 0
	for {
		entries, err := s.Trail.AuditBefore(ctx, before, since, page)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if s.disclosure(e.Record, refs) {
				res.Records = append(res.Records, e.Record)
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

// referralRefs are the references a disclosure of the referral names,
// and when the referral was made.
func (s *Service) referralRefs(ctx context.Context, r *gateway.Resource) ([]string, time.Time, error) {
	var task, sr *gateway.Resource
	var err error
	switch r.Type {
	case gateway.TypeTask:
		task = r
		view, err := gateway.ParseTask(task.Body)
		if err != nil {
			return nil, time.Time{}, err
		}
		if id, ok := strings.CutPrefix(s.LocalRef(view.Focus), gateway.TypeServiceRequest+"/"); ok {
			if sr, err = s.Store.Read(ctx, gateway.TypeServiceRequest, id); err != nil {
				return nil, time.Time{}, err
			}
		}
	default:
		sr = r
		holder, err := s.Store.Lookup(ctx, gateway.ReferralTaskKey(sr.ID))
		if err != nil {
			return nil, time.Time{}, err
		}
		if holder != "" {
			if task, err = s.Store.Read(ctx, gateway.TypeTask, strings.TrimPrefix(holder, gateway.TypeTask+"/")); err != nil {
				return nil, time.Time{}, err
			}
		}
	}
	var refs []string
	since := time.Now()
	if task != nil {
		refs = append(refs, task.Ref())
		view, err := gateway.ParseTask(task.Body)
		if err != nil {
			return nil, time.Time{}, err
		}
		if p := s.LocalRef(view.For); strings.HasPrefix(p, gateway.TypePatient+"/") {
			refs = append(refs, p)
		}
		if first, err := s.Store.ReadVersion(ctx, gateway.TypeTask, task.ID, 1); err == nil {
			since = first.LastUpdated
		}
	}
	if sr != nil {
		refs = append(refs, sr.Ref())
		more, err := s.Supporting(ctx, sr.Ref())
		if err != nil {
			return nil, time.Time{}, err
		}
		for _, m := range more {
			refs = append(refs, m.Ref())
		}
		if first, err := s.Store.ReadVersion(ctx, gateway.TypeServiceRequest, sr.ID, 1); err == nil && first.LastUpdated.Before(since) {
			since = first.LastUpdated
		}
	}
	return refs, since.Add(-time.Second), err
}

// disclosure reports whether a record is a provider's receipt or reading
// of one of the referral's resources.
func (s *Service) disclosure(r gateway.AuditRecord, refs []string) bool {
	if _, ok := s.Router().Provider(r.Client); !ok || r.Status >= 400 {
		return false
	}
	return slices.ContainsFunc(r.What, func(w string) bool {
		base, _, _ := strings.Cut(w, "/_history/")
		return slices.Contains(refs, base)
	})
}
