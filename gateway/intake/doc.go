// Package intake takes referrals in: the FHIR create, update, patch and
// transaction interactions and BaRS request messages, each checked against
// R4, the Gravity rules and the tenancy rules, and committed with its Task,
// its delivery job and its audit record in one atomic step.
package intake

import (
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
)

// Service accepts and changes the resources of referrals.
type Service struct {
	*gateway.Core
	parser *conform.Parser
}

// New returns the intake use case over the core.
func New(core *gateway.Core) *Service {
	return &Service{Core: core, parser: conform.NewParser(core.MaxDepth, core.UnderstoodModifiers)}
}
