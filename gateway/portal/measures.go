package portal

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// Outcome measures in the inbox: staff record a person's answers at first
// contact and at completion on a plain form. The answers are sent as the
// QuestionnaireResponse a provider's own system would POST, through the
// same use case, so they are checked, scored, linked to the Task and sent
// to the GP exactly as over the API.

// MeasureRecorder is the measures use case, as the inbox records answers.
type MeasureRecorder interface {
	Record(ctx context.Context, caller gateway.Caller, body []byte, audit *gateway.AuditIntent) (*gateway.Outcome, error)
}

// UseMeasures has the inbox record outcome measures through m (none: the
// inbox offers none).
func (s *Service) UseMeasures(m MeasureRecorder) { s.measures = m }

// MeasureDue is one measure asked of a referral at one point: recorded
// already (with its scores), or waiting for the person's answers.
type MeasureDue struct {
	Questionnaire *mappings.Questionnaire
	Point         gateway.MeasurePoint
	Recorded      bool
	RecordedAt    time.Time
	Scores        []ScoreValue
	// Open is true when it can be recorded now: not yet recorded, and the
	// referral is at a point it applies to.
	Open bool
}

// ScoreValue is one score as recorded.
type ScoreValue struct {
	Display string
	Value   int
}

// The statuses at which each point can be recorded in the inbox: first
// contact once the referral is accepted; completion once the person has
// started (the closing session's answers may be typed in after closing).
var pointOpen = map[gateway.MeasurePoint][]gateway.TaskStatus{
	gateway.MeasureFirstContact: {gateway.TaskAccepted, gateway.TaskInProgress, gateway.TaskOnHold, gateway.TaskCompleted},
	gateway.MeasureCompletion:   {gateway.TaskInProgress, gateway.TaskOnHold, gateway.TaskCompleted},
}

// MeasuresOf lists the measures asked of a referral (its Task), point by
// point, with those recorded and those that can be now.
func (s *Service) MeasuresOf(ctx context.Context, caller gateway.Caller, taskID string) ([]MeasureDue, error) {
	if s.measures == nil || gateway.CheckID(taskID) != nil {
		return nil, nil
	}
	task, err := s.ReadVisible(ctx, caller, gateway.TypeTask, taskID)
	if err != nil {
		return nil, err
	}
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return nil, err
	}
	srID := strings.TrimPrefix(view.Focus, gateway.TypeServiceRequest+"/")
	category := gateway.TaskCategory(task.Body)
	provider := strings.TrimPrefix(view.Owner, gateway.TypeOrganization+"/")
	var out []MeasureDue
	for _, point := range gateway.MeasurePoints {
		for _, id := range s.MeasuresAsked(category, provider, point) {
			q, ok := s.Measures.ByID(id)
			if !ok {
				continue
			}
			due := MeasureDue{Questionnaire: q, Point: point}
			resp, err := s.Store.Read(ctx, gateway.TypeQuestionnaireResponse, s.MeasureResponseIDOf(srID, id, point))
			switch {
			case err == nil:
				due.Recorded, due.RecordedAt, due.Scores = true, resp.LastUpdated, scoresOf(q, resp.Body)
			case errors.Is(err, gateway.ErrNotFound):
				due.Open = slices.Contains(pointOpen[point], view.Status)
			default:
				return nil, err
			}
			out = append(out, due)
		}
	}
	return out, nil
}

// scoresOf reads a recorded response's scores, as the Observations hold them.
func scoresOf(q *mappings.Questionnaire, body []byte) []ScoreValue {
	values := answerValues(q, body)
	var out []ScoreValue
	for _, sc := range q.Scores {
		total := 0
		for _, link := range sc.Items {
			total += values[link]
		}
		out = append(out, ScoreValue{Display: sc.Code.Display, Value: total})
	}
	return out
}

func answerValues(q *mappings.Questionnaire, body []byte) map[string]int {
	var r struct {
		Item []struct {
			LinkID string `json:"linkId"`
			Answer []struct {
				ValueInteger *int `json:"valueInteger"`
				ValueCoding  *struct {
					System, Code string
				} `json:"valueCoding"`
			} `json:"answer"`
		} `json:"item"`
	}
	_ = json.Unmarshal(body, &r)
	out := map[string]int{}
	for _, it := range r.Item {
		item, ok := q.Item(it.LinkID)
		if !ok || len(it.Answer) == 0 {
			continue
		}
		switch a := it.Answer[0]; {
		case a.ValueInteger != nil:
			out[it.LinkID] = *a.ValueInteger
		case a.ValueCoding != nil:
			if o, ok := item.Option(a.ValueCoding.System, a.ValueCoding.Code); ok {
				out[it.LinkID] = o.Value
			}
		}
	}
	return out
}

// MeasureProblems is a form filled in wrongly: what to fix, by item
// linkId. Nothing was recorded.
type MeasureProblems map[string]string

func (p MeasureProblems) Error() string { return "some answers need attention" }

// ErrMeasureNotOpen is a measure that is not asked of the referral at that
// point, is recorded already, or cannot be recorded in its status.
var ErrMeasureNotOpen = errors.New("that measure cannot be recorded for this referral now")

// OpenMeasure returns the measure a form is for, if it can be recorded now.
func (s *Service) OpenMeasure(ctx context.Context, caller gateway.Caller, taskID, questionnaire string, point gateway.MeasurePoint) (*MeasureDue, error) {
	due, err := s.MeasuresOf(ctx, caller, taskID)
	if err != nil {
		return nil, err
	}
	for i := range due {
		if due[i].Questionnaire.ID == questionnaire && due[i].Point == point && due[i].Open {
			return &due[i], nil
		}
	}
	return nil, ErrMeasureNotOpen
}

// RecordMeasure records a person's answers (form values by item linkId)
// for a referral, as the QuestionnaireResponse the API would take. Answers
// that are missing or not among those offered are MeasureProblems, told
// in words; nothing is recorded then.
// audit, when given, is the request's audit record, committed with the
// measure.
func (s *Service) RecordMeasure(ctx context.Context, caller gateway.Caller, taskID, questionnaire string, point gateway.MeasurePoint, answers map[string]string, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	due, err := s.OpenMeasure(ctx, caller, taskID, questionnaire, point)
	if err != nil {
		return nil, err
	}
	q := due.Questionnaire
	problems := MeasureProblems{}
	var items []map[string]any
	for _, it := range q.Items {
		if it.Type == mappings.ItemDisplay {
			continue
		}
		v := strings.TrimSpace(answers[it.LinkID])
		if v == "" {
			if it.Required {
				problems[it.LinkID] = "Answer this question."
			}
			continue
		}
		var answer map[string]any
		switch it.Type {
		case mappings.ItemInteger:
			n, err := strconv.Atoi(v)
			if err != nil || n < it.Min || n > it.Max {
				problems[it.LinkID] = "Choose a number from " + strconv.Itoa(it.Min) + " to " + strconv.Itoa(it.Max) + "."
				continue
			}
			answer = map[string]any{"valueInteger": n}
		case mappings.ItemChoice:
			var opt *mappings.Option
			for k := range it.Options {
				if it.Options[k].Code == v {
					opt = &it.Options[k]
				}
			}
			if opt == nil {
				problems[it.LinkID] = "Choose one of the answers."
				continue
			}
			answer = map[string]any{"valueCoding": map[string]string{"system": opt.System, "code": opt.Code, "display": opt.Display}}
		}
		items = append(items, map[string]any{"linkId": it.LinkID, "answer": []any{answer}})
	}
	if len(problems) > 0 {
		return nil, problems
	}
	task, err := s.ReadVisible(ctx, caller, gateway.TypeTask, taskID)
	if err != nil {
		return nil, err
	}
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]any{
		"resourceType":  gateway.TypeQuestionnaireResponse,
		"questionnaire": q.URL + "|" + q.Version,
		"status":        "completed",
		"extension":     []map[string]string{{"url": gateway.MeasurePointExtension, "valueCode": string(point)}},
		"basedOn":       []map[string]string{{"reference": view.Focus}},
		"authored":      gateway.Instant(s.Now()),
		"item":          items,
	})
	if err != nil {
		return nil, err
	}
	return s.measures.Record(ctx, caller, body, audit)
}
