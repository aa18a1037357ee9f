// Package intake takes referrals in: the FHIR create, update, patch and
// transaction interactions and BaRS request messages, each checked against
// R4, the Gravity rules and the tenancy rules, and committed with its Task,
// its delivery job and its audit record in one atomic step.
package intake

import "github.com/signpost-health/signpost/gateway"

// Service accepts and changes the resources of referrals.
type Service struct{ *gateway.Core }

// New returns the intake use case over the core.
func New(core *gateway.Core) *Service { return &Service{core} }
