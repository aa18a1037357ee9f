package gateway

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/signpost-health/signpost/fhir"
)

// Minimum necessary: a provider with a share profile sees of a referral
// only the elements its profile names, by every path it reads the referral
// (API reads and searches, the inbox, a full webhook, a BaRS message),
// while Signpost keeps the whole record for the GP. The cut is made on the
// way out (SharedWith), from the stored bytes, so the profile can be
// changed without touching what is stored.

// ShareProfile is a named set of elements a provider may see.
type ShareProfile struct {
	Name string
	// patient and request are the Patient's and the ServiceRequest's
	// elements shared; types the supporting resource types shared whole.
	patient, request, types []string
}

// alwaysKept are the elements a resource cannot be read without (R4's
// required elements, what a referral is and who it is for), kept whatever
// the profile.
var alwaysKept = map[string][]string{
	TypePatient:        {"resourceType", "id", "meta"},
	TypeServiceRequest: {"resourceType", "id", "meta", "status", "intent", "subject", "code", "priority", "authoredOn", "requester", "performer"},
}

// NewShareProfile reads a profile's element names (checked by the
// configuration): "name" is the Patient's and the ServiceRequest's element
// of that name, "Patient.name" the Patient's only, "Condition" a supporting
// resource type shared whole.
func NewShareProfile(name string, elements []string) *ShareProfile {
	p := &ShareProfile{Name: name}
	for _, el := range elements {
		switch typ, member, ok := strings.Cut(el, "."); {
		case ok && typ == TypePatient:
			p.patient = append(p.patient, member)
		case ok && typ == TypeServiceRequest:
			p.request = append(p.request, member)
		case IsSupporting(el):
			p.types = append(p.types, el)
		default:
			p.patient = append(p.patient, el)
			p.request = append(p.request, el)
		}
	}
	return p
}

// subsetted is the tag R4 asks a server to put on a resource it returns
// with elements left out (as _elements and _summary do).
var subsetted = map[string]string{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED", "display": "subsetted"}

// withheldPatient stands in for a patient reference whose identifier and
// name the profile withholds and that has no literal reference to keep.
var withheldPatient = map[string]string{"display": "the patient (details withheld by the provider's share profile)"}

// Cut is the resource as the profile lets a provider see it: nil when the
// profile shares none of it (a supporting resource whose type it does not
// name), the resource itself when nothing is left out.
func (p *ShareProfile) Cut(r *Resource) *Resource {
	var keep []string
	switch r.Type {
	case TypePatient:
		keep = p.patient
	case TypeServiceRequest:
		keep = p.request
	case TypeTask:
		// Signpost's own tracking of the referral, shared whole, but for the
		// patient's identifier and name when the profile withholds them.
		return p.cutPatientRefs(r, "for")
	default:
		if IsSupporting(r.Type) && !slices.Contains(p.types, r.Type) {
			return nil
		}
		return p.cutPatientRefs(r, "subject", "patient")
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(r.Body, &members) != nil {
		return nil // stored bytes passed the raw checks; never here
	}
	cut := false
	for name := range members {
		if !p.shares(r.Type, name, keep) {
			delete(members, name)
			cut = true
		}
	}
	if c, ok := members["contained"]; ok {
		delete(members, "contained")
		if p.cutContained(c, members) {
			cut = true
		}
	}
	if !cut {
		return p.cutPatientRefs(r, "subject")
	}
	members["meta"] = tagSubsetted(members["meta"])
	out := *r
	out.Body = orderedJSON(r.Body, members)
	if r.Type == TypeServiceRequest {
		return p.cutPatientRefs(&out, "subject")
	}
	return &out
}

// withheldContained stands in for a reference to a contained resource the
// profile does not share.
var withheldContained = map[string]string{"display": "withheld by the provider's share profile"}

// cutContained puts back into members (the resource's members the profile
// keeps) the contained resources they still reference (dom-3: none is
// kept that nothing references), each as the profile lets the provider
// see it: a Patient cut as a Patient is, a supporting resource only if its
// type is shared (a reference to one that is not becomes a display saying
// so), and in every one the patient's identifier and name as the profile
// decides. It reports whether anything was left out.
func (p *ShareProfile) cutContained(raw json.RawMessage, members map[string]json.RawMessage) bool {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		members["contained"] = raw
		return false
	}
	cut := false
	kept := map[string]json.RawMessage{}
	var withheld []string
	for _, c := range list {
		var head struct{ ResourceType, ID string }
		if json.Unmarshal(c, &head) != nil {
			continue
		}
		r := &Resource{Type: head.ResourceType, ID: head.ID, Body: c}
		var shown *Resource
		switch {
		case head.ResourceType == TypePatient:
			shown = p.cutPatient(r)
		case IsSupporting(head.ResourceType) && !slices.Contains(p.types, head.ResourceType):
			withheld = append(withheld, "#"+head.ID)
		default:
			shown = p.cutPatientRefs(r, "subject", "patient")
		}
		if shown == nil {
			cut = true
			continue
		}
		if string(shown.Body) != string(c) {
			cut = true
		}
		kept["#"+head.ID] = shown.Body
	}
	if len(withheld) > 0 {
		for name, v := range members {
			members[name] = replaceLocalRefs(v, withheld)
		}
		for ref, body := range kept {
			kept[ref] = replaceLocalRefs(body, withheld)
		}
	}
	// Kept: what the shared members reference, and what that references
	// in turn (a contained Condition's subject "#p").
	reached := string(mustJSON(members))
	in := map[string]bool{}
	for grew := true; grew; {
		grew = false
		for ref, body := range kept {
			if !in[ref] && strings.Contains(reached, `"`+ref+`"`) {
				in[ref], grew = true, true
				reached += string(body)
			}
		}
	}
	var out []json.RawMessage
	for _, c := range list {
		var head struct{ ID string }
		_ = json.Unmarshal(c, &head)
		if body, ok := kept["#"+head.ID]; ok && in["#"+head.ID] {
			out = append(out, body)
		} else if ok {
			cut = true // nothing shared references it any longer
		}
	}
	if len(out) > 0 {
		members["contained"] = mustJSON(out)
	}
	return cut
}

// cutPatient is a Patient's members cut to the profile's.
func (p *ShareProfile) cutPatient(r *Resource) *Resource {
	var members map[string]json.RawMessage
	if json.Unmarshal(r.Body, &members) != nil {
		return nil
	}
	for name := range members {
		if !p.shares(TypePatient, name, p.patient) {
			delete(members, name)
		}
	}
	out := *r
	out.Body = orderedJSON(r.Body, members)
	return &out
}

// replaceLocalRefs replaces, anywhere in v, a Reference to one of the
// contained resources named by refs with withheldContained.
func replaceLocalRefs(v json.RawMessage, refs []string) json.RawMessage {
	if !strings.Contains(string(v), `"#`) {
		return v
	}
	var x any
	if json.Unmarshal(v, &x) != nil {
		return v
	}
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			if ref, ok := t["reference"].(string); ok && slices.Contains(refs, ref) {
				return withheldContained
			}
			for k, e := range t {
				t[k] = walk(e)
			}
		case []any:
			for i, e := range t {
				t[i] = walk(e)
			}
		}
		return x
	}
	return mustJSON(walk(x))
}

// shares reports whether a member of a resource is kept: always-kept
// elements, the profile's, a choice element's typed members
// (deceasedBoolean for deceased) and a primitive's extensions (_name).
func (p *ShareProfile) shares(typ, member string, keep []string) bool {
	name := strings.TrimPrefix(member, "_")
	if slices.Contains(alwaysKept[typ], name) || slices.Contains(keep, name) {
		return true
	}
	if name == "contained" {
		return true // decided once the rest is cut
	}
	for _, k := range keep {
		if rest, ok := strings.CutPrefix(name, k); ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
			return true
		}
	}
	return false
}

// cutPatientRefs drops, from the references to the patient (members:
// ServiceRequest.subject, Task.for, a supporting resource's subject or
// patient), the identifier when the profile withholds the Patient's
// identifiers, and the display when it withholds the Patient's name: an
// NHS number or a name in a reference discloses as much as one in the
// Patient.
func (p *ShareProfile) cutPatientRefs(r *Resource, members ...string) *Resource {
	dropIdentifier := !slices.Contains(p.patient, "identifier")
	dropDisplay := !slices.Contains(p.patient, "name")
	if !dropIdentifier && !dropDisplay {
		return r
	}
	obj, err := fhir.ParseResource(r.Body, fhir.ParseOptions{})
	if err != nil {
		return r
	}
	replace := map[string]any{}
	for _, member := range members {
		raw, ok := obj.Member(member)
		if !ok {
			continue
		}
		var ref map[string]any
		if json.Unmarshal(raw, &ref) != nil {
			continue
		}
		changed := false
		if dropIdentifier && ref["identifier"] != nil {
			delete(ref, "identifier")
			changed = true
		}
		if dropDisplay && ref["display"] != nil {
			delete(ref, "display")
			changed = true
		}
		if !changed {
			continue
		}
		var v any = ref
		if ref["reference"] == nil && ref["identifier"] == nil {
			v = withheldPatient
		}
		replace[member] = v
	}
	if len(replace) == 0 {
		return r
	}
	out := *r
	out.Body = fhir.ReplaceMembers(r.Body, replace)
	if obj, err := fhir.ParseResource(out.Body, fhir.ParseOptions{}); err == nil {
		meta, _ := obj.Member("meta")
		out.Body = fhir.ReplaceMembers(out.Body, map[string]any{"meta": tagSubsetted(meta)})
	}
	return &out
}

// tagSubsetted adds the SUBSETTED tag to a meta.
func tagSubsetted(raw json.RawMessage) json.RawMessage {
	meta := map[string]any{}
	_ = json.Unmarshal(raw, &meta)
	tags, _ := meta["tag"].([]any)
	for _, t := range tags {
		if m, ok := t.(map[string]any); ok && m["code"] == subsetted["code"] && m["system"] == subsetted["system"] {
			return raw
		}
	}
	meta["tag"] = append(tags, subsetted)
	return mustJSON(meta)
}

// orderedJSON writes members in the order the original body had them
// (resourceType first), so a cut resource reads like the stored one.
func orderedJSON(original []byte, members map[string]json.RawMessage) []byte {
	out := []byte{'{'}
	write := func(name string) {
		v, ok := members[name]
		if !ok {
			return
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		k, _ := json.Marshal(name)
		out = append(append(append(out, k...), ':'), v...)
		delete(members, name)
	}
	write("resourceType")
	dec := json.NewDecoder(strings.NewReader(string(original)))
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				break
			}
			name, _ := t.(string)
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				break
			}
			write(name)
		}
	}
	rest := make([]string, 0, len(members))
	for name := range members {
		rest = append(rest, name)
	}
	slices.Sort(rest)
	for _, name := range rest {
		write(name)
	}
	return append(out, '}')
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // decoded JSON encodes again
	}
	return b
}

// SharedWith is a resource as the caller may see it: for a provider with a
// share profile, cut to it (nil when nothing of it is shared); for anyone
// else, the resource as stored.
func (s *Core) SharedWith(c Caller, r *Resource) *Resource {
	if r == nil || c.Kind != CallerProvider {
		return r
	}
	p, ok := s.router.Provider(c.ClientID)
	if !ok || p.Share == nil {
		return r
	}
	return p.Share.Cut(r)
}

// SharedAll is SharedWith over a list, leaving out what is not shared.
func (s *Core) SharedAll(c Caller, rs []*Resource) []*Resource {
	out := rs[:0:0]
	for _, r := range rs {
		if cut := s.SharedWith(c, r); cut != nil {
			out = append(out, cut)
		}
	}
	return out
}

// Restored is a provider's update of a resource it was shown cut (a Task
// whose patient identifier its profile withholds), with what the cut left
// out put back from the stored version: a provider cannot change what it
// never saw, and sending back what it was shown changes nothing. The
// SUBSETTED tag it was shown is not stored.
func (s *Core) Restored(c Caller, stored *Resource, sent []byte) []byte {
	cut := s.SharedWith(c, stored)
	if cut == nil || cut == stored {
		return sent
	}
	storedObj, err1 := fhir.ParseResource(stored.Body, fhir.ParseOptions{})
	cutObj, err2 := fhir.ParseResource(cut.Body, fhir.ParseOptions{})
	sentObj, err3 := fhir.ParseResource(sent, fhir.ParseOptions{})
	if err1 != nil || err2 != nil || err3 != nil {
		return sent
	}
	members := map[string]any{}
	for _, name := range []string{"for", "subject"} {
		shown, _ := cutObj.Member(name)
		back, _ := sentObj.Member(name)
		orig, ok := storedObj.Member(name)
		if ok && sameJSON(shown, back) && !sameJSON(orig, back) {
			members[name] = json.RawMessage(orig)
		}
	}
	if raw, ok := sentObj.Member("meta"); ok {
		var meta map[string]any
		if json.Unmarshal(raw, &meta) == nil {
			if tags, ok := meta["tag"].([]any); ok {
				kept := slices.DeleteFunc(tags, func(t any) bool {
					m, _ := t.(map[string]any)
					return m["system"] == subsetted["system"] && m["code"] == subsetted["code"]
				})
				if len(kept) == 0 {
					delete(meta, "tag")
				} else {
					meta["tag"] = kept
				}
				members["meta"] = meta
			}
		}
	}
	if len(members) == 0 {
		return sent
	}
	return fhir.ReplaceMembers(sent, members)
}

// sameJSON reports whether two JSON values are equal as values.
func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return string(mustJSON(x)) == string(mustJSON(y))
}
