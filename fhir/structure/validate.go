package structure

import (
	"fmt"
	"strings"

	"github.com/signpost-health/signpost/fhir"
)

// MaxIssues bounds what one validation reports: a body the size limit
// allows could otherwise hold hundreds of thousands of faults, and the
// answer would cost more than the request.
const MaxIssues = 100

// Result is what a validation found.
type Result struct {
	// Issues are the structural problems, in document order; empty when the
	// resource is valid R4. Diagnostics never repeat a value of the body.
	Issues []fhir.Issue
	// Modifiers are the modifierExtensions the resource carries, with where
	// each is: whether they are understood is the receiver's decision.
	Modifiers []Modifier
}

// Modifier is one modifierExtension: its url and where it is.
type Modifier struct {
	URL        string
	Expression string
}

// Valid reports whether no problem was found.
func (r *Result) Valid() bool { return len(r.Issues) == 0 }

// Validate checks one resource, whose type is its own resourceType. The
// body need not have passed any other check first.
func Validate(body []byte) *Result {
	return validate(body, "", false)
}

// ValidateAs checks one resource that must be of the type given.
func ValidateAs(body []byte, resourceType string) *Result {
	return validate(body, resourceType, false)
}

// ValidateChecked is ValidateAs for a body that fhir.ParseResource
// accepted: that check refused duplicate names and invalid UTF-8 already,
// so reading the body again does not look for them. The decode takes about
// 40 % less time (73 -> 49 allocations for the load generator's referral):
// intake reads every referral with both.
func ValidateChecked(body []byte, resourceType string) *Result {
	return validate(body, resourceType, true)
}

func validate(body []byte, want string, checked bool) *Result {
	res := &Result{}
	defs, err := loaded()
	if err != nil {
		res.Issues = append(res.Issues, issue(fhir.IssueException, "", "the R4 definitions could not be loaded"))
		return res
	}
	root, err := decode(body, checked)
	if err != nil {
		res.Issues = append(res.Issues, issue(fhir.IssueStructure, "", "the body is not well-formed JSON"))
		return res
	}
	v := &validator{defs: defs, res: res, extensionBinding: defs.types["Element"].members[""]["extension"]}
	if root.kind != '{' {
		v.add(fhir.IssueStructure, nil, "a resource is a JSON object")
		return res
	}
	rt := root.str("resourceType")
	if want != "" && rt != want {
		v.add(fhir.IssueInvalid, &loc{name: "resourceType"}, "expected a %s", want)
		return res
	}
	v.resource(root, rt, nil, false)
	return res
}

type validator struct {
	defs *definitions
	res  *Result
	full bool // MaxIssues reached
	// extensionBinding is Element.extension, for a primitive's extensions.
	extensionBinding binding
}

func issue(code fhir.IssueType, expr, msg string) fhir.Issue {
	is := fhir.Issue{Severity: fhir.SeverityError, Code: code, Diagnostics: msg}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return is
}

func (v *validator) add(code fhir.IssueType, at *loc, format string, args ...any) {
	if v.full {
		return
	}
	if len(v.res.Issues) == MaxIssues-1 {
		v.full = true
		v.res.Issues = append(v.res.Issues, issue(fhir.IssueTooCostly, "", fmt.Sprintf("more than %d problems: the rest are not listed", MaxIssues-1)))
		return
	}
	v.res.Issues = append(v.res.Issues, issue(code, at.String(), fmt.Sprintf(format, args...)))
}

// resource checks a resource object: the root, a contained resource or a
// Bundle entry's resource. path is its FHIRPath. A contained resource's
// references and invariants are its container's to check: it may refer to
// its siblings.
func (v *validator) resource(n *node, rt string, at *loc, contained bool) {
	if rt == "" {
		if n.member("resourceType") == nil {
			v.add(fhir.IssueRequired, at, "resourceType is required: a resource names its type")
		} else {
			m := at.member("resourceType")
			v.add(fhir.IssueStructure, &m, "resourceType must be a string naming an R4 resource type")
		}
		return
	}
	ct, ok := v.defs.types[rt]
	if !ok || !ct.resource {
		m := at.member("resourceType")
		v.add(fhir.IssueStructure, &m, "not an R4 resource type")
		return
	}
	if at == nil {
		at = &loc{name: rt} // the root: its elements are Type.element
	}
	v.object(n, ct, "", at, true)
	if !contained {
		v.resourceInvariants(n, at)
	}
}

// object checks the members of an object whose definition is the
// elements of ct below prefix.
func (v *validator) object(n *node, ct *complexType, prefix string, at *loc, isResource bool) {
	allowed := ct.members[prefix]
	var seenBuf [16]seenElement
	seen := seenElements(seenBuf[:0]) // element -> the JSON name that carried it
	for _, m := range n.members {
		if v.full {
			return
		}
		name := m.name
		if isResource && name == "resourceType" {
			continue
		}
		here := at.member(name)
		if base, ok := strings.CutPrefix(name, "_"); ok {
			b, known := allowed[base]
			if !known || v.defs.primitives[b.typ] == nil {
				v.add(fhir.IssueStructure, &here, "unknown element: %s has no primitive element of this name for the extension to belong to", describe(ct, prefix))
				continue
			}
			v.primitiveExtensions(m.value, b.el, &here, n.member(base))
			if _, dup := seen.get(b.el); !dup {
				seen = append(seen, seenElement{b.el, base})
			}
			continue
		}
		b, known := allowed[name]
		if !known {
			v.add(fhir.IssueStructure, &here, "unknown element: %s has no element of this name in R4 (names are case-sensitive)", describe(ct, prefix))
			continue
		}
		if other, dup := seen.get(b.el); dup && other != name {
			v.add(fhir.IssueStructure, &here, "%s[x] takes one type: %s and %s are both present", b.el.name, other, name)
			continue
		} else if !dup {
			seen = append(seen, seenElement{b.el, name})
		}
		v.value(m.value, b, &here, n.member("_"+name))
	}
	for _, el := range ct.elements[prefix] {
		if el.min > 0 {
			if _, ok := seen.get(el); !ok {
				name := el.name
				if el.choice {
					name += "[x]"
				}
				missing := at.member(name)
				v.add(fhir.IssueRequired, &missing, "%s is required (minimum cardinality %d)", name, el.min)
			}
		}
	}
}

// seenElements records which element each member of an object stood for
// (a choice's several names stand for one element), in a slice rather than
// a map: an object has few members.
type seenElements []seenElement

type seenElement struct {
	el   *element
	name string
}

func (s seenElements) get(el *element) (string, bool) {
	for _, e := range s {
		if e.el == el {
			return e.name, true
		}
	}
	return "", false
}

// value checks one member's value against its element: the array or
// single form its cardinality asks for, then each item.
func (v *validator) value(n *node, b binding, at *loc, ext *node) {
	el := b.el
	if n.kind == '[' {
		if !el.many {
			v.add(fhir.IssueStructure, at, "%s takes one value, not an array", el.name)
			return
		}
		if len(n.items) == 0 {
			v.add(fhir.IssueStructure, at, "an empty array is not allowed: leave the element out")
			return
		}
		for i, item := range n.items {
			var itemExt *node
			if ext != nil && ext.kind == '[' && i < len(ext.items) && ext.items[i].kind == '{' {
				itemExt = ext.items[i]
			}
			p := at.item(i)
			if item.kind == 'n' {
				if itemExt == nil {
					v.add(fhir.IssueStructure, &p, "null is allowed in an array only where the matching _%s item carries extensions", el.name)
				}
				continue
			}
			v.item(item, b, &p)
		}
		return
	}
	if el.many {
		v.add(fhir.IssueStructure, at, "%s is an array in FHIR JSON, even with one value", el.name)
		return
	}
	if n.kind == 'n' {
		v.add(fhir.IssueStructure, at, "null is not allowed: leave the element out")
		return
	}
	v.item(n, b, at)
}

// item checks one value of an element.
func (v *validator) item(n *node, b binding, at *loc) {
	if p := v.defs.primitives[b.typ]; p != nil {
		v.primitive(n, p, at)
		return
	}
	if n.kind != '{' {
		v.add(fhir.IssueStructure, at, "expected a JSON object (%s)", b.typ)
		return
	}
	if len(n.members) == 0 {
		v.add(fhir.IssueStructure, at, "an empty object is not allowed: an element has a value or children (ele-1)")
		return
	}
	switch {
	case b.typ == "Resource":
		v.resource(n, n.str("resourceType"), at, b.el.name == "contained")
	case b.el.children != "":
		v.object(n, b.el.owner, b.el.children, at, false)
		v.elementInvariants(n, at)
	default:
		ct := v.defs.types[b.typ]
		if ct == nil {
			v.add(fhir.IssueStructure, at, "type %s is not defined in R4", b.typ)
			return
		}
		if ct.resource { // an element whose type is one resource type (Bundle.entry.response.outcome)
			if rt := n.str("resourceType"); rt != b.typ {
				m := at.member("resourceType")
				v.add(fhir.IssueStructure, &m, "expected a %s", b.typ)
				return
			}
			v.resource(n, b.typ, at, false)
			return
		}
		v.object(n, ct, "", at, false)
		v.typeInvariants(n, b.typ, at)
		v.elementInvariants(n, at)
	}
	if b.el.name == "modifierExtension" {
		v.res.Modifiers = append(v.res.Modifiers, Modifier{URL: n.str("url"), Expression: at.String()})
	}
}

// elementInvariants are ele-1's "value or children" for objects whose only
// member is an id.
func (v *validator) elementInvariants(n *node, at *loc) {
	if len(n.members) == 1 && n.members[0].name == "id" {
		v.add(fhir.IssueInvariant, at, "an element has a value or children besides its id (ele-1)")
	}
}

// primitiveExtensions checks a primitive's "_name" companion: an object
// (or, for an array, an array of objects and nulls as long as the values)
// holding only id and extension.
func (v *validator) primitiveExtensions(n *node, el *element, at *loc, val *node) {
	check := func(item *node, p *loc) {
		if item.kind != '{' {
			v.add(fhir.IssueStructure, p, "a primitive's extensions are a JSON object with id and extension")
			return
		}
		if len(item.members) == 0 {
			v.add(fhir.IssueStructure, p, "an empty object is not allowed (ele-1)")
			return
		}
		for _, m := range item.members {
			here := p.member(m.name)
			switch m.name {
			case "id":
				v.primitive(m.value, v.defs.primitives["string"], &here)
			case "extension":
				v.value(m.value, v.extensionBinding, &here, nil)
			default:
				v.add(fhir.IssueStructure, &here, "a primitive's extensions hold only id and extension")
			}
		}
	}
	if el.many {
		if n.kind != '[' {
			v.add(fhir.IssueStructure, at, "the extensions of a repeating primitive are an array")
			return
		}
		if val != nil && (val.kind != '[' || len(val.items) != len(n.items)) {
			v.add(fhir.IssueStructure, at, "the array of extensions must be as long as the array of values it belongs to")
		}
		for i, item := range n.items {
			p := at.item(i)
			if item.kind == 'n' {
				if val == nil || val.kind != '[' || i >= len(val.items) || val.items[i].kind == 'n' {
					v.add(fhir.IssueStructure, &p, "a value and its extensions cannot both be null")
				}
				continue
			}
			check(item, &p)
		}
		return
	}
	check(n, at)
}

// describe names a place for a message: "Task" or "Task.input".
func describe(ct *complexType, prefix string) string {
	if prefix == "" {
		return ct.name
	}
	return ct.name + "." + prefix
}
