package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// Provider actions are the steps a VCS provider's staff take on a referral
// in the web inbox. Each one is a new version of the referral Task, stored
// through Update exactly as a PUT from the provider's own system would be:
// the same Gravity transitions, the same side-of-the-referral rules, the
// same If-Match check on the version the person was looking at, the same
// Provenance and the same notifications to the GP. The loop closes the same
// way whichever way a provider works.

// Action is one step a provider takes.
type Action string

// The provider actions, in the order the inbox offers them.
const (
	ActionAccept       Action = "accept"
	ActionDecline      Action = "decline"
	ActionContact      Action = "contact"
	ActionFirstSession Action = "first-session"
	ActionHold         Action = "hold"
	ActionResume       Action = "resume"
	ActionComplete     Action = "complete"
	ActionDidNotAttend Action = "did-not-attend"
)

// actionSteps is, per action, the status it moves the Task to and the
// business status it records. from lists the statuses it applies
// to; the transition table still decides, as for any update.
type actionStep struct {
	status   gateway.TaskStatus // "" leaves the status as it is
	business string
	display  string
	from     []gateway.TaskStatus
}

var actionSteps = map[Action]actionStep{
	ActionAccept:       {gateway.TaskAccepted, gateway.BusinessAccepted, "Accepted by the provider", []gateway.TaskStatus{gateway.TaskRequested}},
	ActionDecline:      {gateway.TaskRejected, gateway.BusinessDeclined, "Declined by the provider", []gateway.TaskStatus{gateway.TaskRequested}},
	ActionContact:      {"", gateway.BusinessContacted, "The provider contacted the person", []gateway.TaskStatus{gateway.TaskRequested, gateway.TaskAccepted, gateway.TaskInProgress, gateway.TaskOnHold}},
	ActionFirstSession: {gateway.TaskInProgress, gateway.BusinessFirstSession, "The person attended a first session", []gateway.TaskStatus{gateway.TaskAccepted}},
	ActionHold:         {gateway.TaskOnHold, gateway.BusinessOnHold, "On hold", []gateway.TaskStatus{gateway.TaskAccepted, gateway.TaskInProgress}},
	ActionResume:       {gateway.TaskInProgress, gateway.BusinessResumed, "Resumed", []gateway.TaskStatus{gateway.TaskOnHold}},
	ActionComplete:     {gateway.TaskCompleted, gateway.BusinessCompleted, "Completed", []gateway.TaskStatus{gateway.TaskAccepted, gateway.TaskInProgress, gateway.TaskOnHold}},
	ActionDidNotAttend: {gateway.TaskFailed, gateway.BusinessDidNotAttend, "The person did not attend", []gateway.TaskStatus{gateway.TaskAccepted, gateway.TaskInProgress, gateway.TaskOnHold}},
}

// ActionsFor lists the actions that apply to a Task in a status, in order.
func ActionsFor(status gateway.TaskStatus) []Action {
	var out []Action
	for _, a := range []Action{ActionAccept, ActionDecline, ActionContact, ActionFirstSession, ActionHold, ActionResume, ActionComplete, ActionDidNotAttend} {
		for _, s := range actionSteps[a].from {
			if s == status {
				out = append(out, a)
			}
		}
	}
	return out
}

// Irreversible reports whether an action closes the referral: declining
// it, completing it, recording that the person did not attend. Nothing
// reopens a closed referral and the referrer is told at once, so the pages
// ask the person to confirm these before anything changes.
func (a Action) Irreversible() bool {
	switch a {
	case ActionDecline, ActionComplete, ActionDidNotAttend:
		return true
	}
	return false
}

// Step is one action as a person asked for it.
type Step struct {
	Action Action
	// Version is the Task version the person was looking at: the change is
	// refused (412) if the Task has moved on since.
	Version int
	// Code is the decline reason or the outcome, from DeclineReasons or Outcomes.
	Code string
	// Text is the person's words: required to put a referral on hold, kept
	// with the reason or outcome otherwise.
	Text string
}

// MaxStepText bounds what a person writes with a step: it is kept in every
// later version of the Task and sent to the GP.
const MaxStepText = 1000

// ErrStepInvalid marks a step that is not well formed (an unknown action,
// reason or outcome, or missing words): the person is told what to fix.
var ErrStepInvalid = errors.New("invalid step")

// Progress takes a provider's step on a referral Task: it writes the new
// version with Update, under the caller's rules and If-Match on step.Version.
// audit, when given, is the request's audit record, committed with the new
// version (Outcome.Audited says it was), so no step is stored unaudited;
// a step refused before or by the commit is the caller's to record.
func (s *Service) Progress(ctx context.Context, caller gateway.Caller, taskID string, step Step, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	if err := CheckStep(step); err != nil {
		return nil, err
	}
	def := actionSteps[step.Action]
	cur, err := s.ReadVisible(ctx, caller, gateway.TypeTask, taskID)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, gateway.NotFound(gateway.TypeTask, taskID)
	}
	if err != nil {
		return nil, err
	}
	if cur.Version != step.Version {
		return nil, gateway.NewError(gateway.KindPreconditionFailed, fhir.IssueConflict, "", "the referral changed (version %d) since version %d was shown", cur.Version, step.Version)
	}
	view, err := gateway.ParseTask(cur.Body)
	if err != nil {
		return nil, err
	}
	// An action applies only where the inbox offers it: the status machine
	// alone would let a hand-made form record contact on a closed referral.
	if !slices.Contains(def.from, view.Status) {
		return nil, gateway.NewError(gateway.KindConflict, fhir.IssueBusinessRule, "Task.status", "%s does not apply to a referral that is %s", step.Action, view.Status)
	}
	members, err := stepMembers(step, def)
	if err != nil {
		return nil, err
	}
	if out, ok := members["output"].([]map[string]any); ok {
		// What the Task already records beside its outcome (the outcome
		// measures' responses and scores) stays: the step adds the outcome.
		members["output"] = keptOutputs(cur.Body, out)
	}
	members["lastModified"] = gateway.Instant(s.Now())
	// A statusReason left from the status the Task moves on from is dropped
	// by the update itself (conform.KeepTaskFieldsTrue), as over the API.
	body := fhir.ReplaceMembers(cur.Body, members)
	return s.tasks.Update(ctx, caller, gateway.TypeTask, taskID, body, `W/"`+strconv.Itoa(step.Version)+`"`, audit)
}

// CheckStep says what is wrong with a step as a person filled it in (an
// unknown action, reason or outcome, missing or too many words), before
// anything is read or changed: the pages check a step before asking the
// person to confirm it, so they never confirm one that would be refused.
func CheckStep(step Step) error {
	def, known := actionSteps[step.Action]
	if !known {
		return fmt.Errorf("%w: unknown action %q", ErrStepInvalid, step.Action)
	}
	if utf8.RuneCountInString(step.Text) > MaxStepText {
		return fmt.Errorf("%w: keep what you write to %d characters", ErrStepInvalid, MaxStepText)
	}
	_, err := stepMembers(step, def)
	return err
}

// stepMembers are the Task members a step sets.
func stepMembers(step Step, def actionStep) (map[string]any, error) {
	m := map[string]any{
		"businessStatus": map[string]any{"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": def.business, "display": def.display}}, "text": def.display},
	}
	if def.status != "" {
		m["status"] = def.status
	}
	switch step.Action {
	case ActionDecline:
		reason, ok := gateway.OptionNamed(gateway.DeclineReasons, step.Code)
		if !ok {
			return nil, fmt.Errorf("%w: choose a reason for declining", ErrStepInvalid)
		}
		m["statusReason"] = codedText(gateway.DeclineReasonSystem, reason, step.Text)
	case ActionHold:
		if step.Text == "" {
			return nil, fmt.Errorf("%w: say why the referral is on hold", ErrStepInvalid)
		}
		m["statusReason"] = map[string]string{"text": step.Text}
	case ActionDidNotAttend:
		m["statusReason"] = codedText(gateway.EndReasonSystem, gateway.CodeOption{Code: gateway.EndDidNotAttend, Display: "The person did not attend"}, step.Text)
	case ActionComplete:
		outcome, ok := gateway.OptionNamed(gateway.Outcomes, step.Code)
		if !ok {
			return nil, fmt.Errorf("%w: choose an outcome", ErrStepInvalid)
		}
		m["output"] = []map[string]any{{
			"type":                 map[string]any{"coding": []map[string]string{{"system": gateway.ResultingActivitySystem, "code": "resulting-activity", "display": "Resulting Activity"}}},
			"valueCodeableConcept": codedText(gateway.OutcomeSystem, outcome, step.Text),
		}}
	}
	return m, nil
}

// codedText is a CodeableConcept of one of Signpost's codes, its text the
// display and the person's words, if any.
func codedText(system string, o gateway.CodeOption, words string) map[string]any {
	text := o.Display
	if words != "" {
		text += ": " + words
	}
	return map[string]any{"coding": []map[string]string{{"system": system, "code": o.Code, "display": o.Display}}, "text": text}
}

// keptOutputs are a Task's outputs other than a resulting activity,
// followed by the step's own.
func keptOutputs(task []byte, step []map[string]any) []any {
	var cur []map[string]any
	_ = json.Unmarshal(fhir.Member(task, "output"), &cur)
	var out []any
	for _, o := range cur {
		if typ, _ := o["type"].(map[string]any); typ != nil {
			if cs, _ := typ["coding"].([]any); len(cs) > 0 {
				if c, _ := cs[0].(map[string]any); c != nil && c["code"] == "resulting-activity" {
					continue
				}
			}
		}
		out = append(out, o)
	}
	for _, o := range step {
		out = append(out, o)
	}
	return out
}
