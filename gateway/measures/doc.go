// Package measures is the use case of outcome measures: the Questionnaires
// a deployment offers (served read-only), and a provider recording a
// person's answers for a referral — at first contact and at completion —
// as a QuestionnaireResponse checked against its Questionnaire, scored into
// coded Observations and linked to the referral Task (Task.output), all in
// one atomic step with the Task's new version, its Provenance, the GP
// side's notifications and the audit record. It imports the core and the
// rule packages, never another use case.
package measures

import (
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
)

// Service records and serves outcome measures.
type Service struct {
	*gateway.Core
	parser *conform.Parser
}

// New returns the measures use case over the core.
func New(core *gateway.Core) *Service {
	return &Service{Core: core, parser: conform.NewParser(core.MaxDepth, core.UnderstoodModifiers)}
}
