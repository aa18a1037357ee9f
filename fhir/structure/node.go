package structure

import (
	"bytes"
	"errors"

	"github.com/go-json-experiment/json/jsontext"
)

// node is one JSON value, with object members in the order they were sent.
// Validation reads the whole resource once, so it is decoded once into this
// small tree rather than re-scanned per element.
type node struct {
	kind    jsontext.Kind // '{', '[', '"', '0', 't', 'f', 'n'
	text    string        // a string's value, or a number as written
	members []member
	items   []*node
}

type member struct {
	name  string
	value *node
}

func (n *node) member(name string) *node {
	if n == nil || n.kind != '{' {
		return nil
	}
	for i := range n.members {
		if n.members[i].name == name {
			return n.members[i].value
		}
	}
	return nil
}

func (n *node) str(name string) string {
	if v := n.member(name); v != nil && v.kind == '"' {
		return v.text
	}
	return ""
}

// maxDepth bounds the tree however the body came: the gateway's raw checks
// allow 64 levels, this a few more so that they, not this, report depth.
const maxDepth = 100

var errDepth = errors.New("nested too deeply")

// decode reads one JSON value; duplicate names, invalid UTF-8 and trailing
// data are errors, except that a body already checked for the first two
// (checked: fhir.ParseResource accepted it) is not checked for them again.
func decode(body []byte, checked bool) (*node, error) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(checked), jsontext.AllowInvalidUTF8(checked))
	// A bytes.Buffer is read in place (jsontext copies any other reader
	// into a buffer of its own), and strings and numbers are cut from one
	// copy of the body rather than copied one by one: a referral holds a
	// hundred or so. BenchmarkValidateLoadBody: 268 → 195 allocations,
	// 17.3 → 15.7 KB.
	a := arena{src: string(body)}
	n, err := a.readNode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err == nil {
		return nil, errors.New("trailing data after the resource")
	}
	return n, nil
}

// arena hands out nodes from blocks, one allocation for many, and the text
// of strings and numbers from src, the body as a string.
type arena struct {
	free []node
	src  string
}

func (a *arena) node() *node {
	if len(a.free) == 0 {
		a.free = make([]node, 64)
	}
	n := &a.free[0]
	a.free = a.free[1:]
	return n
}

// text is the value of the string or number raw that dec just read: a
// string unquoted (escapes decoded), a number as written.
func (a *arena) text(dec *jsontext.Decoder, raw jsontext.Value) (string, error) {
	end := int(dec.InputOffset())
	start := end - len(raw)
	if raw.Kind() != '"' {
		return a.src[start:end], nil
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return a.src[start+1 : end-1], nil
	}
	b, err := jsontext.AppendUnquote(nil, raw)
	return string(b), err
}

func (a *arena) readNode(dec *jsontext.Decoder, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	n := a.node()
	switch n.kind = dec.PeekKind(); n.kind {
	case '{':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		for dec.PeekKind() != '}' {
			raw, err := dec.ReadValue() // the member's name
			if err != nil {
				return nil, err
			}
			name, err := a.text(dec, raw)
			if err != nil {
				return nil, err
			}
			v, err := a.readNode(dec, depth+1)
			if err != nil {
				return nil, err
			}
			n.members = append(n.members, member{name, v})
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		for dec.PeekKind() != ']' {
			v, err := a.readNode(dec, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
	case '"', '0':
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		if n.text, err = a.text(dec, raw); err != nil {
			return nil, err
		}
	default: // true, false, null; or not JSON, which the read reports
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		n.kind = tok.Kind()
	}
	return n, nil
}
