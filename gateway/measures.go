package gateway

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Outcome measures: what a provider asks a person at first contact (the
// "before") and at completion (the "after"), recorded as a
// QuestionnaireResponse linked to the referral Task (Task.output, as
// Gravity links a completed questionnaire), its scores as coded
// Observations that travel back to the GP record with the Task.

// MeasurePoint is when in a referral a measure is asked.
type MeasurePoint string

const (
	MeasureFirstContact MeasurePoint = "first-contact"
	MeasureCompletion   MeasurePoint = "completion"
)

// MeasurePoints are the points, in the order a referral reaches them.
var MeasurePoints = []MeasurePoint{MeasureFirstContact, MeasureCompletion}

// Valid reports whether p is a known point.
func (p MeasurePoint) Valid() bool { return slices.Contains(MeasurePoints, p) }

// Display is the point as people read it.
func (p MeasurePoint) Display() string {
	if p == MeasureCompletion {
		return "At completion"
	}
	return "At first contact"
}

// MeasureRule asks Questionnaires (ids) at points of the referrals of some
// categories ("*": all) and providers (none: all).
type MeasureRule struct {
	Categories     []string
	Providers      []string
	Questionnaires []string
	At             []MeasurePoint
}

// AllCategories in MeasureRule.Categories matches every category.
const AllCategories = "*"

func (r MeasureRule) applies(category, provider string) bool {
	return (slices.Contains(r.Categories, AllCategories) || slices.Contains(r.Categories, category)) &&
		(len(r.Providers) == 0 || slices.Contains(r.Providers, provider))
}

// MeasuresAsked are the Questionnaire ids asked of a referral of a
// category sent to a provider at a point, in the order configured.
func (s *Core) MeasuresAsked(category, provider string, at MeasurePoint) []string {
	var out []string
	for _, r := range s.MeasureRules {
		if !r.applies(category, provider) || !slices.Contains(r.At, at) {
			continue
		}
		for _, q := range r.Questionnaires {
			if !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	return out
}

// The systems and urls outcome measures are recorded with.
const (
	// MeasurePointExtension says at which point (first-contact or
	// completion) a QuestionnaireResponse, and each Observation scored from
	// it, was recorded: valueCode.
	MeasurePointExtension = "https://signpost.health/fhir/StructureDefinition/measure-point"
	// QuestionnaireBase is where Signpost's Questionnaires live (their url).
	QuestionnaireBase = "https://signpost.health/fhir/Questionnaire/"
	// SDCTaskCodeSystem types a Task.output that is a completed
	// questionnaire (as Gravity's own examples do).
	SDCTaskCodeSystem = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
	// MeasureOutputSystem types a Task.output that is a measure's score.
	MeasureOutputSystem = "https://signpost.health/fhir/CodeSystem/task-output"
	// MeasureScoreOutput is the code of a score's Task.output.
	MeasureScoreOutput = "measure-score"
	// QuestionnaireResponseOutput is the code of a response's Task.output.
	QuestionnaireResponseOutput = "questionnaire-response"
	// TypeQuestionnaire is served read-only, from the deployment's measures.
	TypeQuestionnaire         = "Questionnaire"
	TypeQuestionnaireResponse = "QuestionnaireResponse"
	TypeObservation           = "Observation"
	ObservationCategorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	ObservationCategorySurvey = "survey"
)

// MeasureResponseID is the id of the QuestionnaireResponse recorded for a
// referral (ServiceRequest id) of a Questionnaire at a point: one each, so
// a response sent again is recognised, a correction is an update of it, and
// two recorded at once cannot both be stored (the second finds the id
// taken). No key beside the resource is needed, so removing the referral
// removes all of it.
func MeasureResponseID(serviceRequestID, questionnaire string, at MeasurePoint) string {
	return DerivedID("measure", serviceRequestID, questionnaire, string(at))
}

// MeasureResponseIDOf is MeasureResponseID in the referral's place
// (Placer): the response is written in one commit with its referral's
// Task, so in its partition.
func (s *Core) MeasureResponseIDOf(serviceRequestID, questionnaire string, at MeasurePoint) string {
	return s.PlaceOf(serviceRequestID) + MeasureResponseID(serviceRequestID, questionnaire, at)
}

// AgentOf is the Provenance agent of a change a caller made: the provider
// (by its organisation) or the referrer, and for a person signed in to the
// web pages, that person on behalf of their organisation.
func (s *Core) AgentOf(c Caller) map[string]any {
	who := map[string]any{"identifier": map[string]string{"system": c.Organization.System, "value": c.Organization.Value}}
	role := "author"
	agent := map[string]any{}
	switch c.Kind {
	case CallerProvider:
		who["reference"] = TypeOrganization + "/" + c.ClientID
		if p, ok := s.Router().Provider(c.ClientID); ok {
			who["display"] = p.DisplayName()
		}
		role = "performer"
		if c.Person != "" {
			// A person in the web pages: they acted, for their organisation.
			agent = map[string]any{"onBehalfOf": who}
			who = map[string]any{"identifier": map[string]string{"system": PortalUserSystem, "value": c.Person}, "display": c.Person}
		}
	case CallerOperator:
		// Without authentication nobody is known: the change is not the
		// referring practice's (whose organisation an operator's caller
		// carries only to stand in for it as requester), so it is not
		// recorded as theirs.
		who = map[string]any{"display": "an operator of this Signpost (no authentication: who acted is not known)"}
	}
	agent["type"] = ParticipantType(role)
	agent["who"] = who
	return agent
}

// TaskVersionBy builds the commit of a Task version made on a caller's
// behalf by a use case other than a Task update (an outcome measure
// recorded): the members given replace the current ones, lastModified is
// now, and the Provenance names agent. The status stays as it is.
func (s *Core) TaskVersionBy(cur *Resource, view *TaskView, members map[string]any, agent map[string]any, now time.Time) []Write {
	write := s.nextTaskWrite(cur, members, now)
	return []Write{write, s.ProvenanceWrite(write.Resource, view.Owner, agent, now)}
}

// MeasureScores reads the Observations (current versions) a Task version
// names among its outputs: the outcome measures' scores, which travel to
// the GP side with the Task (full-resource notifications, write-back, BaRS
// responses). Only scores of this Task's referral are kept (their focus is
// this Task and their basedOn its ServiceRequest): these pushes skip the
// read checks a GP's own read of the Observation would pass, so an output
// naming another referral's score must not carry it to this GP.
func (s *Core) MeasureScores(ctx context.Context, task *Resource) ([]*Resource, error) {
	view, err := ParseTask(task.Body)
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, o := range view.Outputs {
		if o.Type.System == MeasureOutputSystem && o.Type.Code == MeasureScoreOutput && strings.HasPrefix(o.Reference, TypeObservation+"/") {
			refs = append(refs, o.Reference)
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	read, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return nil, err
	}
	referral := s.LocalRef(view.Focus)
	out := read[:0]
	for _, o := range read {
		if s.scoreOf(o, task.Ref(), referral) {
			out = append(out, o)
		}
	}
	return out, nil
}

// scoreOf reports whether an Observation is a score Signpost recorded for
// this referral Task (taskRef) and its ServiceRequest (referral): one focus,
// the Task, and one basedOn, the referral.
func (s *Core) scoreOf(o *Resource, taskRef, referral string) bool {
	var v struct {
		Focus   []struct{ Reference string } `json:"focus"`
		BasedOn []struct{ Reference string } `json:"basedOn"`
	}
	if o == nil || o.Type != TypeObservation || json.Unmarshal(o.Body, &v) != nil || len(v.Focus) != 1 || len(v.BasedOn) != 1 {
		return false
	}
	return referral != "" && s.LocalRef(v.Focus[0].Reference) == taskRef && s.LocalRef(v.BasedOn[0].Reference) == referral
}
