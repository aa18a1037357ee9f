package gateway

import (
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/fhir"
)

// ReferralView is what Signpost reads from a ServiceRequest: the elements
// that decide routing, idempotency and search. It is decoded once, after
// the raw checks (which validated status, intent and priority, so they are
// plain strings here), from samply types for the nested elements. Other
// elements stay in the stored bytes and are never decoded.
type ReferralView struct {
	Identifier []models.Identifier     `json:"identifier"`
	Status     string                  `json:"status"`
	Intent     string                  `json:"intent"`
	Priority   string                  `json:"priority"`
	Code       *models.CodeableConcept `json:"code"`
	Subject    models.Reference        `json:"subject"`
	Requester  *models.Reference       `json:"requester"`
	Performer  []models.Reference      `json:"performer"`
}

// ReadReferral decodes the referral view from the members of a parsed
// resource, one member at a time: the rest of the body (narrative, notes,
// extensions) is never scanned again.
func ReadReferral(o *fhir.Object) (*ReferralView, error) {
	v := &ReferralView{}
	v.Status, _ = o.String("status")
	v.Intent, _ = o.String("intent")
	v.Priority, _ = o.String("priority")
	// In a fixed order (not a map's), so that a body with two wrong members
	// is always answered about the same one.
	for _, m := range [...]struct {
		name string
		into any
	}{
		{"identifier", &v.Identifier}, {"code", &v.Code}, {"subject", &v.Subject},
		{"requester", &v.Requester}, {"performer", &v.Performer},
	} {
		if raw, ok := o.Member(m.name); ok {
			if err := DecodeView(raw, TypeServiceRequest+"."+m.name, m.into); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// TaskView is what Signpost reads from a referral Task: the parts that
// decide delivery, progress and what the GP is told. It is read from the
// stored bytes through the samply model, after the raw checks, so the
// enum traps of the model (a missing status reads as draft) cannot reach it.
type TaskView struct {
	ID           string
	Status       TaskStatus
	StatusReason string // statusReason.text
	// StatusReasonCode is statusReason's first code (a decline or end reason).
	StatusReasonCode string
	BusinessStatus   string // businessStatus.text, or its first code
	// BusinessStatusCode is businessStatus's first code.
	BusinessStatusCode string
	Focus              string // focus.reference
	For                string // for.reference
	Owner              string // owner.reference
	OwnerID            *Identifier
	Outputs            []TaskOutput
	Priority           string // the priority code
	AuthoredOn         string
}

// TaskOutput is one Task.output: what the provider did.
type TaskOutput struct {
	Type      Coding // output.type's first coding
	Reference string // valueReference.reference
	Concept   []Coding
	Text      string // valueCodeableConcept.text or valueString
}

// Coding is a code with its system.
type Coding struct {
	System, Code, Display string
}

// ParseTask reads a Task's view from JSON that passed the raw checks.
func ParseTask(body []byte) (*TaskView, error) {
	// Only the members the view reads: a whole models.Task decodes input
	// too, whose samply type holds every value[x] by value (a third more
	// time and half again the allocations for a referral Task).
	var t struct {
		Id             *string                 `json:"id"`
		Status         models.TaskStatus       `json:"status"`
		StatusReason   *models.CodeableConcept `json:"statusReason"`
		BusinessStatus *models.CodeableConcept `json:"businessStatus"`
		Focus          *models.Reference       `json:"focus"`
		For            *models.Reference       `json:"for"`
		Owner          *models.Reference       `json:"owner"`
		Output         []models.TaskOutput     `json:"output"`
		Priority       *string                 `json:"priority"`
		AuthoredOn     *string                 `json:"authoredOn"`
	}
	if err := DecodeView(body, TypeTask, &t); err != nil {
		return nil, err
	}
	v := &TaskView{Status: TaskStatus(t.Status.Code()), Focus: RefOf(t.Focus), For: RefOf(t.For), Owner: RefOf(t.Owner)}
	if t.Id != nil {
		v.ID = *t.Id
	}
	if t.Priority != nil {
		v.Priority = *t.Priority
	}
	if t.AuthoredOn != nil {
		v.AuthoredOn = *t.AuthoredOn
	}
	if t.StatusReason != nil && t.StatusReason.Text != nil {
		v.StatusReason = *t.StatusReason.Text
	}
	if cs := codings(t.StatusReason); len(cs) > 0 {
		v.StatusReasonCode = cs[0].Code
	}
	if cs := codings(t.BusinessStatus); len(cs) > 0 {
		v.BusinessStatusCode = cs[0].Code
	}
	if bs := t.BusinessStatus; bs != nil {
		if bs.Text != nil {
			v.BusinessStatus = *bs.Text
		} else if cs := codings(bs); len(cs) > 0 {
			v.BusinessStatus = cs[0].Code
		}
	}
	if t.Owner != nil && t.Owner.Identifier != nil && t.Owner.Identifier.System != nil && t.Owner.Identifier.Value != nil {
		v.OwnerID = &Identifier{*t.Owner.Identifier.System, *t.Owner.Identifier.Value}
	}
	for _, o := range t.Output {
		// The samply TaskOutput holds every value[x] by value, so an absent
		// one is its zero value, not nil.
		out := TaskOutput{Reference: RefOf(&o.ValueReference), Concept: codings(&o.ValueCodeableConcept), Text: o.ValueString}
		if cs := codings(&o.Type); len(cs) > 0 {
			out.Type = cs[0]
		}
		if o.ValueCodeableConcept.Text != nil {
			out.Text = *o.ValueCodeableConcept.Text
		}
		v.Outputs = append(v.Outputs, out)
	}
	return v, nil
}

func RefOf(r *models.Reference) string {
	if r == nil || r.Reference == nil {
		return ""
	}
	return *r.Reference
}

func codings(cc *models.CodeableConcept) []Coding {
	if cc == nil {
		return nil
	}
	out := make([]Coding, 0, len(cc.Coding))
	for _, c := range cc.Coding {
		var k Coding
		if c.System != nil {
			k.System = *c.System
		}
		if c.Code != nil {
			k.Code = *c.Code
		}
		if c.Display != nil {
			k.Display = *c.Display
		}
		out = append(out, k)
	}
	return out
}
