package fhir

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
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

// ReplaceMembers sets members of a JSON object: the ones it has are
// dropped, and all are appended (as AppendMembers does), in one pass over
// the object instead of one per member.
func ReplaceMembers(obj []byte, members map[string]any) []byte {
	if len(members) == 0 {
		return obj
	}
	o, err := ParseResource(obj, ParseOptions{})
	if err != nil {
		return AppendMembers(obj, members)
	}
	names := o.Names()
	if !slices.ContainsFunc(names, func(n string) bool { _, set := members[n]; return set }) {
		return AppendMembers(obj, members)
	}
	out := make([]byte, 1, len(obj)+64*len(members))
	out[0] = '{'
	for _, n := range names {
		if _, set := members[n]; set {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		raw, _ := o.Member(n)
		out = append(append(appendKey(out, n), ':'), raw...)
	}
	return AppendMembers(append(out, '}'), members)
}

// appendKey appends a member name as a JSON string: FHIR's names as they
// are, anything else escaped by encoding/json.
func appendKey(out []byte, n string) []byte {
	for i := 0; i < len(n); i++ {
		if c := n[i]; !(c == '_' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			key, _ := json.Marshal(n)
			return append(out, key...)
		}
	}
	return append(append(append(out, '"'), n...), '"')
}

// AppendMembers adds members to the end of a JSON object. The object's own
// bytes are kept; the new members are ones it does not have.
func AppendMembers(obj []byte, members map[string]any) []byte {
	if len(members) == 0 {
		return obj
	}
	end := bytes.LastIndexByte(obj, '}')
	out := append([]byte{}, obj[:end]...)
	return append(appendMarshalled(out, members), '}')
}

// appendMarshalled appends members, sorted by name, each after a comma
// (none before the first when out ends with the object's opening brace).
func appendMarshalled(out []byte, members map[string]any) []byte {
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
		if last := bytes.TrimRight(out, " \t\r\n"); len(last) > 0 && last[len(last)-1] != '{' {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, k)
		out = append(out, ':')
		out = append(out, v...)
	}
	return out
}

// Revised is the object with members replaced (ReplaceMembers) and then
// the server's fields set (WithServerFields), in one pass: the members
// given replace the object's own of those names and come after the rest,
// sorted by name. A Task version Signpost writes (a delivery recorded) was
// built by ReplaceMembers and parsed again for WithServerFields: about a
// tenth of a delivery's CPU in the worker's profile. Members naming a
// server field (resourceType, id, meta) are merged as the two steps would.
func (o *Object) Revised(members map[string]any, id, versionID, lastUpdated string) ([]byte, error) {
	for k := range members {
		if rawIsServerName(k, rawServerTop) {
			again, err := ParseResource(ReplaceMembers(o.raw, members), ParseOptions{})
			if err != nil {
				return nil, err
			}
			return again.WithServerFields(id, versionID, lastUpdated), nil
		}
	}
	return o.withServerFields(id, versionID, lastUpdated, members), nil
}
