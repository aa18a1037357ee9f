package fhir

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The raw layer exists because encoding/json and the typed FHIR models are
// both too forgiving for an API that stores what it is sent: encoding/json
// lets the last of two duplicate or case-variant keys win, and the typed
// models silently drop unknown elements and primitive extensions ("_status").
// A body is therefore checked here, byte for byte, before anything else reads
// it, and the bytes the client sent are what Signpost keeps and serves.

// DefaultMaxDepth is the nesting limit used when ParseOptions.MaxDepth is
// zero. Real FHIR resources stay far below it (a contained resource with an
// extension inside an extension is around 8), so anything deeper is either a
// mistake or an attempt to make the server do work.
const DefaultMaxDepth = 64

// RawErrorKind says which rule a body broke, so callers can pick an
// OperationOutcome issue code without parsing the message.
type RawErrorKind uint8

// The zero RawErrorKind is not used, so a forgotten Kind is visible.
const (
	Syntax              RawErrorKind = iota + 1 // not well-formed JSON
	InvalidUTF8                                 // a string is not valid UTF-8 or has a lone UTF-16 surrogate escape
	TrailingData                                // something other than whitespace follows the object
	DuplicateKey                                // a key appears twice in one object
	CaseVariantKey                              // two keys in one object differ only in letter case
	TooDeep                                     // objects and arrays nest deeper than MaxDepth
	NotObject                                   // the body is an array, string, number or literal
	MissingResourceType                         // no top-level "resourceType"
	BadResourceType                             // "resourceType" is not a string naming a resource type
)

var rawKindNames = [...]string{
	Syntax:              "syntax",
	InvalidUTF8:         "invalid-utf8",
	TrailingData:        "trailing-data",
	DuplicateKey:        "duplicate-key",
	CaseVariantKey:      "case-variant-key",
	TooDeep:             "too-deep",
	NotObject:           "not-object",
	MissingResourceType: "missing-resource-type",
	BadResourceType:     "bad-resource-type",
}

func (k RawErrorKind) String() string {
	if int(k) < len(rawKindNames) && rawKindNames[k] != "" {
		return rawKindNames[k]
	}
	return "RawErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// RawError is one thing wrong with a body. It carries a location that an
// OperationOutcome can report as issue.expression, and a message that is safe
// to return to the sender and to log: it may quote element names but never a
// value, because values may be patient data.
type RawError struct {
	Kind       RawErrorKind
	Expression string // FHIRPath-like location, e.g. "Patient.identifier[1].system"; "" when there is none
	Offset     int64  // byte offset in the body where the problem was detected
	Message    string
}

func (e *RawError) Error() string {
	var b strings.Builder
	b.WriteString("fhir: ")
	b.WriteString(e.Message)
	if e.Expression != "" {
		b.WriteString(" at ")
		b.WriteString(e.Expression)
	}
	b.WriteString(" (byte offset ")
	b.WriteString(strconv.FormatInt(e.Offset, 10))
	b.WriteByte(')')
	return b.String()
}

// ParseOptions tunes ParseResource. The zero value is what the gateway uses.
type ParseOptions struct {
	// MaxDepth limits how deeply objects and arrays nest. The resource object
	// itself is level 1, so {"a":[{}]} is 3 levels deep. Zero or less means
	// DefaultMaxDepth.
	MaxDepth int
}

// Object is a JSON object whose members keep the exact bytes they were sent
// with, so that what Signpost stores and serves is the client's own encoding
// (number literals, escapes, primitive extensions, unknown elements) rather
// than a re-serialisation. Member values alias the parsed body, which must
// therefore not be modified while the Object is in use. An Object is
// read-only and safe for concurrent use.
type Object struct {
	raw          []byte // the whole object, '{' to '}'
	members      []rawMember
	resourceType string
}

type rawMember struct {
	name    string // decoded
	rawName []byte // the name token as sent, quotes included
	value   []byte
}

// ParseResource checks an untrusted request body and returns its top-level
// object. It rejects everything that the usual decoders would quietly accept
// and resolve in an arbitrary way (duplicate keys, keys that differ only in
// case, invalid UTF-8, data after the object), bounds nesting so a small body
// cannot cost a lot, and requires a plausible "resourceType". It reads the
// body once, and errors are always *RawError.
func ParseResource(body []byte, opt ParseOptions) (*Object, error) {
	maxDepth := opt.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	p := rawParserPool.Get().(*rawParser)
	o, rerr := p.parse(body, maxDepth)
	p.release()
	if rerr != nil {
		return nil, rerr
	}
	return o, nil
}

// Names under which FHIR keeps resource-level bookkeeping.
const (
	rawResourceType = "resourceType"
	rawReference    = "reference"
)

// rawStrictOpts leaves duplicate names to our own check: that check has to
// compare every name in an object anyway to find case variants, and finding
// exact duplicates there too avoids a second name table in the decoder.
// Invalid UTF-8 is still rejected by the decoder.
var rawStrictOpts = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(false),
}

// rawTrustedOpts is for bytes that ParseResource has already checked.
var rawTrustedOpts = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}

// rawWalkOpts is for RewriteReferences, whose input may not have been
// through ParseResource: it must not splice into a body that has duplicates
// a later reader would resolve differently.
var rawWalkOpts = []jsontext.Options{
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
}

// rawIndexThreshold is the member count above which an object's names are
// looked up through a map instead of a linear scan, so that an object with
// very many members costs linear rather than quadratic time.
const rawIndexThreshold = 48

// rawParser holds the reusable state of one parse. Parsers are pooled so
// that a parse of a typical resource allocates only the returned Object.
type rawParser struct {
	dec     jsontext.Decoder
	src     bytes.Buffer
	body    []byte
	frames  []rawFrame
	names   []rawName
	arena   []byte // decoded names that had escapes
	members []rawSpanMember
	root    string // resource type, once known, for error expressions
	rootRaw []byte // the top-level resource type once read, if valid
	maps    []map[uint64]int
	nmaps   int // maps in use
}

// rawFrame is one open object or array.
type rawFrame struct {
	obj        bool
	expectName bool
	first      int            // index in names of this object's first name
	arenaMark  int            // len(arena) when the object was opened
	cur        int            // index in names of the member being read
	idx        int            // index of the array element being read
	index      map[uint64]int // fold hash → newest name with it, for big objects
	valStart   int            // start of the current member value (top level only)
}

// rawName is an object member name, decoded, with its case-folded hash.
type rawName struct {
	hash     uint64
	start    int // decoded bytes are body[start:end], or arena[start:end] if esc
	end      int
	esc      bool
	tokStart int // offset of the opening quote
	prev     int // older name of the same object with the same hash, or -1 (map mode only)
}

type rawSpanMember struct {
	name               int // index in names
	nameStart, nameEnd int
	valStart, valEnd   int
}

var rawParserPool = sync.Pool{New: func() any { return new(rawParser) }}

// rawDec is a pooled decoder for the secondary readers (Object, Array,
// References, RewriteReferences), so they do not allocate one per call.
type rawDec struct {
	dec jsontext.Decoder
	src bytes.Buffer
}

var rawDecPool = sync.Pool{New: func() any { return new(rawDec) }}

func rawGetDec(b []byte, opts []jsontext.Options) *rawDec {
	d := rawDecPool.Get().(*rawDec)
	d.src = *bytes.NewBuffer(b)
	d.dec.Reset(&d.src, opts...)
	return d
}

func (d *rawDec) put() {
	d.src = bytes.Buffer{}
	d.dec.Reset(&d.src) // drop the reference to the input
	rawDecPool.Put(d)
}

// rawPoolLimit keeps one huge body from pinning large buffers in the pool.
const rawPoolLimit = 1 << 12

func (p *rawParser) release() {
	p.src = bytes.Buffer{}
	p.dec.Reset(&p.src) // drop the decoder's reference to the body
	p.body = nil
	p.root, p.rootRaw = "", nil
	for _, m := range p.maps {
		if len(m) > rawPoolLimit {
			p.maps = nil // let a huge index go
			break
		}
	}
	for i := range p.frames {
		p.frames[i].index = nil
	}
	if cap(p.frames) > rawPoolLimit || cap(p.names) > rawPoolLimit || cap(p.members) > rawPoolLimit || cap(p.arena) > 64*rawPoolLimit {
		return
	}
	p.frames, p.names, p.arena, p.members = p.frames[:0], p.names[:0], p.arena[:0], p.members[:0]
	rawParserPool.Put(p)
}

// newIndex hands out a name index, reusing those of earlier parses and of
// objects already closed. Only the innermost open object can be adding
// names, so the objects holding an index are always the oldest open ones
// and a counter is enough to track them.
func (p *rawParser) newIndex() map[uint64]int {
	if p.nmaps < len(p.maps) {
		m := p.maps[p.nmaps]
		clear(m)
		p.nmaps++
		return m
	}
	m := make(map[uint64]int, 2*rawIndexThreshold)
	p.maps = append(p.maps, m)
	p.nmaps++
	return m
}

func (p *rawParser) nameBytes(n *rawName) []byte {
	if n.esc {
		return p.arena[n.start:n.end]
	}
	return p.body[n.start:n.end]
}

func (p *rawParser) parse(body []byte, maxDepth int) (*Object, *RawError) {
	p.body = body
	p.frames, p.names, p.arena, p.members = p.frames[:0], p.names[:0], p.arena[:0], p.members[:0]
	p.nmaps = 0
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return nil, &RawError{Kind: Syntax, Message: "a byte order mark before the JSON object is not allowed: expected '{'"}
	}
	p.src = *bytes.NewBuffer(body)
	p.dec.Reset(&p.src, rawStrictOpts...)

	objStart := 0
	for {
		p0 := int(p.dec.InputOffset())
		tok, err := p.dec.ReadToken()
		if err != nil {
			if err == io.EOF && len(p.frames) == 0 {
				return nil, &RawError{Kind: Syntax, Offset: int64(len(body)), Message: "empty body: expected a JSON object"}
			}
			return nil, p.decodeError(err)
		}
		p1 := int(p.dec.InputOffset())
		k := tok.Kind()
		n := len(p.frames)
		if n == 0 {
			if k != '{' {
				return nil, &RawError{Kind: NotObject, Offset: int64(rawSkipSep(body, p0)),
					Message: "expected a JSON object (a FHIR resource), found " + rawKindPhrase(k)}
			}
			objStart = p1 - 1
			p.frames = append(p.frames, rawFrame{obj: true, expectName: true})
			continue
		}
		f := &p.frames[n-1]
		switch {
		case k == '}' || k == ']':
			if n == 1 {
				return p.finish(objStart, p1) // needs the top-level names
			}
			p.pop()
			p.afterValue(p1)
		case f.obj && f.expectName:
			if rerr := p.addName(f, rawSkipSep(body, p0), p1); rerr != nil {
				return nil, rerr
			}
			f.expectName = false
			if n == 1 {
				p.members = append(p.members, rawSpanMember{name: f.cur, nameStart: p.names[f.cur].tokStart, nameEnd: p1})
			}
		case k == '{' || k == '[':
			if n == 1 {
				f.valStart = p1 - 1
			}
			if n+1 > maxDepth {
				return nil, &RawError{Kind: TooDeep, Expression: string(p.path(n)), Offset: int64(p1 - 1),
					Message: "nesting deeper than " + strconv.Itoa(maxDepth) + " levels (each object or array is a level; the resource is level 1)"}
			}
			p.frames = append(p.frames, rawFrame{obj: k == '{', expectName: k == '{', first: len(p.names), arenaMark: len(p.arena)})
		default:
			if n == 1 {
				f.valStart = rawSkipSep(body, p0)
			}
			p.afterValue(p1)
		}
	}
}

// pop closes the innermost frame and forgets its names.
func (p *rawParser) pop() {
	f := &p.frames[len(p.frames)-1]
	if f.obj {
		p.names = p.names[:f.first]
		p.arena = p.arena[:f.arenaMark]
		if f.index != nil {
			f.index = nil
			p.nmaps-- // indexes are taken and given back in stack order
		}
	}
	p.frames = p.frames[:len(p.frames)-1]
}

// afterValue moves the innermost frame past a value that ended at end.
func (p *rawParser) afterValue(end int) {
	n := len(p.frames)
	f := &p.frames[n-1]
	if !f.obj {
		f.idx++
		return
	}
	f.expectName = true
	if n != 1 {
		return
	}
	m := &p.members[len(p.members)-1]
	m.valStart, m.valEnd = f.valStart, end
	if p.rootRaw == nil && string(p.nameBytes(&p.names[m.name])) == rawResourceType {
		if rt, ok := rawResourceTypeBytes(p.body[m.valStart:m.valEnd]); ok {
			p.rootRaw = rt
		}
	}
}

// addName records a member name of frame f, rejecting exact duplicates and
// case variants of names already in the object.
func (p *rawParser) addName(f *rawFrame, tokStart, tokEnd int) *RawError {
	if tokStart+2 > tokEnd || tokEnd > len(p.body) {
		return &RawError{Kind: Syntax, Offset: int64(tokStart), Message: "expected a member name in double quotes"}
	}
	n := rawName{tokStart: tokStart, prev: -1}
	inner := p.body[tokStart+1 : tokEnd-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		n.start, n.end = tokStart+1, tokEnd-1
	} else {
		mark := len(p.arena)
		p.arena, _ = jsontext.AppendUnquote(p.arena, p.body[tokStart:tokEnd])
		n.start, n.end, n.esc = mark, len(p.arena), true
	}
	name := p.nameBytes(&n)
	n.hash = rawFoldHash(name)

	if f.index != nil {
		if j, ok := f.index[n.hash]; ok {
			n.prev = j
			for ; j >= 0; j = p.names[j].prev {
				if rerr := p.compareNames(j, name, tokStart); rerr != nil {
					return rerr
				}
			}
		}
	} else {
		for j := f.first; j < len(p.names); j++ {
			if p.names[j].hash == n.hash {
				if rerr := p.compareNames(j, name, tokStart); rerr != nil {
					return rerr
				}
			}
		}
	}
	p.names = append(p.names, n)
	f.cur = len(p.names) - 1
	if f.index != nil {
		f.index[n.hash] = f.cur
	} else if f.cur-f.first >= rawIndexThreshold {
		f.index = p.newIndex()
		for i := f.first; i <= f.cur; i++ {
			e := &p.names[i]
			e.prev = -1
			if j, ok := f.index[e.hash]; ok {
				e.prev = j
			}
			f.index[e.hash] = i
		}
	}
	return nil
}

// compareNames reports name (being added at tokStart) against the earlier
// name j of the same object if they are equal or differ only in case.
func (p *rawParser) compareNames(j int, name []byte, tokStart int) *RawError {
	other := p.nameBytes(&p.names[j])
	if !bytes.EqualFold(other, name) {
		return nil // hash collision
	}
	expr := rawAppendSegment(p.path(len(p.frames)-1), name)
	if bytes.Equal(other, name) {
		return &RawError{Kind: DuplicateKey, Expression: string(expr), Offset: int64(tokStart),
			Message: "duplicate key " + rawQuote(name) + " (each element may appear once)"}
	}
	return &RawError{Kind: CaseVariantKey, Expression: string(expr), Offset: int64(tokStart),
		Message: "keys " + rawQuote(other) + " and " + rawQuote(name) +
			" differ only in case; FHIR element names are case-sensitive and each may appear once"}
}

// path renders the location of the value currently being read in frame
// depth-1, i.e. the root followed by the current member or element of
// frames[0:depth].
func (p *rawParser) path(depth int) []byte {
	root := p.errorRoot()
	b := make([]byte, 0, len(root)+16*depth)
	b = append(b, root...)
	for k := 0; k < depth && k < len(p.frames); k++ {
		f := &p.frames[k]
		if f.obj {
			b = rawAppendSegment(b, p.nameBytes(&p.names[f.cur]))
		} else {
			b = rawAppendIndex(b, f.idx)
		}
	}
	return b
}

// errorRoot finds the resource type for an error expression. The parse may
// stop before it reaches "resourceType", so on that (error) path the top
// level is scanned again, leniently, just for that member.
func (p *rawParser) errorRoot() string {
	if p.root == "" && p.rootRaw != nil {
		p.root = string(p.rootRaw)
	}
	if p.root == "" {
		p.root = rawFindResourceType(p.body)
		if p.root == "" {
			p.root = "\x00" // looked, found nothing
		}
	}
	if p.root == "\x00" {
		return ""
	}
	return p.root
}

func (p *rawParser) decodeError(err error) *RawError {
	n := len(p.frames)
	wantName := n > 0 && p.frames[n-1].obj && p.frames[n-1].expectName
	return rawDecodeError(err, p.body, wantName, p.errorRoot, func(k int) bool {
		return k < len(p.frames) && !p.frames[k].obj
	})
}

// finish checks what follows the object and the resource type, and builds
// the Object.
func (p *rawParser) finish(objStart, objEnd int) (*Object, *RawError) {
	body := p.body
	if i := rawSkipSpace(body, objEnd); i < len(body) {
		return nil, &RawError{Kind: TrailingData, Offset: int64(i), Message: "trailing data after the JSON object: expected only whitespace"}
	}

	rtIdx := -1
	size := 0
	for i := range p.members {
		name := p.nameBytes(&p.names[p.members[i].name])
		size += len(name)
		if string(name) == rawResourceType {
			rtIdx = i
		}
	}
	if rtIdx < 0 {
		return nil, &RawError{Kind: MissingResourceType, Expression: rawResourceType, Offset: int64(objStart),
			Message: `"resourceType" is missing: expected the name of a FHIR resource type`}
	}
	rtm := &p.members[rtIdx]
	rtRaw := body[rtm.valStart:rtm.valEnd]
	if len(rtRaw) == 0 || rtRaw[0] != '"' {
		return nil, &RawError{Kind: BadResourceType, Expression: rawResourceType, Offset: int64(rtm.valStart),
			Message: `"resourceType" must be a string naming a FHIR resource type, found ` + rawKindPhrase(jsontext.Value(rtRaw).Kind())}
	}
	rt, ok := rawResourceTypeBytes(rtRaw)
	if !ok {
		return nil, &RawError{Kind: BadResourceType, Expression: rawResourceType, Offset: int64(rtm.valStart),
			Message: `"resourceType" must name a FHIR resource type: an uppercase ASCII letter followed by one or more ASCII letters`}
	}

	// One allocation for every name and the resource type.
	var sb strings.Builder
	sb.Grow(size + len(rt))
	for i := range p.members {
		sb.Write(p.nameBytes(&p.names[p.members[i].name]))
	}
	sb.Write(rt)
	all := sb.String()

	o := &Object{raw: body[objStart:objEnd], members: make([]rawMember, len(p.members))}
	off := 0
	for i := range p.members {
		m := &p.members[i]
		nb := p.nameBytes(&p.names[m.name])
		o.members[i] = rawMember{
			name:    all[off : off+len(nb)],
			rawName: body[m.nameStart:m.nameEnd],
			value:   body[m.valStart:m.valEnd],
		}
		off += len(nb)
	}
	o.resourceType = all[off:]
	return o, nil
}

// rawDecodeError turns a decoder error into a RawError with a message of our
// own: the decoder's messages quote bytes of the input, which may be patient
// data. isArray tells whether the container at depth k (0 is the top level)
// is an array, so that JSON pointer tokens become [i] or .name correctly.
func rawDecodeError(err error, body []byte, wantName bool, root func() string, isArray func(k int) bool) *RawError {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return &RawError{Kind: Syntax, Offset: int64(len(body)), Message: "unexpected end of input: the JSON object is incomplete"}
		}
		return &RawError{Kind: Syntax, Message: "malformed JSON"}
	}
	kind, msg := rawClassify(se.Err, body, se.ByteOffset, wantName)
	e := &RawError{Kind: kind, Offset: se.ByteOffset, Message: msg}
	ptr := se.JSONPointer
	if kind == DuplicateKey {
		e.Message = "duplicate key " + rawQuote(ptr.LastToken()) + " (each element may appear once)"
	}
	if kind == TrailingData {
		return e
	}
	b := []byte(root())
	k := 0
	for tok := range ptr.Tokens() {
		if isArray(k) {
			if i, err := strconv.Atoi(tok); err == nil {
				b = rawAppendIndex(b, i)
				k++
				continue
			}
		}
		b = rawAppendSegment(b, tok)
		k++
	}
	e.Expression = string(b)
	return e
}

// rawClassify maps the decoder's error to a Kind and a message that names
// what was expected. It matches on the decoder's own wording, which is pinned
// by go.mod and covered by the tests.
func rawClassify(err error, body []byte, off int64, wantName bool) (RawErrorKind, string) {
	const bad = "invalid JSON: "
	switch {
	case err == nil:
		return Syntax, "malformed JSON"
	case err == io.ErrUnexpectedEOF:
		return Syntax, "unexpected end of input: the JSON object is incomplete"
	case errors.Is(err, jsontext.ErrDuplicateName):
		return DuplicateKey, ""
	case errors.Is(err, jsontext.ErrNonStringName):
		return Syntax, bad + "expected a member name in double quotes"
	}
	s := err.Error()
	switch {
	case s == "invalid UTF-8":
		return InvalidUTF8, "invalid UTF-8 in a string: JSON text must be UTF-8"
	case strings.HasPrefix(s, "invalid surrogate pair"):
		return InvalidUTF8, `invalid \u escape in a string: a UTF-16 surrogate must be a high surrogate followed by a low surrogate`
	case strings.HasPrefix(s, "invalid escape sequence"):
		return Syntax, bad + `invalid escape in a string: expected \", \\, \/, \b, \f, \n, \r, \t or \u and four hex digits`
	case s == "missing value after object name":
		return Syntax, bad + "expected a value after ':'"
	case s == "exceeded max depth":
		return TooDeep, "nesting deeper than the JSON decoder allows"
	case !strings.HasPrefix(s, "invalid character "):
		return Syntax, "malformed JSON"
	case strings.HasSuffix(s, "after top-level value"):
		return TrailingData, "trailing data after the JSON object: expected only whitespace"
	case strings.HasSuffix(s, "after object name (expecting ':')"):
		return Syntax, bad + "expected ':' after a member name"
	case strings.HasSuffix(s, "after object value (expecting ',' or '}')"):
		return Syntax, bad + "expected ',' or '}' after an object member"
	case strings.HasSuffix(s, "after array element (expecting ',' or ']')"):
		return Syntax, bad + "expected ',' or ']' after an array element"
	case strings.HasSuffix(s, "in string (expecting non-control character)"):
		return Syntax, bad + "control character in a string: characters below U+0020 must be escaped"
	case strings.HasSuffix(s, "in number (expecting digit)"):
		return Syntax, bad + "malformed number: expected a digit"
	case strings.Contains(s, " in literal "):
		return Syntax, bad + "malformed literal: expected true, false or null"
	case strings.HasSuffix(s, `at start of string (expecting '"')`):
		return Syntax, bad + "expected a string in double quotes"
	case strings.HasSuffix(s, "at start of value"):
		if off >= 0 && off < int64(len(body)) && body[off] == ',' {
			if i := rawSkipSpace(body, int(off)+1); i < len(body) && (body[i] == '}' || body[i] == ']') {
				return Syntax, bad + "trailing comma: expected another member or element after ','"
			}
			return Syntax, bad + "expected a value before ','"
		}
		if wantName {
			return Syntax, bad + "expected a member name in double quotes"
		}
		return Syntax, bad + "expected a value: an object, array, string, number, true, false or null"
	}
	return Syntax, "malformed JSON"
}

// rawFindResourceType returns the top-level "resourceType" of a body that
// may be invalid further on, or "" if it cannot be found before an error.
func rawFindResourceType(body []byte) string {
	d := rawGetDec(body, rawTrustedOpts)
	defer d.put()
	dec := &d.dec
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return ""
	}
	for {
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return ""
		}
		if tok.String() != rawResourceType {
			if dec.SkipValue() != nil {
				return ""
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return ""
		}
		if rt, ok := rawDecodeString(v); ok && rawValidResourceType(rt) {
			return rt
		}
		return ""
	}
}

// ResourceType is the top-level "resourceType", or "" for an Object that is
// not a resource (such as one returned by Object for a complex element).
func (o *Object) ResourceType() string {
	if o == nil {
		return ""
	}
	return o.resourceType
}

// Bytes returns the object exactly as it was sent, from '{' to '}'.
func (o *Object) Bytes() []byte {
	if o == nil {
		return nil
	}
	return o.raw
}

// Member returns the value of a member exactly as it was sent, so it can be
// stored or forwarded without a round trip through Go types.
func (o *Object) Member(name string) (raw []byte, ok bool) {
	if m := o.member(name); m != nil {
		return m.value, true
	}
	return nil, false
}

func (o *Object) member(name string) *rawMember {
	if o == nil {
		return nil
	}
	for i := range o.members {
		if o.members[i].name == name {
			return &o.members[i]
		}
	}
	return nil
}

// Has reports whether the object has a member with exactly this name.
func (o *Object) Has(name string) bool { return o.member(name) != nil }

// Names returns the member names in the order they were sent.
func (o *Object) Names() []string {
	if o == nil {
		return nil
	}
	names := make([]string, len(o.members))
	for i := range o.members {
		names[i] = o.members[i].name
	}
	return names
}

// String returns the decoded value of a string member; ok is false if the
// member is missing or not a JSON string.
func (o *Object) String(name string) (string, bool) {
	m := o.member(name)
	if m == nil {
		return "", false
	}
	return rawDecodeString(m.value)
}

// Object returns a member that is itself an object. Its bytes were checked
// when the resource was parsed, so this only locates its members.
func (o *Object) Object(name string) (*Object, bool) {
	m := o.member(name)
	if m == nil {
		return nil, false
	}
	sub := rawParseTrusted(m.value)
	return sub, sub != nil
}

// Array returns the elements of an array member, each exactly as sent.
func (o *Object) Array(name string) ([][]byte, bool) {
	m := o.member(name)
	if m == nil || len(m.value) == 0 || m.value[0] != '[' {
		return nil, false
	}
	d := rawGetDec(m.value, rawTrustedOpts)
	defer d.put()
	dec := &d.dec
	if _, err := dec.ReadToken(); err != nil {
		return nil, false
	}
	var elems [][]byte
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return nil, false
		}
		end := int(dec.InputOffset())
		elems = append(elems, m.value[end-len(v):end])
	}
	return elems, true
}

// Objects returns the elements of an array member that are objects (such as
// Bundle.entry or contained), each as an Object; non-object elements are
// skipped.
func (o *Object) Objects(name string) ([]*Object, bool) {
	elems, ok := o.Array(name)
	if !ok {
		return nil, false
	}
	objs := make([]*Object, 0, len(elems))
	for _, e := range elems {
		if sub := rawParseTrusted(e); sub != nil {
			objs = append(objs, sub)
		}
	}
	return objs, true
}

// rawParseTrusted splits an already checked object into members.
func rawParseTrusted(raw []byte) *Object {
	o := &Object{}
	end, ok := rawEachMember(raw, func(name, rawName, value []byte) {
		m := rawMember{name: string(name), rawName: rawName, value: value}
		o.members = append(o.members, m)
		if m.name == rawResourceType {
			if rt, ok := rawResourceTypeBytes(value); ok {
				o.resourceType = string(rt)
			}
		}
	})
	if !ok {
		return nil
	}
	o.raw = raw[:end]
	return o
}

// rawEachMember calls fn with each member of an already checked object: its
// decoded name (valid only during the call), its name token and its value.
// It returns the offset just past the object, and false if raw is not an
// object.
func rawEachMember(raw []byte, fn func(name, rawName, value []byte)) (int, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return 0, false
	}
	d := rawGetDec(raw, rawTrustedOpts)
	defer d.put()
	dec := &d.dec
	if _, err := dec.ReadToken(); err != nil {
		return 0, false
	}
	var scratch []byte
	for {
		p0 := int(dec.InputOffset())
		tok, err := dec.ReadToken()
		if err != nil {
			return 0, false
		}
		p1 := int(dec.InputOffset())
		if tok.Kind() == '}' {
			return p1, true
		}
		rawName := raw[rawSkipSep(raw, p0):p1]
		name := rawName[1 : len(rawName)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			scratch, _ = jsontext.AppendUnquote(scratch[:0], rawName)
			name = scratch
		}
		v, err := dec.ReadValue()
		if err != nil {
			return 0, false
		}
		end := int(dec.InputOffset())
		fn(name, rawName, raw[end-len(v):end])
	}
}

// Server-managed names. Client members whose names equal one of these
// ignoring case are dropped, since keeping "Id" next to the server's "id"
// would make the stored resource fail ParseResource.
var (
	rawServerTop  = []string{rawResourceType, "id", "_id", "meta"}
	rawServerMeta = []string{"versionId", "_versionId", "lastUpdated", "_lastUpdated"}
)

func rawIsServerName[T ~string | ~[]byte](name T, set []string) bool {
	for _, s := range set {
		if strings.EqualFold(string(name), s) {
			return true
		}
	}
	return false
}

// WithServerFields returns the resource as Signpost stores it: the server's
// id, meta.versionId and meta.lastUpdated in place of the client's, and
// everything else exactly as the client sent it. "resourceType", "id" and
// "meta" come first, as FHIR's own JSON examples put them, so that readers
// that sniff the start of a resource find them. The client's "_id",
// "meta._versionId" and "meta._lastUpdated" go with the values they
// extended. An empty argument leaves that member out; a meta left with no
// members is left out, as FHIR forbids empty objects.
func (o *Object) WithServerFields(id, versionID, lastUpdated string) []byte {
	return o.withServerFields(id, versionID, lastUpdated, nil)
}

// withServerFields is WithServerFields with the object's members of the
// names in replaced left out, and replaced's members (sorted by name, each
// marshalled as AppendMembers does) after the rest.
func (o *Object) withServerFields(id, versionID, lastUpdated string, replaced map[string]any) []byte {
	if o == nil {
		return nil
	}
	out := make([]byte, 0, len(o.raw)+len(id)+len(versionID)+len(lastUpdated)+64+128*len(replaced))
	out = append(out, '{')
	if m := o.member(rawResourceType); m != nil {
		out = append(out, `"resourceType":`...)
		out = append(out, m.value...)
	}
	if id != "" {
		out = rawAppendSep(out, 1)
		out = append(out, `"id":`...)
		out, _ = jsontext.AppendQuote(out, id)
	}

	metaAt := len(out)
	out = rawAppendSep(out, 1)
	out = append(out, `"meta":{`...)
	metaOpen := len(out)
	if versionID != "" {
		out = append(out, `"versionId":`...)
		out, _ = jsontext.AppendQuote(out, versionID)
	}
	if lastUpdated != "" {
		out = rawAppendSep(out, metaOpen)
		out = append(out, `"lastUpdated":`...)
		out, _ = jsontext.AppendQuote(out, lastUpdated)
	}
	if m := o.member("meta"); m != nil {
		// A meta that is not an object is simply not copied: it is replaced.
		rawEachMember(m.value, func(name, rawName, value []byte) {
			if rawIsServerName(name, rawServerMeta) {
				return
			}
			out = rawAppendSep(out, metaOpen)
			out = append(out, rawName...)
			out = append(out, ':')
			out = append(out, value...)
		})
	}
	if len(out) == metaOpen {
		out = out[:metaAt] // no meta members at all
	} else {
		out = append(out, '}')
	}

	for i := range o.members {
		m := &o.members[i]
		if rawIsServerName(m.name, rawServerTop) {
			continue
		}
		if _, ok := replaced[m.name]; ok {
			continue
		}
		out = rawAppendSep(out, 1)
		out = append(out, m.rawName...)
		out = append(out, ':')
		out = append(out, m.value...)
	}
	return append(appendMarshalled(out, replaced), '}')
}

// rawAppendSep appends a comma unless nothing follows the opening brace at
// open.
func rawAppendSep(out []byte, open int) []byte {
	if len(out) > open {
		out = append(out, ',')
	}
	return out
}

// Ref is one reference found in a resource.
type Ref struct {
	Expression string // e.g. "Task.focus.reference"
	Value      string // decoded
}

// References lists the string values of every member named "reference" at
// any depth, including contained resources and Bundle entries, so that a
// transaction can be checked for references that resolve to nothing.
func References(o *Object) []Ref {
	if o == nil {
		return nil
	}
	var refs []Ref
	w := rawWalker{root: o.resourceType}
	w.walk(o.raw, func(start, end int) {
		v, _ := rawDecodeString(o.raw[start:end])
		refs = append(refs, Ref{Expression: w.expression(), Value: v})
	})
	return refs
}

// RewriteReferences replaces reference values found in refs, such as the
// urn:uuid: placeholders of a transaction Bundle, with their resolved
// values. Only the replaced strings change: every other byte, including
// whitespace and number literals, is kept, and an identifier.value that
// happens to equal a placeholder is left alone. When nothing matches, body is
// returned itself, not a copy. Errors are *RawError.
func RewriteReferences(body []byte, refs map[string]string) ([]byte, error) {
	return rewrite(body, rawWalker{}, func(v string) (string, bool) {
		nv, ok := refs[v]
		return nv, ok
	}, nil)
}

// RewriteIDs replaces the resource's own id (its top-level "id") with
// id(value), and each reference value (a member named "reference", at any
// depth, as RewriteReferences finds them) with ref(value), where they say
// so (ok); nil rewrites none of that kind. Every other byte is kept, as by
// RewriteReferences. Errors are *RawError.
func RewriteIDs(body []byte, id, ref func(string) (string, bool)) ([]byte, error) {
	return rewrite(body, rawWalker{rootID: id != nil}, ref, id)
}

// rewrite replaces the values w visits: references by ref, the root id by id.
func rewrite(body []byte, w rawWalker, ref, id func(string) (string, bool)) ([]byte, error) {
	var out []byte
	last := 0
	err := w.walk(body, func(start, end int) {
		f := ref
		if w.atRootID {
			f = id
		}
		if f == nil {
			return
		}
		raw := body[start:end]
		inner := raw[1 : len(raw)-1]
		var (
			nv string
			ok bool
		)
		if bytes.IndexByte(inner, '\\') < 0 {
			nv, ok = f(string(inner))
		} else if v, dok := rawDecodeString(raw); dok {
			nv, ok = f(v)
		}
		if !ok {
			return
		}
		if out == nil {
			out = make([]byte, 0, len(body)+len(nv)+16)
		}
		out = append(out, body[last:start]...)
		out, _ = jsontext.AppendQuote(out, nv)
		last = end
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return body, nil
	}
	return append(out, body[last:]...), nil
}

// rawWalker visits the string values of "reference" members (and, with
// rootID, of the root object's "id", atRootID saying which), tracking where
// it is so References can report expressions.
type rawWalker struct {
	root     string
	rootID   bool
	atRootID bool
	body     []byte
	frames   []rawWalkFrame
}

type rawWalkFrame struct {
	obj                bool
	expectName         bool
	isRef              bool // the current member is named "reference"
	isID               bool // the current member is the root object's "id" (rootID)
	nameStart, nameEnd int  // current member name token
	idx                int
}

func (w *rawWalker) walk(body []byte, visit func(start, end int)) *RawError {
	w.body = body
	d := rawGetDec(body, rawWalkOpts)
	defer d.put()
	dec := &d.dec
	root := func() string { return w.root }
	isArray := func(k int) bool { return k < len(w.frames) && !w.frames[k].obj }
	for {
		p0 := int(dec.InputOffset())
		tok, err := dec.ReadToken()
		if err != nil {
			if err == io.EOF && len(w.frames) == 0 {
				return &RawError{Kind: Syntax, Message: "empty body: expected a JSON object"}
			}
			n := len(w.frames)
			wantName := n > 0 && w.frames[n-1].obj && w.frames[n-1].expectName
			return rawDecodeError(err, body, wantName, root, isArray)
		}
		p1 := int(dec.InputOffset())
		k := tok.Kind()
		n := len(w.frames)
		var f *rawWalkFrame
		if n > 0 {
			f = &w.frames[n-1]
		}
		switch {
		case k == '}' || k == ']':
			w.frames = w.frames[:n-1]
		case f != nil && f.obj && f.expectName:
			f.nameStart, f.nameEnd = rawSkipSep(body, p0), p1
			nm := body[f.nameStart:f.nameEnd]
			f.isRef = string(nm) == `"reference"` ||
				(bytes.IndexByte(nm, '\\') >= 0 && tok.String() == rawReference)
			f.isID = w.rootID && n == 1 && (string(nm) == `"id"` ||
				(bytes.IndexByte(nm, '\\') >= 0 && tok.String() == "id"))
			f.expectName = false
			continue
		case k == '{' || k == '[':
			w.frames = append(w.frames, rawWalkFrame{obj: k == '{', expectName: k == '{'})
			continue
		case k == '"' && f != nil && f.obj && (f.isRef || f.isID):
			w.atRootID = f.isID
			visit(rawSkipSep(body, p0), p1)
		}
		// A value (scalar or just-closed container) has ended.
		if len(w.frames) == 0 {
			if i := rawSkipSpace(body, p1); i < len(body) {
				return &RawError{Kind: TrailingData, Offset: int64(i), Message: "trailing data after the JSON object: expected only whitespace"}
			}
			return nil
		}
		if f := &w.frames[len(w.frames)-1]; f.obj {
			f.expectName = true
		} else {
			f.idx++
		}
	}
}

// expression renders the location of the value being visited.
func (w *rawWalker) expression() string {
	b := []byte(w.root)
	for i := range w.frames {
		f := &w.frames[i]
		if !f.obj {
			b = rawAppendIndex(b, f.idx)
			continue
		}
		nm := w.body[f.nameStart:f.nameEnd]
		if bytes.IndexByte(nm, '\\') < 0 {
			b = rawAppendSegment(b, nm[1:len(nm)-1])
		} else {
			d, _ := jsontext.AppendUnquote(nil, nm)
			b = rawAppendSegment(b, d)
		}
	}
	return string(b)
}

// rawDecodeString decodes a JSON string value; ok is false for anything else.
func rawDecodeString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	d, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return "", false
	}
	return string(d), true
}

// rawResourceTypeBytes returns the decoded value of a "resourceType" member
// if it is a string naming a resource type, without allocating unless the
// string has escapes.
func rawResourceTypeBytes(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		d, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return nil, false
		}
		inner = d
	}
	return inner, rawValidResourceType(inner)
}

// rawValidResourceType checks ^[A-Z][A-Za-z]+$ without a regexp on the hot
// path.
func rawValidResourceType[T ~string | ~[]byte](s T) bool {
	if len(s) < 2 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i] | 0x20 // ASCII lower case
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func rawIsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// rawSkipSpace returns the index of the first non-whitespace byte at or after i.
func rawSkipSpace(b []byte, i int) int {
	for i < len(b) && rawIsSpace(b[i]) {
		i++
	}
	return i
}

// rawSkipSep skips the whitespace, ':' and ',' the decoder consumes before a
// token, giving the token's first byte.
func rawSkipSep(b []byte, i int) int {
	for i < len(b) && (rawIsSpace(b[i]) || b[i] == ':' || b[i] == ',') {
		i++
	}
	return i
}

// rawFoldHash hashes a name so that names equal under Unicode simple case
// folding (what bytes.EqualFold compares) hash alike: each rune is replaced
// by the smallest rune of its folding orbit, which for ASCII letters is the
// upper-case letter.
func rawFoldHash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(b); {
		c := b[i]
		var r rune
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			r = rune(c)
			i++
		} else {
			rr, size := utf8.DecodeRune(b[i:])
			i += size
			r = rr
			for f := unicode.SimpleFold(rr); f != rr; f = unicode.SimpleFold(f) {
				if f < r {
					r = f
				}
			}
		}
		h ^= uint64(r)
		h *= 1099511628211
	}
	return h
}

// rawMaxNameInMessage bounds how much of a key is echoed in an expression or
// message.
const rawMaxNameInMessage = 64

func rawTruncate[T ~string | ~[]byte](s T) (string, bool) {
	if len(s) <= rawMaxNameInMessage {
		return string(s), false
	}
	i := rawMaxNameInMessage
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return string(s[:i]), true
}

// rawQuote quotes a key for a message, escaping anything unprintable.
func rawQuote[T ~string | ~[]byte](name T) string {
	s, cut := rawTruncate(name)
	q := strconv.Quote(s)
	if cut {
		q = q[:len(q)-1] + `…"`
	}
	return q
}

// rawAppendSegment appends ".name" to a FHIRPath expression, or just "name"
// at the start. Names that are not plain identifiers are delimited with
// backticks, as FHIRPath does.
func rawAppendSegment[T ~string | ~[]byte](b []byte, name T) []byte {
	if len(b) > 0 {
		b = append(b, '.')
	}
	plain := len(name) > 0
	for i := 0; i < len(name) && plain; i++ {
		c := name[i]
		plain = c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9'
	}
	if plain && len(name) <= rawMaxNameInMessage {
		return append(b, name...)
	}
	s, cut := rawTruncate(name)
	b = append(b, '`')
	for _, r := range s {
		switch {
		case r == '`' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == 0x7f || !unicode.IsPrint(r):
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				b = rawAppendU(rawAppendU(b, r1), r2)
			} else {
				b = rawAppendU(b, r)
			}
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	if cut {
		b = append(b, "…"...)
	}
	return append(b, '`')
}

func rawAppendU(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}

func rawAppendIndex(b []byte, i int) []byte {
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, ']')
}

// rawKindPhrase names a JSON kind for messages, without its value.
func rawKindPhrase(k jsontext.Kind) string {
	switch k {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	}
	return "something else"
}
