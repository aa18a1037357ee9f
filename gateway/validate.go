package gateway

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/signpost-health/signpost/fhir"
)

// ValueSet is a required binding's codes, in the value set's own order so
// that messages list them as the specification does.
type ValueSet struct {
	Has  map[string]bool
	List string
}

func NewValueSet(codes ...string) ValueSet {
	return ValueSet{Has: set(codes...), List: strings.Join(codes, ", ")}
}

func JSONKind(raw []byte) string {
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
//
// It decodes with encoding/json/v2's implementation (go-json-experiment),
// which took a referral's view in about a quarter of encoding/json's time
// (23 → 6.4 µs, BenchmarkReadReferral): the view was a tenth of intake's
// CPU. v2 is the stricter of the two (names match exactly, as FHIR's do;
// the samply enums' UnmarshalJSON still decides their codes), and bodies
// reach here after the raw and structure checks, so it accepts what
// encoding/json accepted. Only a body it refuses is decoded again with
// encoding/json, whose errors the messages below are built from.
func DecodeView(body []byte, typ string, v any) error {
	if jsonv2.Unmarshal(body, v, jsontext.AllowDuplicateNames(true)) == nil {
		return nil
	}
	reflect.ValueOf(v).Elem().SetZero() // what v2 decoded before it stopped
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
