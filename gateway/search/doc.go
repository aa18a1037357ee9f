// Package search answers FHIR read, vread and search: a parsed query (query.Query) run
// within what the caller may see, paged by offset or by keyset, with the
// includes a referral's readers need.
package search

import "github.com/signpost-health/signpost/gateway"

// Service runs searches.
type Service struct{ *gateway.Core }

// New returns the search use case over the core.
func New(core *gateway.Core) *Service { return &Service{core} }
