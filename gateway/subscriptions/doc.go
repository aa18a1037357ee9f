// Package subscriptions is the GP system's side of status changes:
// topic-based subscriptions (R5 Backport on R4), the subscriptions a Task
// change matches, the notification Bundles they are sent, and their status.
package subscriptions

import "github.com/signpost-health/signpost/gateway"

// Service answers and notifies subscriptions.
type Service struct{ *gateway.Core }

// New returns the subscriptions use case over the core.
func New(core *gateway.Core) *Service { return &Service{core} }
