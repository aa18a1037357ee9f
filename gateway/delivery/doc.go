// Package delivery is the provider's side of the queue: the message and
// Task a provider is sent, what is recorded when it is delivered or given
// up on, and the redrive of dead letters.
package delivery

import "github.com/signpost-health/signpost/gateway"

// Service delivers referrals to providers.
type Service struct{ *gateway.Core }

// New returns the delivery use case over the core.
func New(core *gateway.Core) *Service { return &Service{core} }
