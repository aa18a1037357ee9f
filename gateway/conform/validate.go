package conform

import (
	"github.com/signpost-health/signpost/gateway"

	"slices"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir"
)

// Required bindings. The samply models cannot be trusted with these: a
// missing status decodes as the first value of the enum, so every code is
// checked on the raw JSON before anything is decoded.
var (
	requestIntents    = gateway.NewValueSet("proposal", "plan", "directive", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	requestPriorities = gateway.NewValueSet("routine", "urgent", "asap", "stat")
	taskIntents       = gateway.NewValueSet("unknown", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	genders           = gateway.NewValueSet("male", "female", "other", "unknown")
)

// CheckCode checks one element bound to a required value set.
func CheckCode(p *gateway.Problems, o *fhir.Object, typ, name string, allowed gateway.ValueSet, required bool) string {
	expr := typ + "." + name
	raw, present := o.Member(name)
	if !present {
		if required {
			p.Add(fhir.IssueRequired, expr, "%s is required; expected one of: %s", name, allowed.List)
		}
		return ""
	}
	v, isString := o.String(name)
	switch {
	case !isString:
		p.Add(fhir.IssueStructure, expr, "%s must be a JSON string holding a code, found %s", name, gateway.JSONKind(raw))
	case !allowed.Has[v]:
		p.Add(fhir.IssueCodeInvalid, expr, "%s is not a code of its required value set; expected one of: %s", name, allowed.List)
	default:
		return v
	}
	return ""
}

// RequireObject checks that an element is present and is a JSON object.
func RequireObject(p *gateway.Problems, o *fhir.Object, typ, name, why string) {
	raw, present := o.Member(name)
	switch {
	case !present:
		p.Add(fhir.IssueRequired, typ+"."+name, "%s is required: %s", name, why)
	case gateway.JSONKind(raw) != "an object":
		p.Add(fhir.IssueStructure, typ+"."+name, "%s must be a JSON object, found %s", name, gateway.JSONKind(raw))
	}
}

// codeBinding is one coded element whose required value set Signpost
// checks (the R4 structure says only that it is a code).
type codeBinding struct {
	name     string
	allowed  gateway.ValueSet
	required bool
}

// codeBindings are the required bindings of each type Signpost accepts:
// the one list both the plans and the structure errors check.
var codeBindings = map[string][]codeBinding{
	gateway.TypeServiceRequest: {{"status", gateway.RequestStatuses, true}, {"intent", requestIntents, true}, {"priority", requestPriorities, false}},
	gateway.TypeTask:           {{"status", gateway.TaskStatuses, true}, {"intent", taskIntents, true}, {"priority", requestPriorities, false}},
	gateway.TypePatient:        {{"gender", genders, false}},
}

// CheckBindings checks a resource's required bindings and returns the
// codes it holds, by element name ("" where missing or wrong).
func CheckBindings(p *gateway.Problems, o *fhir.Object, typ string) map[string]string {
	codes := make(map[string]string, len(codeBindings[typ]))
	for _, b := range codeBindings[typ] {
		codes[b.name] = CheckCode(p, o, typ, b.name, b.allowed, b.required)
	}
	return codes
}

// withBindingProblems adds to a structure error what the type's required
// bindings find wrong, so a sender learns of every problem at once. Where
// both speak of one element, the binding's word is kept: it lists the codes
// expected.
func withBindingProblems(err *gateway.Error, o *fhir.Object, typ string) *gateway.Error {
	var p gateway.Problems
	CheckBindings(&p, o, typ)
	if typ == "Bundle" {
		// A transaction's entries, each under its place in the Bundle.
		entries, _ := o.Objects("entry")
		for i, e := range entries {
			res, ok := e.Object("resource")
			if !ok {
				continue
			}
			rt := res.ResourceType()
			var q gateway.Problems
			CheckBindings(&q, res, rt)
			at := "Bundle.entry[" + strconv.Itoa(i) + "].resource"
			for _, is := range q.Issues {
				for j, x := range is.Expression {
					is.Expression[j] = at + strings.TrimPrefix(x, rt)
				}
				p.Issues = append(p.Issues, is)
			}
		}
	}
	out := &gateway.Error{Kind: err.Kind, Err: err.Err, Issues: append([]fhir.Issue{}, err.Issues...)}
	for _, is := range p.Issues {
		replaced := false
		for i, have := range out.Issues {
			if slices.Equal(have.Expression, is.Expression) {
				out.Issues[i], replaced = is, true
			}
		}
		if !replaced {
			out.Issues = append(out.Issues, is)
		}
	}
	return out
}
