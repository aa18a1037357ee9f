// Package writeback keeps a GP record's copy of a referral Task true: what
// to write to the GP system's FHIR server for one Task version.
package writeback

import "github.com/signpost-health/signpost/gateway"

// Service builds write-backs.
type Service struct{ *gateway.Core }

// New returns the writeback use case over the core.
func New(core *gateway.Core) *Service { return &Service{core} }
