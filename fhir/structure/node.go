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
// data are errors.
func decode(body []byte) (*node, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	var a arena
	n, err := a.readNode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err == nil {
		return nil, errors.New("trailing data after the resource")
	}
	return n, nil
}

// arena hands out nodes from blocks, one allocation for many: a referral
// holds a hundred or so values.
type arena struct{ free []node }

func (a *arena) node() *node {
	if len(a.free) == 0 {
		a.free = make([]node, 64)
	}
	n := &a.free[0]
	a.free = a.free[1:]
	return n
}

func (a *arena) readNode(dec *jsontext.Decoder, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	n := a.node()
	n.kind = tok.Kind()
	switch n.kind {
	case '{':
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			name := tok.String() // before the next read voids the token
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
	case '"':
		n.text = tok.String()
	case '0':
		n.text = tok.String()
	}
	return n, nil
}
