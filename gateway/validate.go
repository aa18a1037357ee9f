package gateway

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir"
)

// Required bindings. The samply models cannot be trusted with these: a
// missing status decodes as the first value of the enum, so every code is
// checked on the raw JSON before anything is decoded.
var (
	requestStatuses   = newValueSet("draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown")
	requestIntents    = newValueSet("proposal", "plan", "directive", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	requestPriorities = newValueSet("routine", "urgent", "asap", "stat")
	taskIntents       = newValueSet("unknown", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	genders           = newValueSet("male", "female", "other", "unknown")
)

// CheckCode checks one element bound to a required value set.
func CheckCode(p *Problems, o *fhir.Object, typ, name string, allowed valueSet, required bool) string {
	expr := typ + "." + name
	raw, present := o.Member(name)
	if !present {
		if required {
			p.Add(fhir.IssueRequired, expr, "%s is required; expected one of: %s", name, allowed.list)
		}
		return ""
	}
	v, isString := o.String(name)
	switch {
	case !isString:
		p.Add(fhir.IssueStructure, expr, "%s must be a JSON string holding a code, found %s", name, jsonKind(raw))
	case !allowed.has[v]:
		p.Add(fhir.IssueCodeInvalid, expr, "%s is not a code of its required value set; expected one of: %s", name, allowed.list)
	default:
		return v
	}
	return ""
}

// RequireObject checks that an element is present and is a JSON object.
func RequireObject(p *Problems, o *fhir.Object, typ, name, why string) {
	raw, present := o.Member(name)
	switch {
	case !present:
		p.Add(fhir.IssueRequired, typ+"."+name, "%s is required: %s", name, why)
	case jsonKind(raw) != "an object":
		p.Add(fhir.IssueStructure, typ+"."+name, "%s must be a JSON object, found %s", name, jsonKind(raw))
	}
}

// valueSet is a required binding's codes, in the value set's own order so
// that messages list them as the specification does.
type valueSet struct {
	has  map[string]bool
	list string
}

func newValueSet(codes ...string) valueSet {
	return valueSet{has: set(codes...), list: strings.Join(codes, ", ")}
}

func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// DecodeView decodes stored or validated bytes into a samply model, the
// read-only typed view. Decoding errors name the Go field path, never a
// value from the body.
func DecodeView(body []byte, typ string, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		msg := "an element has the wrong JSON type for FHIR R4"
		if errors.As(err, &te) {
			field := te.Field
			if field == "" { // the member itself, not one inside it
				field = typ[strings.LastIndexByte(typ, '.')+1:]
			}
			msg = "element " + strconv.Quote(field) + " must be " + goKindToJSON(te.Type.Kind().String()) + ", found a JSON " + te.Value
		} else if strings.Contains(err.Error(), "unknown ") && strings.Contains(err.Error(), " code ") {
			// A nested required binding the samply enums refused (for example
			// Identifier.use). The message would quote the value; drop it.
			msg = "an element holds a code outside its required value set (" + enumName(err.Error()) + ")"
		}
		return &Error{Kind: KindInvalid, Err: err, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueStructure, Expression: []string{typ}, Diagnostics: msg}}}
	}
	return nil
}

func goKindToJSON(kind string) string {
	switch kind {
	case "string":
		return "a JSON string"
	case "bool":
		return "a JSON boolean"
	case "slice", "array":
		return "a JSON array"
	case "struct", "map", "ptr":
		return "a JSON object"
	default:
		return "a JSON number"
	}
}

// enumName extracts the enum type name from a samply error such as
// "unknown IdentifierUse code `x`", leaving the value out.
func enumName(msg string) string {
	i := strings.Index(msg, "unknown ")
	rest := msg[i+len("unknown "):]
	if j := strings.Index(rest, " code"); j > 0 {
		return rest[:j]
	}
	return "unknown value set"
}

// codeBinding is one coded element whose required value set Signpost
// checks (the R4 structure says only that it is a code).
type codeBinding struct {
	name     string
	allowed  valueSet
	required bool
}

// codeBindings are the required bindings of each type Signpost accepts:
// the one list both the plans and the structure errors check.
var codeBindings = map[string][]codeBinding{
	TypeServiceRequest: {{"status", requestStatuses, true}, {"intent", requestIntents, true}, {"priority", requestPriorities, false}},
	TypeTask:           {{"status", taskStatuses, true}, {"intent", taskIntents, true}, {"priority", requestPriorities, false}},
	TypePatient:        {{"gender", genders, false}},
}

// CheckBindings checks a resource's required bindings and returns the
// codes it holds, by element name ("" where missing or wrong).
func CheckBindings(p *Problems, o *fhir.Object, typ string) map[string]string {
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
func withBindingProblems(err *Error, o *fhir.Object, typ string) *Error {
	var p Problems
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
			var q Problems
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
	out := &Error{Kind: err.Kind, Err: err.Err, Issues: append([]fhir.Issue{}, err.Issues...)}
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
