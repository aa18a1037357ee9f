// Package portal is what a small charity's staff do in the web pages: the
// inbox of their referrals, one referral's detail and history, and the
// steps they record (accept, decline, contact, complete and the rest).
package portal

import (
	"context"
	"net/url"

	"github.com/signpost-health/signpost/gateway"
)

// Service serves the portal's lists and steps.
type Service struct {
	*gateway.Core
	search Searcher
	tasks  TaskWriter
	// measures records outcome measures (UseMeasures); nil: none offered.
	measures MeasureRecorder
}

// Searcher is the search use case, as the inbox lists a provider's
// referrals: with the same visibility rules as an API search.
type Searcher interface {
	Search(ctx context.Context, caller gateway.Caller, typ string, params url.Values, lenient bool) (*gateway.SearchResult, error)
}

// TaskWriter is the intake use case, as a step stores the Task's next
// version: under every rule a PUT from the provider's own system follows.
type TaskWriter interface {
	Update(ctx context.Context, caller gateway.Caller, typ, id string, body []byte, ifMatch string, audit *gateway.AuditIntent) (*gateway.Outcome, error)
}

// New returns the portal use case over the core, listing through search and
// storing steps through tasks.
func New(core *gateway.Core, search Searcher, tasks TaskWriter) *Service {
	return &Service{Core: core, search: search, tasks: tasks}
}
