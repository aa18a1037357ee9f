package intake

import (
	"context"

	"github.com/signpost-health/signpost/gateway"
)

// PendingAudit is the audit record of an API request that may change data,
// handed to the Service so that a change and its record are committed in
// one atomic step: no change is ever stored without its record, and the
// request waits on Redis once, not twice. The API layer fills in what it
// knows before the request runs (when, which interaction, from where); the
// Service adds who and what when it commits.
type PendingAudit struct {
	Record gateway.AuditRecord
	// Status is the HTTP status the API answers a stored outcome with, so
	// the record says exactly what the caller was told.
	Status func(*gateway.Outcome) int
	kept   bool
}

// Kept reports whether the record was committed with the change. When it
// was not (nothing was written, or the request failed), the API keeps it
// itself, as for any other interaction.
func (p *PendingAudit) Kept() bool { return p.kept }

type pendingAuditKey struct{}

// WithPendingAudit returns a context carrying p for the Service.
func WithPendingAudit(ctx context.Context, p *PendingAudit) context.Context {
	return context.WithValue(ctx, pendingAuditKey{}, p)
}

// auditWith adds the request's audit record to the commit of a single
// create, update or patch (transactions keep their record apart: what they
// touched is only known entry by entry to the API).
func (pl *plan) auditWith(ctx context.Context, reqs []*Request, transaction bool) *PendingAudit {
	p, _ := ctx.Value(pendingAuditKey{}).(*PendingAudit)
	message := len(reqs) > 0 && reqs[0].message != nil
	if p == nil || transaction || (len(reqs) != 1 && !message) || pl.outcomes[0] == nil || pl.outcomes[0].Resource == nil {
		return nil
	}
	r := p.Record
	r.Client, r.Org = pl.caller.ClientID, pl.caller.Organization
	r.What = []string{pl.outcomes[0].Resource.Ref()}
	if message { // a message writes its referral (first) and its Patient in one step
		for _, out := range pl.outcomes[1:] {
			if out != nil && out.Resource != nil {
				r.What = append(r.What, out.Resource.Ref())
			}
		}
	}
	r.Status = p.Status(pl.outcomes[0])
	pl.commit.Audit = &r
	return p
}
