package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/signpost-health/signpost/fhir"
)

// ProvenanceWrite is the record of who made a Task version, written in the
// same commit as the version: agent says who (its who, type and, for a
// person, onBehalfOf). The record belongs to the Task's client and is
// indexed under the Task's provider (owner, "Organization/{id}") too, so
// whoever may see the Task sees who changed it.
// The agent is a map (AgentOf) or JSON encoded once (signpostAgent: every
// delivery records one).
func (s *Core) ProvenanceWrite(task *Resource, owner string, agent any, now time.Time) Write {
	id := s.NewIDBeside(task.ID) // written in the Task's commit, so in its place
	agentJSON, encoded := agent.(json.RawMessage)
	if !encoded {
		agentJSON = mustJSON(agent)
	}
	body := provenanceBody(id, Instant(now), task.Ref()+"/_history/"+task.VersionID(), agentJSON)
	prov := &Resource{Type: TypeProvenance, ID: id, Version: 1, LastUpdated: now, Body: body, Owner: task.Owner}
	terms := []string{TargetTerm(task.Ref()), ClientTerm(task.Owner)}
	if owner != "" {
		terms = append(terms, Term("owner", owner))
	}
	return Write{Resource: prov, Expect: 0, Terms: terms}
}

// ParticipantType is a Provenance agent's type (provenance-participant-type).
func ParticipantType(code string) map[string]any {
	return map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": code}}}
}

// signpostAgent is Signpost itself as the agent of what it does to a
// Task on its own: recording a delivery, giving up on one. Encoded once.
var signpostAgent = mustJSON(map[string]any{"type": ParticipantType("custodian"), "who": map[string]any{"display": "Signpost"}})

// provenanceBody is a Provenance as ProvenanceWrite makes it, appended in
// place: one is written with every Task version, and encoding/json spent
// most of its time checking again the agent and activity, JSON encoded
// already (with the struct this replaced, about 4 % of a worker's CPU in a
// drain's profile).
func provenanceBody(id, at, target string, agent json.RawMessage) []byte {
	b := make([]byte, 0, 224+len(id)+2*len(at)+len(target)+len(reviseActivity)+len(agent))
	b = append(b, `{"resourceType":"`+TypeProvenance+`","id":`...)
	b, _ = jsontext.AppendQuote(b, id)
	b = append(b, `,"meta":{"versionId":"1","lastUpdated":`...)
	b, _ = jsontext.AppendQuote(b, at)
	b = append(b, `},"target":[{"reference":`...)
	b, _ = jsontext.AppendQuote(b, target)
	b = append(b, `}],"recorded":`...)
	b, _ = jsontext.AppendQuote(b, at)
	b = append(append(b, `,"activity":`...), reviseActivity...)
	b = append(append(b, `,"agent":[`...), agent...)
	return append(b, "]}"...)
}

// reviseActivity is every Provenance's activity: the Task was revised.
var reviseActivity = mustJSON(map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE", "display": "revise"}}})

// MaxHiddenProvenances bounds the Provenances one commit re-indexes to
// hide them from a provider: nothing bounds a Task's versions (a provider
// adding notes makes one each), so a withdrawal hides up to this many in
// its own commit and the rest after it, this many a step
// (HideRemainingProvenances), and no script's work grows with what a
// client made.
const MaxHiddenProvenances = 200

// HideProvenances are the writes that take up to limit of a Task's
// Provenances out of its provider's sight (a referral withdrawn from it):
// each indexed again as it is, without the provider's owner term. Their
// content is unchanged; their version moves on. more reports that the
// provider still has others (or, for a limit of 0 or less, may have):
// they are hidden after the commit (HideRemainingProvenances).
func (s *Core) HideProvenances(ctx context.Context, task *Resource, ownerRef string, limit int, now time.Time) (writes []Write, more bool, err error) {
	if limit <= 0 {
		return nil, true, nil
	}
	ids, total, err := s.Store.Search(ctx, &StoreQuery{Type: TypeProvenance, Groups: [][]string{{TargetTerm(task.Ref())}, {Term("owner", ownerRef)}}, Count: limit})
	if err != nil || len(ids) == 0 {
		return nil, false, err
	}
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = TypeProvenance + "/" + id
	}
	held, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return nil, false, err
	}
	writes = make([]Write, 0, len(held))
	for _, p := range held {
		obj, err := fhir.ParseResource(p.Body, fhir.ParseOptions{})
		if err != nil {
			return nil, false, err
		}
		stamp := NextVersionTime(now, p.LastUpdated)
		next := &Resource{Type: TypeProvenance, ID: p.ID, Version: p.Version + 1, LastUpdated: stamp, Owner: p.Owner,
			Body: obj.WithServerFields(p.ID, strconv.Itoa(p.Version+1), Instant(stamp))}
		writes = append(writes, Write{Resource: next, Expect: p.Version, Terms: []string{TargetTerm(task.Ref()), ClientTerm(p.Owner)}})
	}
	return writes, total > len(ids), nil
}

// maxHideConflicts bounds the steps of HideRemainingProvenances refused
// because what they read changed (the Task, or a Provenance another step
// hid first) before it leaves the rest to the provider's next search.
const maxHideConflicts = 3

// HideRemainingProvenances hides what a withdrawal's commit left of its
// Task's Provenances from the provider it was withdrawn from, in steps of
// MaxHiddenProvenances, each a commit of its own made only while the Task
// is still the version read and still withheld (a referral held or
// withdrawn: every Provenance of a version made since is written hidden
// already, so the steps come to an end). A Task not withheld, or gone, has
// nothing to hide. Run after a withdrawal's commit, and again by a
// provider's search that meets a Provenance of a Task it may not see
// (the process that withdrew it stopped between its steps). A Task that
// keeps changing under it (maxHideConflicts times) is left as it is, with
// no error: the withdrawal is stored, and the provider's searches leave
// out what remains (ProvenancesSeen) and finish it.
func (s *Core) HideRemainingProvenances(ctx context.Context, taskID string) error {
	for conflicts := 0; ; {
		task, view, err := s.ReadTask(ctx, taskID)
		if errors.Is(err, ErrNotFound) {
			return nil // removed (retention), its Provenances with it
		}
		if err != nil {
			return err
		}
		if !Withheld(task.Body) || view.Owner == "" {
			return nil
		}
		now := s.Now().UTC().Truncate(time.Millisecond)
		writes, more, err := s.HideProvenances(ctx, task, view.Owner, MaxHiddenProvenances, now)
		if err != nil || len(writes) == 0 {
			return err
		}
		res, err := s.Commit(ctx, &Commit{Writes: writes, Unchanged: []ReadVersion{{Type: TypeTask, ID: task.ID, Version: task.Version}}})
		if err != nil {
			return err
		}
		if !res.OK() {
			if conflicts++; conflicts == maxHideConflicts {
				return nil
			}
			continue
		}
		if !more {
			return nil
		}
	}
}

// ProvenancesSeen keeps, of the Provenances a caller's search matched,
// those whose Task the caller may see (Visible), and names the Tasks of
// the others. A provider's search is confined to the Provenances indexed
// under it, and a withdrawal takes them out of that index; this is the
// check that holds while it has not yet (between its steps), so that
// whatever the index says, a provider never reads a Provenance of a Task
// it may not read. One search for each maxTasksChecked Tasks the page
// names; other callers' searches are confined exactly by their index and
// pass as they are.
func (s *Core) ProvenancesSeen(ctx context.Context, c Caller, provs []*Resource) (seen []*Resource, unseenTasks []string, err error) {
	if c.Kind != CallerProvider || len(provs) == 0 {
		return provs, nil, nil
	}
	var tasks []string
	named := map[string]bool{}
	for _, p := range provs {
		if id, _ := provenanceTarget(p); id != "" && !named[id] {
			named[id] = true
			tasks = append(tasks, id)
		}
	}
	visible := map[string]bool{}
	for chunk := range slices.Chunk(tasks, maxTasksChecked) {
		ids := make([]string, len(chunk))
		for i, id := range chunk {
			ids[i] = idTerm(id)
		}
		found, _, err := s.Store.Search(ctx, &StoreQuery{Type: TypeTask, Groups: [][]string{ids, SearchScope(c, TypeTask)}, Count: len(chunk)})
		if err != nil {
			return nil, nil, err
		}
		for _, id := range found {
			visible[id] = true
		}
	}
	seen = make([]*Resource, 0, len(provs))
	for _, p := range provs {
		if id, _ := provenanceTarget(p); visible[id] {
			seen = append(seen, p)
		}
	}
	for _, id := range tasks {
		if !visible[id] {
			unseenTasks = append(unseenTasks, id)
		}
	}
	return seen, unseenTasks, nil
}

// maxTasksChecked bounds the Tasks one search of ProvenancesSeen checks:
// a page of up to 500 Provenances, each of another Task, is a few.
const maxTasksChecked = 200

// provenanceTarget is the Task a Provenance Signpost wrote records a
// version of, and that version (0 when the target names none).
func provenanceTarget(p *Resource) (taskID string, version int) {
	var body struct {
		Target []struct {
			Reference string `json:"reference"`
		} `json:"target"`
	}
	if json.Unmarshal(p.Body, &body) != nil || len(body.Target) == 0 {
		return "", 0
	}
	rest, ok := strings.CutPrefix(body.Target[0].Reference, TypeTask+"/")
	if !ok {
		return "", 0
	}
	id, after, _ := strings.Cut(rest, "/")
	if history, ok := strings.CutPrefix(after, "_history/"); ok {
		if v, err := strconv.Atoi(history); err == nil && v > 0 {
			version = v
		}
	}
	return id, version
}
