// Package structure checks that a FHIR R4 JSON resource is structurally
// valid: every element is one R4 defines for its place, with the JSON type,
// cardinality and primitive format R4 gives it, and the invariants every
// resource shares (extensions, contained resources, narrative) hold.
//
// The rules are not written here element by element: they are the official
// R4 StructureDefinitions, reduced by internal/gen to a table that is
// embedded (definitions.json.gz). What this package adds is how JSON carries
// FHIR (choice types, primitive extensions, arrays) and the invariants the
// table cannot express.
//
// It imports only the fhir package's OperationOutcome types; fhir must never
// import it back.
package structure

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
)

//go:embed definitions.json.gz
var definitionsGz []byte

// table is the generated table, as internal/gen writes it.
type table struct {
	FHIRVersion string `json:"fhirVersion"`
	Primitives  map[string]struct {
		JSON  string `json:"json"`
		Regex string `json:"regex"`
	} `json:"primitives"`
	Types map[string]struct {
		Resource bool `json:"resource"`
		Elements []struct {
			Path     string   `json:"path"`
			Min      int      `json:"min"`
			Many     bool     `json:"many"`
			Types    []string `json:"types"`
			Ref      string   `json:"ref"`
			Modifier bool     `json:"modifier"`
		} `json:"elements"`
	} `json:"types"`
}

// primitive is a primitive type: how JSON carries it and what its value matches.
type primitive struct {
	name   string
	json   jsonKind
	format *regexp.Regexp
	fast   func(string) bool // the same answer as format, faster
}

type jsonKind uint8

const (
	jsonString jsonKind = iota + 1
	jsonBoolean
	jsonNumber
)

func (k jsonKind) String() string {
	switch k {
	case jsonBoolean:
		return "a JSON boolean (true or false, not in quotes)"
	case jsonNumber:
		return "a JSON number (not in quotes)"
	}
	return "a JSON string"
}

// matches reports whether a value has the primitive's format: R4's regular
// expression, or the check that answers the same (fastpath.go).
func (p *primitive) matches(s string) bool {
	if p.fast != nil {
		return p.fast(s)
	}
	return p.format == nil || p.format.MatchString(s)
}

// element is one element of a type, as a JSON object member may name it.
type element struct {
	name     string // the element's name; for a choice, without "[x]"
	min      int
	many     bool
	modifier bool
	// types are the element's types; a choice has several, and its JSON
	// name carries the type (valueString).
	types  []string
	choice bool
	// children is the path (below the type) of the element whose children
	// this one's are, for BackboneElements and contentReferences; "" when
	// the element's type defines its children.
	children string
	owner    *complexType
}

// binding is what one JSON member name stands for.
type binding struct {
	el  *element
	typ string // the type this name carries (one of el.types)
}

// complexType is a resource or a complex data type.
type complexType struct {
	name     string
	resource bool
	// members maps each prefix path ("" for the type itself, "input" for
	// Task.input) to the JSON member names allowed there.
	members map[string]map[string]binding
	// elements lists each prefix's elements in definition order, for
	// required elements and choices.
	elements map[string][]*element
}

type definitions struct {
	version    string
	primitives map[string]*primitive
	types      map[string]*complexType
}

var loaded = sync.OnceValues(load)

// FHIRVersion is the version of the definitions the rules come from.
func FHIRVersion() string {
	d, err := loaded()
	if err != nil {
		return ""
	}
	return d.version
}

func load() (*definitions, error) {
	zr, err := gzip.NewReader(bytes.NewReader(definitionsGz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var t table
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, err
	}
	d := &definitions{version: t.FHIRVersion, primitives: map[string]*primitive{}, types: map[string]*complexType{}}
	for name, p := range t.Primitives {
		prim := &primitive{name: name, json: jsonString}
		switch p.JSON {
		case "boolean":
			prim.json = jsonBoolean
		case "number":
			prim.json = jsonNumber
		}
		if p.Regex != "" {
			if prim.format, err = regexp.Compile(`^(?:` + p.Regex + `)$`); err != nil {
				return nil, err
			}
		}
		prim.fast = fastChecks[name]
		d.primitives[name] = prim
	}
	for name, ty := range t.Types {
		ct := &complexType{name: name, resource: ty.Resource, members: map[string]map[string]binding{}, elements: map[string][]*element{}}
		for _, e := range ty.Elements {
			prefix, last := "", e.Path
			if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
				prefix, last = e.Path[:i], e.Path[i+1:]
			}
			el := &element{name: strings.TrimSuffix(last, "[x]"), min: e.Min, many: e.Many, modifier: e.Modifier,
				types: e.Types, choice: strings.HasSuffix(last, "[x]"), owner: ct}
			switch {
			case e.Ref != "":
				el.children = e.Ref
			case len(e.Types) == 1 && (e.Types[0] == "BackboneElement" || e.Types[0] == "Element"):
				el.children = e.Path
			}
			ct.elements[prefix] = append(ct.elements[prefix], el)
			names := ct.members[prefix]
			if names == nil {
				names = map[string]binding{}
				ct.members[prefix] = names
			}
			if el.choice {
				for _, typ := range el.types {
					names[el.name+strings.ToUpper(typ[:1])+typ[1:]] = binding{el, typ}
				}
			} else {
				typ := ""
				if len(el.types) > 0 {
					typ = el.types[0]
				}
				names[el.name] = binding{el, typ}
			}
		}
		d.types[name] = ct
	}
	return d, nil
}

// IsResourceType reports whether R4 defines a resource of this name.
func IsResourceType(name string) bool {
	d, err := loaded()
	if err != nil {
		return false
	}
	t, ok := d.types[name]
	return ok && t.resource
}
