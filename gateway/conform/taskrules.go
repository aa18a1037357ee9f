package conform

import (
	"time"

	"github.com/signpost-health/signpost/gateway"

	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/signpost-health/signpost/fhir"
)

// Who may change which element of a referral Task. The status alone is not
// enough: with the status unchanged, a GP system could otherwise write the
// provider's business status or outcome (and move the outcomes view), and a
// provider could rewrite when and how urgently the referral was made. Each
// top-level element of an R4 Task belongs to one side, whatever the status
// does; the table below is the one place that says which.

// taskSide is who may change a Task element in an update.
type taskSide int

const (
	// sideSignpost elements are set by Signpost or fixed when the referral
	// was made: they decide who sees the Task and what it tracks, and no
	// update changes them (the server-managed id and meta are replaced on
	// every write, whatever is sent).
	sideSignpost taskSide = iota
	// sideRequester elements are the referrer's (the GP system's).
	sideRequester
	// sidePerformer elements are the provider's. Once the Task is terminal
	// they are its outcome, and are not rewritten by anyone.
	sidePerformer
	// sideEither elements may be changed by either side.
	sideEither
	// sideWithStatus elements explain a status (statusReason): they change
	// only with the status, by the side allowed to make that move.
	sideWithStatus
)

// taskElement is one top-level element of an R4 Task.
type taskElement struct {
	side taskSide
	// primitive elements may carry their extensions in "_name" (R4 JSON).
	primitive bool
}

// taskElements lists every top-level element of the R4 Task resource
// (hl7.org/fhir/R4/task.html) with its side. Which members are Task
// elements at all is the structure check's to say (fhir/structure), before
// this table is read.
var taskElements = map[string]taskElement{
	"resourceType":          {sideSignpost, false},
	"id":                    {sideSignpost, false},
	"meta":                  {sideSignpost, false},
	"implicitRules":         {sideSignpost, true},
	"language":              {sideEither, true},
	"text":                  {sideEither, false},
	"contained":             {sideSignpost, false}, // what for, requester and the rest may point into
	"extension":             {sideEither, false},
	"modifierExtension":     {sideSignpost, false}, // would change what the fixed elements mean
	"identifier":            {sideSignpost, false},
	"instantiatesCanonical": {sideSignpost, true},
	"instantiatesUri":       {sideSignpost, true},
	"basedOn":               {sideSignpost, false},
	"groupIdentifier":       {sideSignpost, false},
	"partOf":                {sideSignpost, false},
	"status":                {sideEither, true}, // who sets which status: mayMoveTask
	"statusReason":          {sideWithStatus, false},
	"businessStatus":        {sidePerformer, false},
	"intent":                {sideSignpost, true},
	"priority":              {sideRequester, true},
	"code":                  {sideSignpost, false},
	"description":           {sideRequester, true},
	"focus":                 {sideSignpost, false},
	"for":                   {sideSignpost, false},
	"encounter":             {sideSignpost, false},
	"executionPeriod":       {sidePerformer, false},
	"authoredOn":            {sideSignpost, true},
	"lastModified":          {sidePerformer, true},
	"requester":             {sideSignpost, false},
	"performerType":         {sideRequester, false},
	"owner":                 {sideSignpost, false},
	"location":              {sideRequester, false},
	"reasonCode":            {sideRequester, false},
	"reasonReference":       {sideRequester, false},
	"insurance":             {sideRequester, false},
	"note":                  {sideEither, false},
	"relevantHistory":       {sideSignpost, false}, // Signpost keeps the history as Provenance
	"restriction":           {sideRequester, false},
	"input":                 {sideSignpost, false}, // the social prescribing category Signpost routed on
	"output":                {sidePerformer, false},
}

// elementOf is the element a top-level member belongs to: itself, or for
// "_name" the primitive element whose extensions it holds.
func elementOf(member string) (string, taskElement, bool) {
	if el, ok := taskElements[member]; ok {
		return member, el, true
	}
	if name, ok := cutUnderscore(member); ok {
		if el, ok := taskElements[name]; ok && el.primitive {
			return name, el, true
		}
	}
	return "", taskElement{}, false
}

func cutUnderscore(s string) (string, bool) {
	if len(s) > 1 && s[0] == '_' {
		return s[1:], true
	}
	return "", false
}

// ChangedTaskElements names the elements (in table order of the names sent
// or held) whose value differs between the stored Task and the new one,
// compared as canonical JSON, so that members a typed model would drop
// (extensions, unknown members of a datatype) count too. An element's
// "_name" extensions count as the element. id and meta are not compared:
// Signpost replaces them on every write.
func ChangedTaskElements(old, next *fhir.Object) []string {
	var changed []string
	seen := map[string]bool{"id": true, "meta": true, "resourceType": true}
	for _, o := range []*fhir.Object{next, old} {
		for _, member := range o.Names() {
			name, _, ok := elementOf(member)
			if !ok || seen[name] {
				continue
			}
			seen[name] = true
			if !sameMember(old, next, name) || !sameMember(old, next, "_"+name) {
				changed = append(changed, name)
			}
		}
	}
	slices.Sort(changed)
	return changed
}

// sameMember reports whether two objects hold the same value for a member
// (or both lack it), compared as canonical JSON.
func sameMember(a, b *fhir.Object, name string) bool {
	x, okA := a.Member(name)
	y, okB := b.Member(name)
	if okA != okB {
		return false
	}
	return !okA || bytes.Equal(canonicalJSON(x), canonicalJSON(y))
}

// canonicalJSON re-encodes a JSON value with object members sorted and
// insignificant space removed. Numbers keep their text (FHIR decimals keep
// their precision), and the value has passed the raw checks (no duplicate
// members, valid UTF-8), so equal canonical forms mean equal values.
func canonicalJSON(raw []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// CheckTaskChange applies the side table to an update of a Task from
// status from to status to, naming every element the caller may not
// change at once. An element of the other side is 403; one nobody changes
// (Signpost's, or the outcome of a terminal Task) is 422. Who sets which
// status is mayMoveTask's, checked before.
func CheckTaskChange(c gateway.Caller, from, to gateway.TaskStatus, changed []string) error {
	var forbidden, fixed []fhir.Issue
	issue := func(list *[]fhir.Issue, code fhir.IssueType, name, format string, args ...any) {
		var p gateway.Problems
		p.Add(code, "Task."+name, format, args...)
		*list = append(*list, p.Issues...)
	}
	for _, name := range changed {
		switch taskElements[name].side {
		case sideSignpost:
			issue(&fixed, fhir.IssueBusinessRule, name, "%s cannot be changed by an update: Signpost sets it, or it was fixed when the referral was made", name)
		case sideRequester:
			if c.Kind == gateway.CallerProvider {
				issue(&forbidden, fhir.IssueForbidden, name, "%s is the referrer's to change, not the provider's", name)
			}
		case sidePerformer:
			switch {
			case c.Kind == gateway.CallerGP:
				issue(&forbidden, fhir.IssueForbidden, name, "%s is the provider's to change, not the referrer's", name)
			case from.Terminal():
				issue(&fixed, fhir.IssueBusinessRule, name, "%s cannot be changed once the referral Task is %s: it is the referral's outcome", name, from)
			}
		case sideWithStatus:
			if from == to {
				issue(&fixed, fhir.IssueBusinessRule, name, "%s changes only with the status it explains, by the side making that change", name)
			}
		}
	}
	switch {
	case len(forbidden) > 0:
		return &gateway.Error{Kind: gateway.KindForbidden, Issues: append(forbidden, fixed...)}
	case len(fixed) > 0:
		return &gateway.Error{Kind: gateway.KindUnprocessable, Issues: fixed}
	}
	return nil
}

// KeepTaskFieldsTrue keeps the fields that describe a Task's state true
// when its status changes: lastModified becomes the change's time, and a
// businessStatus the change left as it was (the last one, "delivered to
// ...") is replaced by the one of the new status, and a statusReason it
// left as it was (the reason for the old status) is dropped. What the
// caller set itself is kept. step is the change's journey step (read from
// its body); the step of the body returned, with what was replaced, is
// returned beside it.
func KeepTaskFieldsTrue(body []byte, from, to gateway.TaskStatus, changed []string, now time.Time, step gateway.TaskStep) ([]byte, gateway.TaskStep) {
	if from == to {
		return body, step
	}
	members := map[string]any{}
	if !slices.Contains(changed, "lastModified") {
		members["lastModified"] = gateway.Instant(now)
	}
	if !slices.Contains(changed, "businessStatus") {
		if b, ok := gateway.StatusBusiness[to]; ok {
			members["businessStatus"] = map[string]any{"coding": []map[string]string{{"system": gateway.BusinessStatusSystem, "code": b.Code, "display": b.Display}}, "text": b.Display}
			step.Business = b.Code
		}
	}
	if !slices.Contains(changed, "statusReason") {
		// The reason was the old status's: this one has none given.
		body = fhir.WithoutMember(body, "statusReason")
		step.Reason = ""
	}
	return fhir.ReplaceMembers(body, members), step
}

// KeepMeasureOutputs keeps the outcome measures a Task names: an update
// whose output leaves out a response or score Signpost linked to the Task
// (a provider replacing output with its outcome) has them put back after
// its own. They are Signpost's record of what was measured, which the GP
// side and the outcomes view read from the Task; a measure is corrected
// through its QuestionnaireResponse, never by unlinking it.
func KeepMeasureOutputs(cur, next []byte) []byte {
	var curOut, nextOut []json.RawMessage
	_ = json.Unmarshal(fhir.Member(cur, "output"), &curOut)
	_ = json.Unmarshal(fhir.Member(next, "output"), &nextOut)
	held := map[string]bool{}
	for _, o := range nextOut {
		if ref := measureOutput(o); ref != "" {
			held[ref] = true
		}
	}
	missing := false
	for _, o := range curOut {
		if ref := measureOutput(o); ref != "" && !held[ref] {
			nextOut = append(nextOut, o)
			missing = true
		}
	}
	if !missing {
		return next
	}
	return fhir.ReplaceMembers(next, map[string]any{"output": nextOut})
}

// CheckMeasureOutputs refuses a Task.output that links an outcome measure
// (a response or a score) unless the stored Task (cur, nil for a new Task)
// already names it so: Signpost alone links them, when it records a
// measure for this referral. An output a client added could name another
// referral's score, which would then travel to this referral's GP.
func CheckMeasureOutputs(cur, next []byte) error {
	var curOut, nextOut []json.RawMessage
	if cur != nil {
		_ = json.Unmarshal(fhir.Member(cur, "output"), &curOut)
	}
	_ = json.Unmarshal(fhir.Member(next, "output"), &nextOut)
	linked := map[string]bool{}
	for _, o := range curOut {
		if ref, code, ok := measureOutputLink(o); ok {
			linked[code+" "+ref] = true
		}
	}
	var p gateway.Problems
	for i, o := range nextOut {
		if ref, code, ok := measureOutputLink(o); ok && !linked[code+" "+ref] {
			p.Add(fhir.IssueBusinessRule, "Task.output["+strconv.Itoa(i)+"]",
				"an output typed %s links an outcome measure; Signpost adds it when the measure is recorded (POST QuestionnaireResponse), and an update may keep but not add one", code)
		}
	}
	return p.Err(gateway.KindUnprocessable)
}

// measureOutput is the reference of a Task.output that links an outcome
// measure (a response or a score), or "".
func measureOutput(raw json.RawMessage) string {
	ref, _, _ := measureOutputLink(raw)
	return ref
}

// measureOutputLink reads a Task.output that links an outcome measure: its
// reference and which link it is (the output code), and whether it is one.
// Any of the type's codings counts, not just the first: a reader that
// looks at another coding must not find a link this check missed.
func measureOutputLink(raw json.RawMessage) (ref, code string, ok bool) {
	var o struct {
		Type struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"type"`
		ValueReference struct {
			Reference string `json:"reference"`
		} `json:"valueReference"`
	}
	if json.Unmarshal(raw, &o) != nil {
		return "", "", false
	}
	for _, c := range o.Type.Coding {
		if (c.System == gateway.SDCTaskCodeSystem && c.Code == gateway.QuestionnaireResponseOutput) ||
			(c.System == gateway.MeasureOutputSystem && c.Code == gateway.MeasureScoreOutput) {
			return o.ValueReference.Reference, c.Code, true
		}
	}
	return "", "", false
}
