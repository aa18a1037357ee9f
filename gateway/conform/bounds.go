package conform

import (
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// How much one request may make the store do. A change is one script in
// Redis, and Redis runs one script at a time, for every client and worker:
// what a client sends must not decide how long that script runs. Every
// repeating element that becomes index entries is bounded here, per
// resource and per request, before anything reaches the store. The bounds
// are several times what real senders use (the published Gravity and BaRS
// examples have one or two codings and identifiers, one performer; a
// referral has about six token systems).
const (
	// MaxCodings bounds ServiceRequest.code.coding: one code, perhaps with
	// its translations into a few code systems.
	MaxCodings = 16
	// MaxIdentifiers bounds the identifiers of a ServiceRequest, a Task or
	// a Patient (each is an index entry; a referral's is also a unique key).
	MaxIdentifiers = 20
	// MaxPerformers bounds ServiceRequest.performer (each is up to two
	// index entries: its reference and its identifier).
	MaxPerformers = 8
	// MaxTokenSystemsPerResource bounds the distinct systems one resource's
	// identifiers and codes name, each of them a registry entry to check.
	MaxTokenSystemsPerResource = 16
	// MaxIndexTermsPerResource bounds the index entries of one resource
	// version; the element bounds above keep a ServiceRequest within it.
	MaxIndexTermsPerResource = 64
	// MaxTokenSystemsPerRequest bounds the distinct token systems of one
	// request, a transaction's entries together.
	MaxTokenSystemsPerRequest = 32
	// MaxIndexTermsPerRequest bounds the index entries one request writes
	// and looks up (a transaction's resources and its If-None-Exist
	// searches together). A transaction of 100 typical referrals writes
	// about 1,500; at the bound, with every system over its cap (each entry
	// written bare too), the commit is about 15 ms of Redis (BENCHMARKS.md).
	MaxIndexTermsPerRequest = 2048
)

// indexedArrays are the repeating elements whose items become index
// entries, by resource type, with their bounds.
var indexedArrays = map[string][]struct {
	path []string // member names from the resource down to the array
	max  int
}{
	gateway.TypeServiceRequest: {{[]string{"identifier"}, MaxIdentifiers}, {[]string{"code", "coding"}, MaxCodings},
		{[]string{"performer"}, MaxPerformers}},
	gateway.TypeTask:    {{[]string{"identifier"}, MaxIdentifiers}},
	gateway.TypePatient: {{[]string{"identifier"}, MaxIdentifiers}},
}

// CheckIndexedElements refuses a resource with more items in an indexed
// repeating element than Signpost takes, naming each such element. It reads
// the raw JSON only, so it costs no decoding and runs before any read of
// the store.
func CheckIndexedElements(typ string, obj *fhir.Object) error {
	var p gateway.Problems
	for _, a := range indexedArrays[typ] {
		o, ok := obj, true
		for _, name := range a.path[:len(a.path)-1] {
			if o, ok = o.Object(name); !ok {
				break
			}
		}
		if !ok {
			continue
		}
		items, ok := o.Array(a.path[len(a.path)-1])
		if ok && len(items) > a.max {
			p.Add(fhir.IssueTooCostly, typ+"."+strings.Join(a.path, "."), "%s has %d items; expected at most %d",
				strings.Join(a.path, "."), len(items), a.max)
		}
	}
	return p.Err(gateway.KindUnprocessable)
}

// CheckIndexBounds checks the writes one request planned for one resource
// (a ServiceRequest's also includes its referral Task): the index entries
// of each version, and the distinct token systems they name.
func CheckIndexBounds(typ string, writes []gateway.Write) error {
	for _, w := range writes {
		if n := len(w.Terms); n > MaxIndexTermsPerResource {
			return gateway.NewError(gateway.KindUnprocessable, fhir.IssueTooCostly, typ,
				"the %s would have %d search index entries; expected at most %d (fewer identifiers, codings or references)",
				w.Resource.Type, n, MaxIndexTermsPerResource)
		}
		if n := len(gateway.TokenSystems([]gateway.Write{w})); n > MaxTokenSystemsPerResource {
			return gateway.NewError(gateway.KindUnprocessable, fhir.IssueTooCostly, typ,
				"the identifiers and codings of the %s name %d distinct systems; expected at most %d",
				w.Resource.Type, n, MaxTokenSystemsPerResource)
		}
	}
	return nil
}
