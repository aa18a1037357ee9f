// Package insights turns referral histories into journeys and the
// outcomes report (counts, stages, durations) for commissioners, as CSV and
// as a FHIR MeasureReport.
package insights

import "github.com/signpost-health/signpost/gateway"

// Service reports on referral outcomes.
type Service struct{ *gateway.Core }

// New returns the insights use case over the core.
func New(core *gateway.Core) *Service { return &Service{core} }
