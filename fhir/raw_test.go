package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rawSecret appears as a value in the error-case bodies; no message may echo
// it, since values can be patient data.
const rawSecret = "9434765919"

func rawReadTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "raw", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// rawNest returns a resource whose nesting depth is exactly depth: the
// resource object is level 1 and each further object or array adds one.
func rawNest(depth int, objects bool) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Basic","x":`)
	inner := depth - 1 // levels below the resource object
	for i := 0; i < inner-1; i++ {
		if objects {
			b.WriteString(`{"a":`)
		} else {
			b.WriteString(`[`)
		}
	}
	if inner >= 1 {
		b.WriteString(`{"value":"` + rawSecret + `"}`)
	} else {
		b.WriteString(`1`)
	}
	for i := 0; i < inner-1; i++ {
		if objects {
			b.WriteString(`}`)
		} else {
			b.WriteString(`]`)
		}
	}
	b.WriteString(`}`)
	return []byte(b.String())
}

func rawManyMembers(n int, extra string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Basic"`)
	for i := 0; i < n; i++ {
		b.WriteString(`,"m` + strconv.Itoa(i) + `":"` + rawSecret + `"`)
	}
	b.WriteString(extra)
	b.WriteString(`}`)
	return b.String()
}

func TestParseResourceErrors(t *testing.T) {
	t.Parallel()
	const s = `"` + rawSecret + `"`
	longKey := strings.Repeat("k", 200)
	tests := []struct {
		name   string
		body   string
		opt    ParseOptions
		kind   RawErrorKind
		expr   string
		offset int64  // -1: not checked
		msg    string // substring of Message; "" not checked
	}{
		// Duplicate keys, at every depth and inside arrays.
		{"dup top", `{"resourceType":"ServiceRequest","status":` + s + `,"status":` + s + `}`, ParseOptions{}, DuplicateKey, "ServiceRequest.status", 55,
			`duplicate key "status" (each element may appear once)`},
		{"dup resourceType", `{"resourceType":"ServiceRequest","resourceType":"Patient"}`, ParseOptions{}, DuplicateKey, "ServiceRequest.resourceType", 33, `duplicate key "resourceType"`},
		{"dup in 2nd identifier", `{"resourceType":"Patient","identifier":[{"system":"a","value":` + s + `},{"system":"a","system":"b","value":` + s + `}]}`, ParseOptions{}, DuplicateKey, "Patient.identifier[1].system", -1, `"system"`},
		{"dup before resourceType", `{"identifier":[{"system":"a","system":"b"}],"resourceType":"Patient"}`, ParseOptions{}, DuplicateKey, "Patient.identifier[0].system", 29, ""},
		{"dup deep in contained", `{"resourceType":"ServiceRequest","contained":[{"resourceType":"Patient","name":[{"given":[` + s + `],"family":` + s + `,"given":[` + s + `]}]}]}`, ParseOptions{}, DuplicateKey, "ServiceRequest.contained[0].name[0].given", -1, ""},
		{"dup in bundle entry", `{"resourceType":"Bundle","entry":[{},{},{"resource":{"resourceType":"Task","status":"a","status":"b"}}]}`, ParseOptions{}, DuplicateKey, "Bundle.entry[2].resource.status", -1, ""},
		{"dup in array of arrays", `{"resourceType":"Basic","x":[[1],[2,{"a":1,"b":{"c":[{"d":1,"d":2}]}}]]}`, ParseOptions{}, DuplicateKey, "Basic.x[1][1].b.c[0].d", -1, ""},
		{"dup via escape", `{"resourceType":"Patient","a\u0041":1,"aA":2}`, ParseOptions{}, DuplicateKey, "Patient.aA", 38, `"aA"`},
		{"dup in big object", rawManyMembers(100, `,"m57":1`), ParseOptions{}, DuplicateKey, "Basic.m57", -1, `"m57"`},
		{"dup odd name", `{"resourceType":"Basic","a b.c":1,"a b.c":2}`, ParseOptions{}, DuplicateKey, "Basic.`a b.c`", -1, `"a b.c"`},
		{"dup long name", `{"resourceType":"Basic","` + longKey + `":1,"` + longKey + `":2}`, ParseOptions{}, DuplicateKey, "Basic.`" + longKey[:64] + "…`", -1, `"` + longKey[:64] + `…"`},
		{"dup no resourceType", `{"a":{"b":1,"b":2}}`, ParseOptions{}, DuplicateKey, "a.b", -1, ""},

		// Keys differing only in case.
		{"case top", `{"resourceType":"ServiceRequest","status":` + s + `,"Status":` + s + `}`, ParseOptions{}, CaseVariantKey, "ServiceRequest.Status", 55,
			`keys "status" and "Status" differ only in case; FHIR element names are case-sensitive and each may appear once`},
		{"case resourceType", `{"ResourceType":"X","resourceType":"Patient"}`, ParseOptions{}, CaseVariantKey, "Patient.resourceType", 20, ""},
		{"case nested in array", `{"resourceType":"Patient","name":[{"given":[` + s + `]},{"family":` + s + `,"FAMILY":` + s + `}]}`, ParseOptions{}, CaseVariantKey, "Patient.name[1].FAMILY", -1, ""},
		{"case big object", rawManyMembers(100, `,"M57":1`), ParseOptions{}, CaseVariantKey, "Basic.M57", -1, `keys "m57" and "M57"`},
		{"case accented", `{"resourceType":"Basic","é":1,"É":2}`, ParseOptions{}, CaseVariantKey, "Basic.`É`", 31, `keys "é" and "É"`},
		{"case sharp s", `{"resourceType":"Basic","x":{"ß":1,"ẞ":2}}`, ParseOptions{}, CaseVariantKey, "Basic.x.`ẞ`", -1, ""},
		{"case unicode fold", `{"resourceType":"Basic","kind":1,"\u212aind":2}`, ParseOptions{}, CaseVariantKey, "Basic.`\u212aind`", -1, ""},

		// Depth: the resource is level 1.
		{"depth 65 arrays", string(rawNest(65, false)), ParseOptions{}, TooDeep, "Basic.x" + strings.Repeat("[0]", 63), -1, "nesting deeper than 64 levels"},
		{"depth 65 objects", string(rawNest(65, true)), ParseOptions{}, TooDeep, "Basic.x" + strings.Repeat(".a", 63), -1, "nesting deeper than 64 levels"},
		{"depth custom", `{"resourceType":"Basic","x":[[]]}`, ParseOptions{MaxDepth: 2}, TooDeep, "Basic.x[0]", 29, "nesting deeper than 2 levels"},

		// Encoding.
		{"utf8 in value", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Sm\xffth\"}]}", ParseOptions{}, InvalidUTF8, "Patient.name[0].family", 47, "invalid UTF-8 in a string"},
		{"utf8 in key", "{\"resourceType\":\"Patient\",\"na\xc0me\":1}", ParseOptions{}, InvalidUTF8, "Patient", 29, "invalid UTF-8 in a string"},
		{"utf8 before resourceType", "{\"x\":[\"\xed\xa0\x80\"],\"resourceType\":\"Patient\"}", ParseOptions{}, InvalidUTF8, "Patient.x[0]", 7, ""},
		{"lone surrogate", `{"resourceType":"Patient","a":"\ud800"}`, ParseOptions{}, InvalidUTF8, "Patient.a", -1, "surrogate"},
		{"bom", "\xef\xbb\xbf{\"resourceType\":\"Patient\"}", ParseOptions{}, Syntax, "", 0, "byte order mark"},

		// After the object.
		{"two objects", `{} {}`, ParseOptions{}, TrailingData, "", 3, "trailing data after the JSON object"},
		{"garbage after", `{"resourceType":"Patient"}x`, ParseOptions{}, TrailingData, "", 26, "trailing data after the JSON object"},
		{"comma after", `{"resourceType":"Patient"},`, ParseOptions{}, TrailingData, "", 26, ""},

		// Not an object.
		{"array", `[{"resourceType":"Patient"}]`, ParseOptions{}, NotObject, "", 0, "found an array"},
		{"string", ` ` + s, ParseOptions{}, NotObject, "", 1, "found a string"},
		{"number", `9434765919`, ParseOptions{}, NotObject, "", 0, "found a number"},
		{"null", `null`, ParseOptions{}, NotObject, "", 0, "found null"},
		{"true", `true`, ParseOptions{}, NotObject, "", 0, "found a boolean"},
		{"empty", ``, ParseOptions{}, Syntax, "", 0, "empty body"},
		{"whitespace", " \r\n\t", ParseOptions{}, Syntax, "", 4, "empty body"},

		// resourceType.
		{"missing", `{"id":` + s + `}`, ParseOptions{}, MissingResourceType, "resourceType", 0, `"resourceType" is missing: expected the name of a FHIR resource type`},
		{"missing empty object", ` {}`, ParseOptions{}, MissingResourceType, "resourceType", 1, ""},
		{"only nested resourceType", `{"contained":[{"resourceType":"Patient"}]}`, ParseOptions{}, MissingResourceType, "resourceType", 0, ""},
		{"number resourceType", `{"resourceType":9434765919}`, ParseOptions{}, BadResourceType, "resourceType", 16, "found a number"},
		{"object resourceType", `{"resourceType":{"a":1}}`, ParseOptions{}, BadResourceType, "resourceType", 16, "found an object"},
		{"null resourceType", `{"resourceType":null}`, ParseOptions{}, BadResourceType, "resourceType", 16, "found null"},
		{"lower resourceType", `{"resourceType":"patient"}`, ParseOptions{}, BadResourceType, "resourceType", 16, "must name a FHIR resource type"},
		{"one letter resourceType", `{"resourceType":"P"}`, ParseOptions{}, BadResourceType, "resourceType", -1, ""},
		{"empty resourceType", `{"resourceType":""}`, ParseOptions{}, BadResourceType, "resourceType", -1, ""},
		{"space resourceType", `{"resourceType":"Pat ient"}`, ParseOptions{}, BadResourceType, "resourceType", -1, ""},
		{"digit resourceType", `{"resourceType":"Patient2"}`, ParseOptions{}, BadResourceType, "resourceType", -1, ""},
		{"secret resourceType", `{"resourceType":` + s + `}`, ParseOptions{}, BadResourceType, "resourceType", -1, ""},

		// Syntax, with what was expected.
		{"trailing comma", `{"resourceType":"Patient",}`, ParseOptions{}, Syntax, "Patient", 25, "trailing comma"},
		{"missing colon", `{"resourceType":"Patient","a" ` + s + `}`, ParseOptions{}, Syntax, "Patient.a", -1, "expected ':' after a member name"},
		{"missing comma", `{"resourceType":"Patient","a":1 "b":` + s + `}`, ParseOptions{}, Syntax, "Patient", -1, "expected ',' or '}' after an object member"},
		{"missing array comma", `{"resourceType":"Patient","a":[` + s + ` ` + s + `]}`, ParseOptions{}, Syntax, "Patient.a", -1, "expected ',' or ']' after an array element"},
		{"bad literal", `{"resourceType":"Patient","a":tru}`, ParseOptions{}, Syntax, "Patient.a", -1, "expected true, false or null"},
		{"leading zero", `{"resourceType":"Patient","a":09434765919}`, ParseOptions{}, Syntax, "Patient", -1, "expected ',' or '}'"},
		{"bad number", `{"resourceType":"Patient","a":-x}`, ParseOptions{}, Syntax, "Patient.a", -1, "expected a digit"},
		{"bad escape", `{"resourceType":"Patient","a":"` + rawSecret + `\q"}`, ParseOptions{}, Syntax, "Patient.a", -1, "invalid escape"},
		{"control char", "{\"resourceType\":\"Patient\",\"a\":\"" + rawSecret + "\x01\"}", ParseOptions{}, Syntax, "Patient.a", -1, "control character"},
		{"truncated", `{"resourceType":"Patient","a":{"b":[` + s + `,`, ParseOptions{}, Syntax, "Patient.a.b", -1, "unexpected end of input"},
		{"truncated string", `{"resourceType":"Patient","a":"` + rawSecret, ParseOptions{}, Syntax, "Patient.a", -1, "unexpected end of input"},
		{"open brace", `{`, ParseOptions{}, Syntax, "", -1, "unexpected end of input"},
		{"non-string name", `{"resourceType":"Patient",9434765919:1}`, ParseOptions{}, Syntax, "Patient", 26, "expected a member name in double quotes"},
		{"missing value", `{"resourceType":"Patient","a":}`, ParseOptions{}, Syntax, "Patient.a", -1, "expected a value after ':'"},
		{"bad value", `{"resourceType":"Patient","a":{"b":x` + rawSecret + `}}`, ParseOptions{}, Syntax, "Patient.a.b", -1, "expected a value"},
		{"mismatched close", `{"resourceType":"Patient","a":[` + s + `}}`, ParseOptions{}, Syntax, "Patient.a", -1, "expected ',' or ']'"},
		{"single quotes", `{'resourceType':'Patient'}`, ParseOptions{}, Syntax, "", 1, "expected a member name in double quotes"},
		{"nan", `{"resourceType":"Patient","a":NaN}`, ParseOptions{}, Syntax, "Patient.a", -1, "expected a value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := ParseResource([]byte(tt.body), tt.opt)
			if err == nil {
				t.Fatalf("accepted; names %q", o.Names())
			}
			var re *RawError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v is not a *RawError", err, err)
			}
			if o != nil {
				t.Errorf("non-nil Object with an error")
			}
			if re.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v (%v)", re.Kind, tt.kind, err)
			}
			if re.Expression != tt.expr {
				t.Errorf("Expression = %q, want %q", re.Expression, tt.expr)
			}
			if tt.offset >= 0 && re.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d", re.Offset, tt.offset)
			}
			if re.Offset < 0 || re.Offset > int64(len(tt.body)) {
				t.Errorf("Offset %d outside the body", re.Offset)
			}
			if !strings.Contains(re.Message, tt.msg) {
				t.Errorf("Message = %q, want it to contain %q", re.Message, tt.msg)
			}
			if re.Message == "" {
				t.Errorf("empty Message")
			}
			for _, leak := range []string{rawSecret, "Sm", "ient", "NaN", "invalid character", "jsontext"} {
				if strings.Contains(re.Message, leak) {
					t.Errorf("Message %q echoes a value (%q)", re.Message, leak)
				}
			}
			if got := err.Error(); !strings.Contains(got, re.Message) || !strings.HasPrefix(got, "fhir: ") {
				t.Errorf("Error() = %q", got)
			}
		})
	}
}

func TestParseResourceDepth(t *testing.T) {
	t.Parallel()
	for _, objects := range []bool{false, true} {
		for _, tt := range []struct {
			depth, max int
			ok         bool
		}{
			{1, 0, true}, {2, 0, true}, {63, 0, true}, {64, 0, true}, {65, 0, false}, {200, 0, false},
			{10, 10, true}, {11, 10, false}, {64, -1, true}, {65, 65, true}, {66, 65, false},
			{3000, 5000, true},
		} {
			t.Run(strconv.Itoa(tt.depth)+"/"+strconv.Itoa(tt.max)+"/"+strconv.FormatBool(objects), func(t *testing.T) {
				t.Parallel()
				body := rawNest(tt.depth, objects)
				if !json.Valid(body) {
					t.Fatalf("test body is not JSON")
				}
				_, err := ParseResource(body, ParseOptions{MaxDepth: tt.max})
				if tt.ok && err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if !tt.ok {
					var re *RawError
					if !errors.As(err, &re) || re.Kind != TooDeep {
						t.Fatalf("got %v, want TooDeep", err)
					}
				}
			})
		}
	}
}

func TestParseResourceAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		rt         string
		names      []string
	}{
		{"minimal", `{"resourceType":"Patient"}`, "Patient", []string{"resourceType"}},
		{"resourceType last", `{"id":"a","resourceType":"Patient"}`, "Patient", []string{"id", "resourceType"}},
		{"trailing whitespace", "{\"resourceType\":\"Patient\"} \r\n\t\n", "Patient", []string{"resourceType"}},
		{"leading whitespace", "\n\t {\"resourceType\":\"Patient\"}", "Patient", []string{"resourceType"}},
		{"escaped names", `{"resource\u0054ype":"Pat\u0069ent","\u0069d":"x"}`, "Patient", []string{"resourceType", "id"}},
		{"same name in different objects", `{"resourceType":"Basic","a":{"a":{"a":1}},"b":[{"a":1},{"A":2,"b":{"a":{}}}]}`, "Basic", []string{"resourceType", "a", "b"}},
		{"case variant in other object", `{"resourceType":"Basic","status":1,"x":{"Status":2}}`, "Basic", []string{"resourceType", "status", "x"}},
		{"big object", rawManyMembers(300, ""), "Basic", nil},
		{"non-ascii names", `{"resourceType":"Basic","é":1,"e":{"ß":1,"ss":2,"S":{}}}`, "Basic", nil},
		{"huge numbers", `{"resourceType":"Observation","valueQuantity":{"value":123456789012345678901234567890.123456789e-400},"n":[-0,1E+999]}`, "Observation", []string{"resourceType", "valueQuantity", "n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := ParseResource([]byte(tt.body), ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if o.ResourceType() != tt.rt {
				t.Errorf("ResourceType() = %q, want %q", o.ResourceType(), tt.rt)
			}
			if tt.names != nil && !slices.Equal(o.Names(), tt.names) {
				t.Errorf("Names() = %q, want %q", o.Names(), tt.names)
			}
			if got := strings.TrimSpace(string(o.Bytes())); got != strings.TrimSpace(tt.body) {
				t.Errorf("Bytes() = %q", got)
			}
		})
	}
}

func TestParseResourceObjectAccessors(t *testing.T) {
	t.Parallel()
	body := rawReadTestdata(t, "servicerequest.json")
	o, err := ParseResource(body, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.ResourceType() != "ServiceRequest" {
		t.Fatalf("ResourceType() = %q", o.ResourceType())
	}
	wantNames := []string{"resourceType", "id", "meta", "text", "contained", "extension", "identifier", "status", "intent",
		"category", "priority", "code", "subject", "authoredOn", "_authoredOn", "requester", "performer", "reasonCode",
		"supportingInfo", "note", "occurrencePeriod", "quantityQuantity", "x-unknown-vendor-element"}
	if got := o.Names(); !slices.Equal(got, wantNames) {
		t.Fatalf("Names() = %q", got)
	}
	// Every member value is the exact input text and aliases the body.
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(body, &generic); err != nil {
		t.Fatal(err)
	}
	for _, name := range wantNames {
		raw, ok := o.Member(name)
		if !ok || !o.Has(name) {
			t.Fatalf("Member(%q) missing", name)
		}
		if !bytes.Equal(raw, generic[name]) {
			t.Errorf("Member(%q) = %q, want %q", name, raw, generic[name])
		}
		if i := bytes.Index(body, raw); i < 0 || &body[i] != &raw[0] {
			t.Errorf("Member(%q) does not alias the body", name)
		}
	}
	if _, ok := o.Member("Status"); ok || o.Has("Status") {
		t.Errorf("member lookup is not case-sensitive")
	}
	if q, _ := o.Member("quantityQuantity"); !bytes.Contains(q, []byte(`12345678901234567890.000000000000000000001`)) {
		t.Errorf("huge number not kept verbatim: %s", q)
	}
	if v, _ := o.Member("x-unknown-vendor-element"); !bytes.Contains(v, []byte(`[1, 2.50, -0, 1e400]`)) {
		t.Errorf("number literals not kept verbatim: %s", v)
	}
	if s, ok := o.String("status"); !ok || s != "active" {
		t.Errorf("String(status) = %q, %v", s, ok)
	}
	if _, ok := o.String("subject"); ok {
		t.Errorf("String on an object member succeeded")
	}
	if _, ok := o.String("nope"); ok {
		t.Errorf("String on a missing member succeeded")
	}
	subj, ok := o.Object("subject")
	if !ok {
		t.Fatal("Object(subject) failed")
	}
	if ref, _ := subj.String("reference"); ref != "#pat" {
		t.Errorf("subject.reference = %q", ref)
	}
	if !slices.Equal(subj.Names(), []string{"reference", "identifier", "display"}) {
		t.Errorf("subject names %q", subj.Names())
	}
	if ident, ok := subj.Object("identifier"); !ok || !ident.Has("value") {
		t.Errorf("subject.identifier not readable")
	}
	if subj.ResourceType() != "" {
		t.Errorf("complex element has a resource type %q", subj.ResourceType())
	}
	if _, ok := o.Object("status"); ok {
		t.Errorf("Object on a string member succeeded")
	}
	contained, ok := o.Objects("contained")
	if !ok || len(contained) != 1 || contained[0].ResourceType() != "Patient" {
		t.Fatalf("Objects(contained) = %v, %v", contained, ok)
	}
	if id, _ := contained[0].String("id"); id != "pat" {
		t.Errorf("contained id %q", id)
	}
	elems, ok := o.Array("performer")
	if !ok || len(elems) != 1 || !json.Valid(elems[0]) || elems[0][0] != '{' {
		t.Errorf("Array(performer) = %q, %v", elems, ok)
	}
	if _, ok := o.Array("code"); ok {
		t.Errorf("Array on an object member succeeded")
	}

	esc, err := ParseResource([]byte(`{"resourceType":"Basic","note":"line\nbreak \"quoted\" \u00e9"}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := esc.String("note"); s != "line\nbreak \"quoted\" é" {
		t.Errorf("decoded %q", s)
	}

	var nilObj *Object
	if nilObj.ResourceType() != "" || nilObj.Has("a") || nilObj.Names() != nil || nilObj.WithServerFields("a", "1", "t") != nil || References(nilObj) != nil {
		t.Errorf("nil Object methods misbehave")
	}
}

func TestWithServerFields(t *testing.T) {
	t.Parallel()
	body := rawReadTestdata(t, "servicerequest.json")
	o, err := ParseResource(body, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const lastUpdated = "2024-03-18T09:30:01.123Z"
	out := o.WithServerFields("sr-0001", "3", lastUpdated)
	got, err := ParseResource(out, ParseOptions{})
	if err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, out)
	}
	names := got.Names()
	if !slices.Equal(names[:3], []string{"resourceType", "id", "meta"}) {
		t.Errorf("output starts with %q", names[:3])
	}
	if id, _ := got.String("id"); id != "sr-0001" {
		t.Errorf("id = %q", id)
	}
	if bytes.Contains(out, []byte("client-chosen-id")) {
		t.Errorf("client id kept")
	}
	// Every member other than id and meta is byte-for-byte the client's, in order.
	var want []string
	for _, n := range o.Names() {
		if n != "id" && n != "meta" {
			want = append(want, n)
		}
	}
	var gotRest []string
	for _, n := range names {
		if n != "id" && n != "meta" {
			gotRest = append(gotRest, n)
		}
	}
	if !slices.Equal(gotRest, want) {
		t.Errorf("members %q, want %q", gotRest, want)
	}
	for _, n := range want {
		a, _ := o.Member(n)
		b, _ := got.Member(n)
		if !bytes.Equal(a, b) {
			t.Errorf("member %q changed:\n%s\n%s", n, a, b)
		}
	}
	for _, keep := range []string{"_authoredOn", "extension", "contained", "text", "x-unknown-vendor-element"} {
		if !got.Has(keep) {
			t.Errorf("%q dropped", keep)
		}
	}
	meta, ok := got.Object("meta")
	if !ok {
		t.Fatal("meta is not an object")
	}
	if !slices.Equal(meta.Names(), []string{"versionId", "lastUpdated", "source", "profile", "security", "tag"}) {
		t.Errorf("meta names %q", meta.Names())
	}
	if v, _ := meta.String("versionId"); v != "3" {
		t.Errorf("versionId %q", v)
	}
	if v, _ := meta.String("lastUpdated"); v != lastUpdated {
		t.Errorf("lastUpdated %q", v)
	}
	clientMeta, _ := o.Object("meta")
	for _, n := range []string{"source", "profile", "security", "tag"} {
		a, _ := clientMeta.Member(n)
		b, _ := meta.Member(n)
		if !bytes.Equal(a, b) {
			t.Errorf("meta.%s changed: %s vs %s", n, a, b)
		}
	}

	for _, tt := range []struct {
		name, body          string
		id, version, update string
		want                string
	}{
		{"no meta", `{"id":"old","resourceType":"Patient","active":true}`, "p1", "1", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"t"},"active":true}`},
		{"meta not an object", `{"resourceType":"Patient","meta":"junk","active":true}`, "p1", "1", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"t"},"active":true}`},
		{"meta null", `{"resourceType":"Patient","meta":null}`, "p1", "1", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"t"}}`},
		{"meta members kept in order", `{"resourceType":"Patient","meta":{"tag":[{"code":"a"}],"versionId":"9","_versionId":{"id":"x"},"source":"s","lastUpdated":"old"}}`, "p1", "2", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","lastUpdated":"t","tag":[{"code":"a"}],"source":"s"}}`},
		{"primitive extension of id dropped", `{"resourceType":"Patient","_id":{"extension":[]},"id":"x","_active":{"id":"e"}}`, "p1", "1", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"t"},"_active":{"id":"e"}}`},
		{"case variants of server names dropped", `{"resourceType":"Patient","Id":"x","_ID":{},"META":{"a":1}}`, "p1", "1", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"t"}}`},
		{"fold variants of meta names dropped", `{"resourceType":"Patient","meta":{"verſionId":"1","source":"s"}}`, "p1", "1", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"t","source":"s"}}`},
		{"case variants of meta names dropped", `{"resourceType":"Patient","meta":{"VersionId":"1","LASTUPDATED":"2","source":"s"}}`, "p1", "1", "t",
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"t","source":"s"}}`},
		{"raw names and whitespace in values kept", `{ "resourceType" : "Basic" , "co\u0064e" : { "text" : "a" } , "n" : 1.0e+2 }`, "b", "1", "t",
			`{"resourceType":"Basic","id":"b","meta":{"versionId":"1","lastUpdated":"t"},"co\u0064e":{ "text" : "a" },"n":1.0e+2}`},
		{"empty arguments", `{"resourceType":"Basic","meta":{"versionId":"1"}}`, "", "", "",
			`{"resourceType":"Basic"}`},
		{"only lastUpdated", `{"resourceType":"Basic"}`, "b", "", "t",
			`{"resourceType":"Basic","id":"b","meta":{"lastUpdated":"t"}}`},
		{"id needing escapes", `{"resourceType":"Basic"}`, "a\"b\\c", "1", "t",
			`{"resourceType":"Basic","id":"a\"b\\c","meta":{"versionId":"1","lastUpdated":"t"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := ParseResource([]byte(tt.body), ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out := o.WithServerFields(tt.id, tt.version, tt.update)
			if string(out) != tt.want {
				t.Errorf("got  %s\nwant %s", out, tt.want)
			}
			if _, err := ParseResource(out, ParseOptions{}); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
		})
	}
}

func TestRewriteReferences(t *testing.T) {
	t.Parallel()
	const (
		sr = "urn:uuid:8a1f0e2b-7c3d-4e5f-a6b7-c8d9e0f1a2b3"
		qr = "urn:uuid:5d6e1c2a-3b4f-4a8e-9c1d-2e3f4a5b6c7d"
	)
	refs := map[string]string{sr: "ServiceRequest/sr-1", qr: "QuestionnaireResponse/qr-1", "unused": "x"}
	body := rawReadTestdata(t, "bundle-transaction.json")
	out, err := RewriteReferences(body, refs)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the reference values change; whitespace and everything else stay.
	want := strings.NewReplacer(
		`"reference": "`+sr+`"`, `"reference":"ServiceRequest/sr-1"`,
		`"reference": "`+qr+`"`, `"reference":"QuestionnaireResponse/qr-1"`,
	).Replace(string(body))
	want = strings.ReplaceAll(want, `"reference":"`, `"reference": "`)
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if n := strings.Count(string(out), sr); n != 2 { // fullUrl and identifier.value
		t.Errorf("%d occurrences of the placeholder left, want 2 (fullUrl, identifier.value)", n)
	}
	if !strings.Contains(string(out), `"value": "`+sr+`"`) {
		t.Errorf("identifier.value was rewritten")
	}
	o, err := ParseResource(out, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, r := range References(o) {
		vals = append(vals, r.Value)
	}
	wantVals := []string{"ServiceRequest/sr-1", "Patient/9434765919", "QuestionnaireResponse/qr-1", "ServiceRequest/sr-1",
		"Practitioner/example-gp", "ServiceRequest/sr-1", "Patient/9434765919"}
	if !slices.Equal(vals, wantVals) {
		t.Errorf("references after rewrite %q", vals)
	}

	for _, tt := range []struct {
		name, body, want string
	}{
		{"contained and arrays", `{"resourceType":"Basic","contained":[{"resourceType":"Provenance","target":[{"reference":"a"},{"reference":"b"}]}],"x":[[{"reference":"a"}]]}`,
			`{"resourceType":"Basic","contained":[{"resourceType":"Provenance","target":[{"reference":"A"},{"reference":"b"}]}],"x":[[{"reference":"A"}]]}`},
		{"only reference members", `{"resourceType":"Basic","identifier":{"value":"a"},"a":"a","reference":"a","display":"a"}`,
			`{"resourceType":"Basic","identifier":{"value":"a"},"a":"a","reference":"A","display":"a"}`},
		{"non-string reference", `{"resourceType":"Basic","reference":["a"],"x":{"reference":{"reference":"a"}}}`,
			`{"resourceType":"Basic","reference":["a"],"x":{"reference":{"reference":"A"}}}`},
		{"escaped value and name", `{"resourceType":"Basic","refer\u0065nce":"\u0061"}`,
			`{"resourceType":"Basic","refer\u0065nce":"A"}`},
		{"replacement escaped", `{"resourceType":"Basic","reference":"q"}`,
			`{"resourceType":"Basic","reference":"say \"hi\"\\"}`},
		{"numbers kept", `{"resourceType":"Basic","n":1.000e+400,"reference":"a","m":-0}`,
			`{"resourceType":"Basic","n":1.000e+400,"reference":"A","m":-0}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RewriteReferences([]byte(tt.body), map[string]string{"a": "A", "q": `say "hi"\`})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}

	t.Run("unchanged is the same slice", func(t *testing.T) {
		t.Parallel()
		in := []byte(`{"resourceType":"Basic","reference":"b"}`)
		for _, m := range []map[string]string{nil, {}, {"a": "A"}} {
			got, err := RewriteReferences(in, m)
			if err != nil || &got[0] != &in[0] || len(got) != len(in) {
				t.Errorf("got a copy or error %v", err)
			}
		}
	})
	t.Run("invalid input", func(t *testing.T) {
		t.Parallel()
		for _, in := range []string{``, `{"reference":"a"`, `{"reference":"a","reference":"b"}`, "{\"reference\":\"\xff\"}", `{} x`} {
			_, err := RewriteReferences([]byte(in), map[string]string{"a": "A"})
			var re *RawError
			if !errors.As(err, &re) {
				t.Errorf("%q: err = %v, want a *RawError", in, err)
			}
		}
	})
}

func TestReferences(t *testing.T) {
	t.Parallel()
	o, err := ParseResource(rawReadTestdata(t, "bundle-transaction.json"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := References(o)
	want := []Ref{
		{"Bundle.entry[0].resource.subject.reference", "urn:uuid:8a1f0e2b-7c3d-4e5f-a6b7-c8d9e0f1a2b3"},
		{"Bundle.entry[1].resource.subject.reference", "Patient/9434765919"},
		{"Bundle.entry[1].resource.supportingInfo[0].reference", "urn:uuid:5d6e1c2a-3b4f-4a8e-9c1d-2e3f4a5b6c7d"},
		{"Bundle.entry[1].resource.contained[0].target[0].reference", "urn:uuid:8a1f0e2b-7c3d-4e5f-a6b7-c8d9e0f1a2b3"},
		{"Bundle.entry[1].resource.contained[0].agent[0].who.reference", "Practitioner/example-gp"},
		{"Bundle.entry[2].resource.focus.reference", "urn:uuid:8a1f0e2b-7c3d-4e5f-a6b7-c8d9e0f1a2b3"},
		{"Bundle.entry[2].resource.for.reference", "Patient/9434765919"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	task, err := ParseResource([]byte(`{"resourceType":"Task","focus":{"reference":"ServiceRequest/1"},"x":[1,{"refer\u0065nce":"a\/b"}],"reference":7,"basedOn":[{"reference":"s"},{"display":"d"}]}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got = References(task)
	want = []Ref{{"Task.focus.reference", "ServiceRequest/1"}, {"Task.x[1].reference", "a/b"}, {"Task.basedOn[0].reference", "s"}}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if sub, _ := task.Object("focus"); !slices.Equal(References(sub), []Ref{{"reference", "ServiceRequest/1"}}) {
		t.Errorf("References on a complex element: %q", References(sub))
	}
}

// Objects with many members are checked through pooled indexes; these
// bodies hold several such objects at once and one after another.
func TestParseResourceBigObjects(t *testing.T) {
	t.Parallel()
	big := func(prefix string, n int, extra string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"` + prefix + strconv.Itoa(i) + `":` + strconv.Itoa(i))
		}
		b.WriteString(extra + "}")
		return b.String()
	}
	var arr []string
	for i := 0; i < 20; i++ {
		arr = append(arr, big("e", 60, ""))
	}
	nested := big("o", 100, `,"inner":`+big("i", 100, "")+`,"after":1`)
	ok := `{"resourceType":"Basic","list":[` + strings.Join(arr, ",") + `],"nested":` + nested + `}`
	for i := 0; i < 3; i++ { // again, with indexes from the pool
		if _, err := ParseResource([]byte(ok), ParseOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ body, expr string }{
		{`{"resourceType":"Basic","list":[` + strings.Join(arr[:5], ",") + `,` + big("e", 60, `,"E59":1`) + `]}`, "Basic.list[5].E59"},
		{`{"resourceType":"Basic","nested":` + big("o", 100, `,"inner":`+big("i", 100, "")+`,"O7":1`) + `}`, "Basic.nested.O7"},
		{`{"resourceType":"Basic","nested":` + big("o", 100, `,"inner":`+big("i", 100, `,"I99":1`)) + `}`, "Basic.nested.inner.I99"},
	} {
		_, err := ParseResource([]byte(tt.body), ParseOptions{})
		var re *RawError
		if !errors.As(err, &re) || re.Kind != CaseVariantKey || re.Expression != tt.expr {
			t.Errorf("got %v, want a case variant at %s", err, tt.expr)
		}
	}
}

func TestRawErrorKindString(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for k := Syntax; k <= BadResourceType; k++ {
		s := k.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "RawErrorKind(") {
			t.Errorf("kind %d: %q", k, s)
		}
		seen[s] = true
	}
	if RawErrorKind(0).String() != "RawErrorKind(0)" || RawErrorKind(200).String() != "RawErrorKind(200)" {
		t.Errorf("unknown kinds: %q %q", RawErrorKind(0), RawErrorKind(200))
	}
}

func TestParseResourceConcurrent(t *testing.T) {
	t.Parallel()
	bodies := [][]byte{rawReadTestdata(t, "servicerequest.json"), rawReadTestdata(t, "patient.json"), rawReadTestdata(t, "bundle-transaction.json"),
		[]byte(`{"resourceType":"Basic","a":1,"a":2}`), rawNest(70, true)}
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func(g int) {
			var err error
			for i := 0; i < 200 && err == nil; i++ {
				b := bodies[(g+i)%len(bodies)]
				o, perr := ParseResource(b, ParseOptions{})
				if (perr == nil) != ((g+i)%len(bodies) < 3) {
					err = errors.New("inconsistent result for body " + strconv.Itoa((g+i)%len(bodies)))
				}
				if o != nil && !bytes.Equal(o.Bytes(), bytes.TrimSpace(b)) {
					err = errors.New("Bytes mismatch")
				}
			}
			done <- err
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkParseResource(b *testing.B) {
	body := rawReadTestdata(b, "servicerequest.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResource(body, ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseResourceBaseline is what the standard library needs just to
// say whether the same body is JSON, for scale.
func BenchmarkParseResourceBaseline(b *testing.B) {
	body := rawReadTestdata(b, "servicerequest.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkWithServerFields(b *testing.B) {
	o, err := ParseResource(rawReadTestdata(b, "servicerequest.json"), ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		o.WithServerFields("sr-0001", "3", "2024-03-18T09:30:01.123Z")
	}
}

func BenchmarkRewriteReferences(b *testing.B) {
	body := rawReadTestdata(b, "bundle-transaction.json")
	refs := map[string]string{"urn:uuid:8a1f0e2b-7c3d-4e5f-a6b7-c8d9e0f1a2b3": "ServiceRequest/sr-1"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RewriteReferences(body, refs); err != nil {
			b.Fatal(err)
		}
	}
}

// RewriteIDs rewrites the resource's own id and its references, and no
// other id (a contained resource's, an element's), every other byte kept.
func TestRewriteIDs(t *testing.T) {
	t.Parallel()
	upper := func(s string) (string, bool) { return strings.ToUpper(s), true }
	body := `{"resourceType":"Patient", "\u0069d": "p1","contained":[{"resourceType":"Organization","id":"o1"}],` +
		`"name":[{"id":"n1","text":"Ann"}],"managingOrganization":{"reference":"#o1"},"link":[{"other":{"reference":"Patient/p2"},"type":"seealso"}]}`
	got, err := RewriteIDs([]byte(body), upper, func(ref string) (string, bool) { return ref, false })
	want := strings.Replace(body, `"p1"`, `"P1"`, 1)
	if err != nil || string(got) != want {
		t.Errorf("own id only:\n got %s (%v)\nwant %s", got, err, want)
	}
	got, err = RewriteIDs([]byte(body), nil, upper)
	want = strings.NewReplacer(`"#o1"`, `"#O1"`, `"Patient/p2"`, `"PATIENT/P2"`).Replace(body)
	if err != nil || string(got) != want {
		t.Errorf("references only:\n got %s (%v)\nwant %s", got, err, want)
	}
}
