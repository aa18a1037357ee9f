package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/signpost-health/signpost/fhir"
)

// Patient ids are chosen by GP systems (update-as-create: a practice PUTs
// Patient/1001 under the id its own record uses), so two practices may
// well choose the same one. Each client's Patient ids are therefore its
// own: a Patient is kept under its owner and its id, a practice's Patient/1
// and a reference to it resolve within that practice's Patients, and another
// practice's Patient/1 is another Patient. Nothing answers differently
// because another client holds an id, so ids reveal nothing.
//
// A provider reaches a Patient only through a referral Task it owns: the
// Patient the Task points at, among the Patients of the client whose Task
// it is. A provider that holds referrals from two practices both pointing
// at their own Patient/1 cannot read "Patient/1" alone (409, which names no
// one); it reads each through its Task: Task?_id={task}&_include=Task:patient.

// patientScope separates the owner from the id where a Patient is kept. It
// cannot occur in a FHIR id, so no id a client chooses can reach into
// another client's Patients.
const patientScope = "|"

// PatientKey is where a client's Patient is kept: the store's id for it.
func PatientKey(owner, id string) string { return owner + patientScope + id }

// IsPatientKey reports whether a store id is a PatientKey, as opposed to
// a bare id a Patient was stored under before ids were scoped per client.
func IsPatientKey(id string) bool { return strings.Contains(id, patientScope) }

// maxPatientTasks bounds the Tasks read to find whose Patient a provider
// names: enough for every referral of one person to one provider.
const maxPatientTasks = 50

// patientStore keeps each client's Patients apart in the store: a Patient
// is written under its PatientKey and read back with its FHIR id, so the
// rest of the domain deals in FHIR ids and decides the key in one place
// (patientKey).
type patientStore struct{ Store }

// Commit writes Patients under their owners' keys, and checks those a
// change was decided on (Commit.Unchanged) there.
func (p patientStore) Commit(ctx context.Context, c *Commit) (*CommitResult, error) {
	var writes []Write
	for i, w := range c.Writes {
		if w.Resource.Type != TypePatient {
			continue
		}
		if writes == nil {
			writes = append([]Write(nil), c.Writes...)
		}
		r := *w.Resource // the caller's Resource keeps its FHIR id
		r.ID = PatientKey(r.Owner, r.ID)
		writes[i].Resource = &r
	}
	var reads []ReadVersion
	for i, r := range c.Unchanged {
		if r.Type != TypePatient {
			continue
		}
		if reads == nil {
			reads = append([]ReadVersion(nil), c.Unchanged...)
		}
		reads[i].ID = PatientKey(r.Owner, r.ID)
	}
	if writes == nil && reads == nil {
		return p.Store.Commit(ctx, c)
	}
	keyed := *c
	if writes != nil {
		keyed.Writes = writes
	}
	if reads != nil {
		keyed.Unchanged = reads
	}
	return p.Store.Commit(ctx, &keyed)
}

// Read reads a Patient by its key (other types by id).
func (p patientStore) Read(ctx context.Context, typ, id string) (*Resource, error) {
	r, err := p.Store.Read(ctx, typ, id)
	return withFHIRID(r), err
}

// ReadVersion reads a version of a Patient by its key (other types by id).
func (p patientStore) ReadVersion(ctx context.Context, typ, id string, version int) (*Resource, error) {
	r, err := p.Store.ReadVersion(ctx, typ, id, version)
	return withFHIRID(r), err
}

// ReadMany reads "Patient/{key}" references (other types "Type/id").
func (p patientStore) ReadMany(ctx context.Context, refs []string) ([]*Resource, error) {
	got, err := p.Store.ReadMany(ctx, refs)
	for _, r := range got {
		withFHIRID(r)
	}
	return got, err
}

// withFHIRID gives a Patient read by its key its FHIR id back.
func withFHIRID(r *Resource) *Resource {
	if r != nil && r.Type == TypePatient {
		if i := strings.LastIndex(r.ID, patientScope); i >= 0 {
			r.ID = r.ID[i+len(patientScope):]
		}
	}
	return r
}

// PatientKeyFor resolves the Patient id a caller names to the key it is kept
// under. A GP system names its own Patients. A provider names the Patient
// of a Task it owns, in the Task's client's Patients. An operator names its
// own (the configured client it acts as), or else the one Patient anywhere
// with that id. ErrNotFound when a provider has no Task for the id.
func (s *Core) PatientKeyFor(ctx context.Context, c Caller, id string) (string, error) {
	switch c.Kind {
	case CallerGP:
		return PatientKey(c.ClientID, id), nil
	case CallerProvider:
		ids, _, err := s.Store.Search(ctx, &StoreQuery{Type: TypeTask, Count: maxPatientTasks,
			Groups: [][]string{{SubjectTerm(TypePatient + "/" + id)}, {OwnerTerm(c.ClientID)}}})
		if err != nil || len(ids) == 0 {
			return "", cmpErr(err, ErrNotFound)
		}
		refs := make([]string, len(ids))
		for i, t := range ids {
			refs[i] = TypeTask + "/" + t
		}
		tasks, err := s.Store.ReadMany(ctx, refs)
		if err != nil {
			return "", err
		}
		owner := ""
		for _, t := range tasks {
			if owner != "" && t.Owner != owner {
				return "", ambiguousPatient()
			}
			owner = t.Owner
		}
		if owner == "" {
			return "", ErrNotFound
		}
		return PatientKey(owner, id), nil
	}
	own := PatientKey(c.ClientID, id)
	if _, err := s.Store.Read(ctx, TypePatient, own); err == nil || !isNotFound(err) {
		return own, err
	}
	keys, _, err := s.Store.Search(ctx, &StoreQuery{Type: TypePatient, Groups: [][]string{{PatientIDTerm(id)}}, Count: 2})
	switch {
	case err != nil:
		return "", err
	case len(keys) == 1:
		return keys[0], nil
	case len(keys) > 1:
		return "", ambiguousPatient()
	}
	return own, nil
}

// PatientOf reads the Patient a Task points at (id: its FHIR id), among the
// Patients of the Task's client, if the caller may see it; nil otherwise.
func (s *Core) PatientOf(ctx context.Context, c Caller, task *Resource, id string) (*Resource, error) {
	if CheckID(id) != nil {
		return nil, nil
	}
	p, err := s.Store.Read(ctx, TypePatient, PatientKey(task.Owner, id))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ok, err := s.Visible(ctx, c, p)
	if err != nil || !ok {
		return nil, err
	}
	return s.SharedWith(c, p), nil
}

func ambiguousPatient() error {
	return NewError(KindConflict, fhir.IssueConflict, "",
		"more than one Patient of your referrals has this id (they come from different GP systems); read each with its referral Task: Task?_id={task}&_include=Task:patient")
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, ErrNotFound) }

// cmpErr is err, or otherwise fallback.
func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
