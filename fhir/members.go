package fhir

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// Member, WithoutMember and AppendMembers edit a JSON object's members as
// bytes, keeping every other member as it was sent or stored: a change
// Signpost makes to a resource touches only what it means to.

// Member is one top-level member of a JSON object, as raw JSON (nil when
// absent).
func Member(body []byte, name string) []byte {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(body, &m)
	return m[name]
}

// WithoutMember drops one top-level member of a JSON object that passed the
// raw checks, keeping every other member's bytes.
func WithoutMember(obj []byte, name string) []byte {
	o, err := ParseResource(obj, ParseOptions{})
	if err != nil || !o.Has(name) {
		return obj
	}
	out := []byte{'{'}
	for _, n := range o.Names() {
		if n == name {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		key, _ := json.Marshal(n)
		raw, _ := o.Member(n)
		out = append(append(append(out, key...), ':'), raw...)
	}
	return append(out, '}')
}

// AppendMembers adds members to the end of a JSON object. The object's own
// bytes are kept; the new members are ones it does not have.
func AppendMembers(obj []byte, members map[string]any) []byte {
	if len(members) == 0 {
		return obj
	}
	end := strings.LastIndexByte(string(obj), '}')
	out := append([]byte{}, obj[:end]...)
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := json.Marshal(members[k])
		if err != nil {
			panic(err)
		}
		out = append(out, ',')
		out = strconv.AppendQuote(out, k)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}')
}
