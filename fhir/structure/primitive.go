package structure

import (
	"math"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/signpost-health/signpost/fhir"
)

// primitive checks a primitive value: its JSON type, then its format. The
// formats are R4's own regular expressions; dates are then checked against
// the calendar (the expressions allow 31 February), and integers against
// their 32-bit range.
func (v *validator) primitive(n *node, p *primitive, at *loc) {
	var kind jsonKind
	switch n.kind {
	case '"':
		kind = jsonString
	case 't', 'f':
		kind = jsonBoolean
	case '0':
		kind = jsonNumber
	case 'n':
		v.add(fhir.IssueStructure, at, "null is not allowed: leave the element out")
		return
	default:
		v.add(fhir.IssueStructure, at, "expected %s (%s), found a JSON %s", p.json, p.name, kindName(n.kind))
		return
	}
	if kind != p.json {
		v.add(fhir.IssueStructure, at, "expected %s (%s), found %s", p.json, p.name, kindName(n.kind))
		return
	}
	if kind == jsonBoolean {
		return
	}
	if kind == jsonString && n.text == "" {
		v.add(fhir.IssueValue, at, "an empty string is not allowed: leave the element out")
		return
	}
	if p.name == "xhtml" {
		v.xhtml(n.text, at)
		return
	}
	if !p.matches(n.text) {
		v.add(fhir.IssueValue, at, "not a valid %s: %s", p.name, formatHint(p.name))
		return
	}
	switch p.name {
	case "date", "dateTime", "instant":
		if !realDate(n.text) {
			v.add(fhir.IssueValue, at, "not a valid %s: the day does not exist in that month", p.name)
		}
	case "integer", "positiveInt", "unsignedInt":
		i, err := strconv.ParseInt(n.text, 10, 64)
		if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
			v.add(fhir.IssueValue, at, "not a valid %s: outside the 32-bit range", p.name)
		}
	}
}

// formatHint says what a primitive looks like, for a message that cannot
// repeat the value.
func formatHint(name string) string {
	switch name {
	case "date":
		return "expected YYYY, YYYY-MM or YYYY-MM-DD"
	case "dateTime":
		return "expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a timezone (Z or +hh:mm)"
	case "instant":
		return "expected YYYY-MM-DDThh:mm:ss(.sss) with a timezone (Z or +hh:mm)"
	case "time":
		return "expected hh:mm:ss"
	case "id":
		return "expected 1 to 64 letters, digits, '-' or '.'"
	case "code":
		return "expected no leading, trailing or repeated whitespace"
	case "uri", "url", "canonical":
		return "expected no whitespace"
	case "decimal":
		return "expected a JSON number"
	case "integer":
		return "expected a whole number"
	case "positiveInt":
		return "expected a whole number of at least 1"
	case "unsignedInt":
		return "expected a whole number of at least 0"
	case "oid":
		return "expected urn:oid: and dot-separated numbers"
	case "uuid":
		return "expected urn:uuid: and a lower-case UUID"
	case "base64Binary":
		return "expected base64"
	}
	return "see the R4 definition of " + name
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "a JSON boolean"
	case '0':
		return "a JSON number"
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case 'n':
		return "null"
	}
	return "another JSON value"
}

// realDate checks that a date's day exists in its month; the format was
// checked already, so the parts are where the format puts them.
func realDate(s string) bool {
	if len(s) < 10 {
		return true // a year, or a year and month
	}
	y, _ := strconv.Atoi(s[0:4])
	m, _ := strconv.Atoi(s[5:7])
	d, _ := strconv.Atoi(s[8:10])
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m-1]
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days = 29
	}
	return d <= days
}
