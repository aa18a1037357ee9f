package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

var rawFuzzResourceType = regexp.MustCompile(`^[A-Z][A-Za-z]+$`)

// rawFuzzVerdict is a slow, independent statement of the rules
// ParseResource enforces: jsontext's RFC 7493 validity (UTF-8, unique names,
// one value), then an encoding/json token walk for case variants, depth and
// the resource type. It returns "" when the body should be accepted.
func rawFuzzVerdict(body []byte) string {
	if !jsontext.Value(body).IsValid() {
		return "not RFC 7493 JSON"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return "not an object"
	}
	rt := ""
	var walk func(depth int, first json.Token) string
	walk = func(depth int, first json.Token) string {
		d, ok := first.(json.Delim)
		if !ok {
			return ""
		}
		if depth > DefaultMaxDepth {
			return "too deep"
		}
		var keys []string
		for dec.More() {
			if d == '{' {
				k, err := dec.Token()
				if err != nil {
					return err.Error()
				}
				key := k.(string)
				for _, prev := range keys {
					if strings.EqualFold(prev, key) {
						return "duplicate or case variant"
					}
				}
				keys = append(keys, key)
				v, err := dec.Token()
				if err != nil {
					return err.Error()
				}
				if depth == 1 && key == "resourceType" {
					rt = "\x00"
					if s, ok := v.(string); ok {
						rt = s
					}
				}
				if r := walk(depth+1, v); r != "" {
					return r
				}
			} else {
				v, err := dec.Token()
				if err != nil {
					return err.Error()
				}
				if r := walk(depth+1, v); r != "" {
					return r
				}
			}
		}
		if _, err := dec.Token(); err != nil {
			return err.Error()
		}
		return ""
	}
	if r := walk(1, tok); r != "" {
		return r
	}
	if !rawFuzzResourceType.MatchString(rt) {
		return "bad or missing resourceType"
	}
	return ""
}

func FuzzParseResource(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "raw", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `"Patient"`, `null`, `{} {}`, `{}x`, "\xef\xbb\xbf{}",
		`{"resourceType":"Patient"}`,
		`{"resourceType":"ServiceRequest","resourceType":"Patient"}`,
		`{"resourceType":"ServiceRequest","status":"active","Status":"draft"}`,
		`{"identifier":[{"system":"a","system":"b"}],"resourceType":"Patient"}`,
		`{"resourceType":"Patient","a\u0041":1,"aA":2}`,
		`{"resourceType":"Basic","kind":1,"\u212aind":2}`,
		`{"resourceType":"Basic","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Sm\xffth\"}]}",
		`{"resourceType":"Patient","a":"\ud800"}`,
		`{"resourceType":"Patient","a":"\ud83d\ude00"}`,
		`{"resourceType":"Observation","valueQuantity":{"value":123456789012345678901234567890.1e-400}}`,
		`{"resourceType":"Patient","meta":"x","id":"y","_id":{"extension":[]}}`,
		`{"resourceType":"Patient","Id":"x","meta":{"VersionId":"1","ver\u017fionId":"2","tag":[]}}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"p"}],"subject":{"reference":"#p"}}`,
		`{"resource\u0054ype":"Pat\u0069ent","refer\u0065nce":"\u0061"}`,
		`{"resourceType":"Patient",}`,
		`{"resourceType":"patient"}`,
		`{"resourceType":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := ParseResource(body, ParseOptions{})
		verdict := rawFuzzVerdict(body)
		if err != nil {
			var re *RawError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RawError: %v", err, err)
			}
			if re.Kind < Syntax || re.Kind > BadResourceType {
				t.Fatalf("bad Kind %d", re.Kind)
			}
			if re.Offset < 0 || re.Offset > int64(len(body)) {
				t.Fatalf("Offset %d outside a body of %d bytes", re.Offset, len(body))
			}
			if re.Message == "" || !utf8.ValidString(re.Message) || !utf8.ValidString(re.Expression) {
				t.Fatalf("bad Message or Expression: %q %q", re.Message, re.Expression)
			}
			if verdict == "" {
				t.Fatalf("rejected a body the reference accepts: %v", err)
			}
			return
		}
		if verdict != "" {
			t.Fatalf("accepted a body the reference rejects (%s)", verdict)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body encoding/json says is invalid")
		}
		if !bytes.Equal(o.Bytes(), bytes.TrimSpace(body)) {
			t.Fatalf("Bytes() is not the body")
		}
		for _, name := range o.Names() {
			if v, ok := o.Member(name); !ok || !json.Valid(v) {
				t.Fatalf("member %q has invalid value %q", name, v)
			}
		}

		out := o.WithServerFields("fuzz-id", "7", "2024-01-01T00:00:00Z")
		o2, err := ParseResource(out, ParseOptions{})
		if err != nil {
			t.Fatalf("WithServerFields output does not parse: %v\n%s", err, out)
		}
		if id, _ := o2.String("id"); id != "fuzz-id" {
			t.Fatalf("id = %q", id)
		}
		if o2.ResourceType() != o.ResourceType() {
			t.Fatalf("resourceType changed")
		}
		meta, ok := o2.Object("meta")
		if !ok {
			t.Fatalf("no meta object")
		}
		if v, _ := meta.String("versionId"); v != "7" {
			t.Fatalf("versionId = %q", v)
		}

		refs := References(o)
		m := map[string]string{}
		for _, r := range refs {
			if r.Expression == "" {
				t.Fatalf("reference without an expression")
			}
			m[r.Value] = "Resolved/1"
		}
		rewritten, err := RewriteReferences(body, m)
		if err != nil {
			t.Fatalf("RewriteReferences failed on an accepted body: %v", err)
		}
		o3, err := ParseResource(rewritten, ParseOptions{})
		if err != nil {
			t.Fatalf("rewritten body does not parse: %v", err)
		}
		after := References(o3)
		if len(after) != len(refs) {
			t.Fatalf("%d references after rewrite, %d before", len(after), len(refs))
		}
		for i, r := range after {
			if r.Value != "Resolved/1" || r.Expression != refs[i].Expression {
				t.Fatalf("reference %d after rewrite: %+v (was %+v)", i, r, refs[i])
			}
		}
		if len(refs) == 0 && len(rewritten) > 0 && &rewritten[0] != &body[0] {
			t.Fatalf("nothing to rewrite, but the body was copied")
		}
	})
}
