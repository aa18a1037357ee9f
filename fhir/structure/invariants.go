package structure

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/signpost-health/signpost/fhir"
)

// The invariants every resource and data type shares, which the element
// table cannot express. Each message names the R4 constraint key, so a
// sender can look it up.

// resourceInvariants checks a resource's contained resources (dom-2 to
// dom-5 and dom-3's references) and its local references (ref-1).
func (v *validator) resourceInvariants(n *node, at *loc) {
	contained := n.member("contained")
	containedAt := at.member("contained")
	var ids map[string]bool
	if contained != nil && contained.kind == '[' {
		ids = make(map[string]bool, len(contained.items))
		for i, c := range contained.items {
			if c.kind != '{' {
				continue
			}
			p := containedAt.item(i)
			if c.member("contained") != nil {
				m := p.member("contained")
				v.add(fhir.IssueInvariant, &m, "a contained resource cannot contain resources itself (dom-2)")
			}
			if meta := c.member("meta"); meta != nil {
				m := p.member("meta")
				if meta.member("versionId") != nil || meta.member("lastUpdated") != nil {
					v.add(fhir.IssueInvariant, &m, "a contained resource has no meta.versionId or meta.lastUpdated: it is versioned with its container (dom-4)")
				}
				if meta.member("security") != nil {
					s := m.member("security")
					v.add(fhir.IssueInvariant, &s, "a contained resource has no security labels of its own (dom-5)")
				}
			}
			id := c.str("id")
			if id == "" {
				m := p.member("id")
				v.add(fhir.IssueInvariant, &m, "a contained resource needs an id, by which its container refers to it (dom-3)")
				continue
			}
			if ids[id] {
				m := p.member("id")
				v.add(fhir.IssueInvariant, &m, "two contained resources have the same id")
			}
			ids[id] = true
		}
	}
	// Every local reference ("#id") in the resource, contained ones included.
	w := refWalker{}
	w.walk(n, at, -1, 0)
	for _, r := range w.refs {
		switch {
		case r.whitespace:
			v.add(fhir.IssueValue, &loc{name: r.where}, "a reference is a URL or Type/id and holds no whitespace")
		case !ids[r.id]:
			v.add(fhir.IssueInvariant, &loc{name: r.where}, "the local reference names no contained resource (ref-1)")
		}
	}
	if contained != nil && contained.kind == '[' {
		for i, c := range contained.items {
			if id := c.str("id"); id != "" && !w.named[id] && !w.toContainer[i] {
				p := containedAt.item(i)
				v.add(fhir.IssueInvariant, &p, "a contained resource must be referred to from elsewhere in the resource, or refer to it (dom-3)")
			}
		}
	}
}

// refWalker finds the references of a resource that its invariants are
// about: local ones ("#id") and ones holding whitespace. A place is turned
// into a FHIRPath only for those; a resource's other references cost
// nothing but the walk.
type refWalker struct {
	refs        []foundRef
	named       map[string]bool // contained ids some reference, canonical or uri names
	toContainer map[int]bool    // contained resources that refer to their container ("#")
}

type foundRef struct {
	id         string // the local id referred to
	where      string
	whitespace bool
}

// walk visits every value below n (without entering a Bundle's entries,
// which are resources of their own); in is the index of the contained
// resource it is in (-1: none).
func (w *refWalker) walk(n *node, at *loc, in int, depth int) {
	switch n.kind {
	case '"':
		if strings.HasPrefix(n.text, "#") { // a canonical or uri may name a contained resource too
			w.name(n.text[1:])
		}
	case '{':
		for _, m := range n.members {
			switch {
			case m.name == "reference" && m.value.kind == '"':
				w.reference(m.value.text, at, in)
			case depth == 0 && m.name == "contained" && m.value.kind == '[':
				p := at.member(m.name)
				for i, c := range m.value.items {
					ci := p.item(i)
					w.walk(c, &ci, i, depth+1)
				}
			case depth == 0 && m.name == "entry" && n.str("resourceType") == "Bundle":
				// entries are resources of their own, checked on their own
			default:
				p := at.member(m.name)
				w.walk(m.value, &p, in, depth+1)
			}
		}
	case '[':
		for i, item := range n.items {
			p := at.item(i)
			w.walk(item, &p, in, depth+1)
		}
	}
}

// reference notes a Reference.reference of the object at.
func (w *refWalker) reference(ref string, at *loc, in int) {
	switch {
	case ref == "#":
		if w.toContainer == nil {
			w.toContainer = map[int]bool{}
		}
		w.toContainer[in] = true
	case strings.HasPrefix(ref, "#"):
		w.name(ref[1:])
		p := at.member("reference")
		w.refs = append(w.refs, foundRef{id: ref[1:], where: p.String()})
	case strings.ContainsFunc(ref, unicode.IsSpace):
		p := at.member("reference")
		w.refs = append(w.refs, foundRef{where: p.String(), whitespace: true})
	}
}

func (w *refWalker) name(id string) {
	if w.named == nil {
		w.named = map[string]bool{}
	}
	w.named[id] = true
}

// typeInvariants checks the rules of data types: an extension has a value
// or extensions, not both, nor neither (ext-1).
func (v *validator) typeInvariants(n *node, typ string, at *loc) {
	if typ != "Extension" {
		return
	}
	hasExt := n.member("extension") != nil
	hasValue := false
	for _, m := range n.members {
		if strings.HasPrefix(m.name, "value") || strings.HasPrefix(m.name, "_value") {
			hasValue = true
		}
	}
	switch {
	case hasExt && hasValue:
		v.add(fhir.IssueInvariant, at, "an extension has either a value or nested extensions, not both (ext-1)")
	case !hasExt && !hasValue:
		v.add(fhir.IssueInvariant, at, "an extension has a value or nested extensions (ext-1)")
	}
}

// The XHTML a narrative may use (txt-1): the basic formatting elements and
// attributes of HTML 4.0 chapters 7-11 and 15, links, images and style
// attributes; no scripts, forms, frames or event handlers.
var (
	xhtmlElements = set("p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "b", "em", "i", "strong",
		"small", "big", "tt", "dfn", "q", "var", "abbr", "acronym", "cite", "blockquote", "hr", "address", "bdo", "kbd",
		"sub", "sup", "ul", "ol", "li", "dl", "dt", "dd", "pre", "table", "caption", "colgroup", "col", "thead", "tr",
		"tfoot", "tbody", "th", "td", "code", "samp", "img", "map", "area", "ins", "del", "u", "s", "strike", "center",
		"font", "label", "legend", "fieldset")
	xhtmlAttributes = set("title", "style", "class", "id", "lang", "dir", "accesskey", "tabindex", "href", "name", "src",
		"alt", "border", "cellpadding", "cellspacing", "colspan", "rowspan", "align", "valign", "width", "height", "span",
		"char", "charoff", "abbr", "axis", "headers", "scope", "summary", "frame", "rules", "type", "start", "value",
		"compact", "shape", "coords", "usemap", "nowrap", "bgcolor", "color", "size", "face", "cite", "datetime",
		"clear", "hspace", "vspace", "longdesc", "hreflang", "rel", "rev", "charset", "xmlns")
)

const xhtmlNamespace = "http://www.w3.org/1999/xhtml"

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// xhtml checks a narrative's div: well-formed XML, one div element in the
// XHTML namespace, only the elements and attributes txt-1 allows, and some
// text or an image (txt-2).
func (v *validator) xhtml(s string, at *loc) {
	if !plainNarrative(s) {
		v.decodedXHTML(s, at)
	}
}

// decodedXHTML makes xhtml's check through the XML decoder: the definition
// of it, for any div.
func (v *validator) decodedXHTML(s string, at *loc) {
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	depth, roots, content := 0, 0, false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			v.add(fhir.IssueValue, at, "the narrative is not well-formed XHTML")
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if t.Name.Local != "div" || t.Name.Space != xhtmlNamespace {
					v.add(fhir.IssueValue, at, "the narrative is one div element in the XHTML namespace (%s)", xhtmlNamespace)
					return
				}
			}
			if t.Name.Space != xhtmlNamespace || !xhtmlElements[t.Name.Local] {
				v.add(fhir.IssueValue, at, "the narrative uses an element that is not basic XHTML formatting (txt-1)")
				return
			}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				if a.Name.Space == "xml" && a.Name.Local == "lang" || a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
					continue
				}
				if !xhtmlAttributes[strings.ToLower(a.Name.Local)] || (a.Name.Space != "" && a.Name.Space != xhtmlNamespace) {
					v.add(fhir.IssueValue, at, "the narrative uses an attribute that is not basic XHTML formatting (txt-1)")
					return
				}
				if l := strings.ToLower(strings.TrimSpace(a.Value)); strings.HasPrefix(l, "javascript:") || strings.HasPrefix(l, "vbscript:") {
					v.add(fhir.IssueValue, at, "the narrative holds a script link (txt-1)")
					return
				}
			}
			if t.Name.Local == "img" {
				content = true
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				if strings.TrimSpace(string(t)) != "" {
					v.add(fhir.IssueValue, at, "the narrative is one div element, with nothing outside it")
					return
				}
				continue
			}
			if strings.TrimSpace(string(t)) != "" {
				content = true
			}
		case xml.ProcInst, xml.Directive:
			v.add(fhir.IssueValue, at, "the narrative holds no processing instructions or declarations")
			return
		}
	}
	switch {
	case roots != 1:
		v.add(fhir.IssueValue, at, "the narrative is one div element in the XHTML namespace (%s)", xhtmlNamespace)
	case !content:
		v.add(fhir.IssueInvariant, at, "the narrative has some text (txt-2)")
	}
}

// plainNarrative says whether a narrative's div is of the plain kind most
// are, for which txt-1 and txt-2 hold: the div with exactly its namespace
// declaration, then text (some of it not whitespace) and allowed elements
// with no attributes, no entities, no images, no comments or declarations,
// each element closed in order, nothing after the div. It decides that in
// one pass over the string, where the XML decoder, allocating every token,
// was a fifth of validating the load generator's referral. false only
// means "not plain": the XML decoder then decides, and alone reports what
// is wrong. FuzzPlainNarrativeIsValid holds it to that decoder's check:
// whatever it accepts, the check accepts.
func plainNarrative(s string) bool {
	const root = `<div xmlns="` + xhtmlNamespace + `">`
	if !strings.HasPrefix(s, root) {
		return false
	}
	var open [plainDepth]string // the elements open, the div first
	open[0] = "div"
	depth, text := 1, false
	for i := len(root); i < len(s); {
		switch c := s[i]; c {
		case '<':
			end := strings.IndexByte(s[i:], '>')
			if end < 0 {
				return false
			}
			tag := s[i+1 : i+end]
			i += end + 1
			switch {
			case strings.HasPrefix(tag, "/"):
				if open[depth-1] != tag[1:] {
					return false
				}
				if depth--; depth == 0 {
					return i == len(s) && text
				}
			case strings.HasSuffix(tag, "/"):
				if !plainElement(tag[:len(tag)-1]) {
					return false
				}
			default:
				if !plainElement(tag) || depth == plainDepth {
					return false
				}
				open[depth] = tag
				depth++
			}
		case '&', '>':
			// An entity or character reference, or what might end a CDATA
			// section: the decoder's to read.
			return false
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || !xmlChar(r) {
				return false
			}
			text = text || !unicode.IsSpace(r)
			i += size
		}
	}
	return false // the div is not closed
}

// plainDepth is how deeply a plain narrative's elements nest, at most.
const plainDepth = 16

// plainElement is an element a plain narrative may hold: one txt-1 allows,
// without attributes (the whole tag is its name), other than an image
// (which counts as content for txt-2, and has attributes to check).
func plainElement(tag string) bool {
	return tag != "img" && xhtmlElements[tag]
}

// xmlChar is XML 1.0's Char production, the characters a document may hold.
func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
