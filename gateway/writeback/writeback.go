package writeback

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// TaskIdentifierSystem names Signpost's Tasks on other servers: the GP's
// copy of a referral Task carries it, so a repeated create is recognised.
const TaskIdentifierSystem = "https://signpost.health/fhir/Id/task"

// outcomeIdentifierSystem names the outcome entries Signpost files.
const outcomeIdentifierSystem = "https://signpost.health/fhir/Id/outcome"

// outcomeOf is the outcome a GP record codes for a Task status, if any.
var outcomeOf = map[gateway.TaskStatus]string{
	gateway.TaskAccepted:  mappings.OutcomeAccepted,
	gateway.TaskRejected:  mappings.OutcomeDeclined,
	gateway.TaskCompleted: mappings.OutcomeCompleted,
}

// WriteBack is what a GP system's record should hold of a referral now.
type WriteBack struct {
	Task   *gateway.Resource // the current version in Signpost
	Status gateway.TaskStatus
	// Outcome is a coded entry (an Observation) for statuses a GP record
	// codes, when the outcome table has a code; nil otherwise.
	Outcome []byte
	// OutcomeQuery is the If-None-Exist that recognises the entry if it was
	// filed already (a write retried after a lost answer).
	OutcomeQuery string
	// Scores are the outcome measures' scores the Task names (Observations),
	// as the GP record files them: each version once.
	Scores []Score
	base   string
	view   *gateway.TaskView
}

// Score is one outcome measure's score as it is filed in a GP record.
type Score struct {
	// Ref names the Observation version ("Observation/id/_history/v"):
	// what the write-back state remembers as filed.
	Ref  string
	Body []byte
	// Query recognises the entry if it was filed already.
	Query string
}

// scoreIdentifierSystem names the scores Signpost files: an Observation
// version each, so a correction (status amended) is filed beside the score
// it corrects and a retried create finds the first.
const scoreIdentifierSystem = "https://signpost.health/fhir/Id/measure-score"

// scores are the Task's measure Observations as the GP server gets them:
// no Signpost meta or id, references made absolute, Signpost's identifier.
func (s *Service) scores(ctx context.Context, task *gateway.Resource) ([]Score, error) {
	obs, err := s.MeasureScores(ctx, task)
	if err != nil {
		return nil, err
	}
	out := make([]Score, 0, len(obs))
	for _, o := range obs {
		var m map[string]any
		if json.Unmarshal(o.Body, &m) != nil {
			continue
		}
		delete(m, "meta")
		delete(m, "id")
		value := o.ID + "-" + o.VersionID()
		m["identifier"] = []map[string]string{{"system": scoreIdentifierSystem, "value": value}}
		if subject, ok := m["subject"].(map[string]any); ok {
			if r, ok := subject["reference"].(string); ok {
				subject["reference"] = s.Absolute(r)
			}
		}
		for _, name := range []string{"basedOn", "focus", "derivedFrom", "performer"} {
			list, _ := m[name].([]any)
			for _, item := range list {
				if ref, ok := item.(map[string]any); ok {
					if r, ok := ref["reference"].(string); ok {
						ref["reference"] = s.Absolute(r)
					}
				}
			}
		}
		body, _ := json.Marshal(m)
		out = append(out, Score{Ref: o.Ref() + "/_history/" + o.VersionID(), Body: body, Query: "identifier=" + scoreIdentifierSystem + "|" + value})
	}
	return out, nil
}

// TaskQuery is the If-None-Exist that recognises the GP's copy of the Task.
func (w *WriteBack) TaskQuery() string {
	return "identifier=" + TaskIdentifierSystem + "|" + w.Task.ID
}

// WriteBack reads what the GP record should hold of a Task at a version
// (0: the current one, which the Task copy always gets, so a later status
// is never overwritten by an earlier one; a given version for the outcome
// entry of the change that made it).
func (s *Service) WriteBack(ctx context.Context, taskID string, version int) (*WriteBack, error) {
	var task *gateway.Resource
	var view *gateway.TaskView
	var err error
	if version == 0 {
		task, view, err = s.ReadTask(ctx, taskID)
	} else if task, err = s.Store.ReadVersion(ctx, gateway.TypeTask, taskID, version); err == nil {
		view, err = gateway.ParseTask(task.Body)
	}
	if err != nil {
		return nil, err
	}
	wb := &WriteBack{Task: task, Status: view.Status, base: s.Base, view: view}
	if version == 0 {
		if wb.Scores, err = s.scores(ctx, task); err != nil {
			return nil, err
		}
	}
	outcome, coded := outcomeOf[view.Status]
	if !coded {
		return wb, nil
	}
	code, known := s.OutcomeCodes.Code(outcome)
	if !known {
		return wb, nil // no verified code: the Task carries the status, no code is invented
	}
	var sr struct {
		Identifier []map[string]any `json:"identifier"`
	}
	if srID := strings.TrimPrefix(view.Focus, gateway.TypeServiceRequest+"/"); srID != view.Focus {
		if r, err := s.Store.Read(ctx, gateway.TypeServiceRequest, srID); err == nil {
			_ = json.Unmarshal(r.Body, &sr)
		}
	}
	basedOn := map[string]any{"reference": s.Absolute(view.Focus)}
	if len(sr.Identifier) > 0 {
		basedOn["identifier"] = sr.Identifier[0] // the GP system's own referral id
	}
	obs := map[string]any{
		"resourceType":      "Observation",
		"identifier":        []map[string]string{{"system": outcomeIdentifierSystem, "value": task.ID + "-" + string(view.Status)}},
		"status":            "final",
		"code":              map[string]any{"coding": []map[string]string{{"system": code.System, "code": code.Code, "display": code.Display}}},
		"basedOn":           []map[string]any{basedOn},
		"effectiveDateTime": gateway.Instant(task.LastUpdated),
		"focus":             []map[string]string{{"reference": s.Absolute(task.Ref())}},
	}
	var subject map[string]any
	if json.Unmarshal(fhir.Member(task.Body, "for"), &subject) == nil && subject != nil {
		if ref, ok := subject["reference"].(string); ok {
			subject["reference"] = s.Absolute(ref)
		}
		obs["subject"] = subject
	}
	if view.StatusReason != "" {
		obs["note"] = []map[string]string{{"text": view.StatusReason}}
	}
	wb.Outcome, _ = json.Marshal(obs)
	wb.OutcomeQuery = "identifier=" + outcomeIdentifierSystem + "|" + task.ID + "-" + string(view.Status)
	return wb, nil
}

// TaskBody is the Task as the GP server gets it: id gpID ("" to create),
// no Signpost meta, references made absolute, and Signpost's identifier.
func (w *WriteBack) TaskBody(gpID string) []byte {
	var m map[string]any
	_ = json.Unmarshal(w.Task.Body, &m) // stored bytes passed the raw checks
	delete(m, "meta")
	delete(m, "id")
	if gpID != "" {
		m["id"] = gpID
	}
	ids, _ := m["identifier"].([]any)
	m["identifier"] = append(ids, map[string]string{"system": TaskIdentifierSystem, "value": w.Task.ID})
	for _, name := range []string{"focus", "for", "owner"} {
		if ref, ok := m[name].(map[string]any); ok {
			if r, ok := ref["reference"].(string); ok {
				ref["reference"] = gateway.AbsoluteRef(w.base, r)
			}
		}
	}
	b, _ := json.Marshal(m)
	return b
}
