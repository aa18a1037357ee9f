package intake

import (
	"github.com/signpost-health/signpost/gateway"
)

// auditWith adds the request's audit record to the commit of a single
// create, update, patch or message, in the same atomic step as the change:
// no change is ever stored without its record, and the request waits on
// Redis once, not twice. The caller said when, which interaction and from
// where; this adds who, what, and the status the caller answers.
func (pl *plan) auditWith(reqs []*Request, audit *gateway.AuditIntent) {
	pl.commit.Audit = nil
	message := len(reqs) > 0 && reqs[0].message != nil
	if audit == nil || (len(reqs) != 1 && !message) || pl.outcomes[0] == nil || pl.outcomes[0].Resource == nil {
		return
	}
	r := audit.Record
	r.Client, r.Org = pl.caller.ClientID, pl.caller.Organization
	r.What = []string{pl.outcomes[0].Resource.Ref()}
	if message { // a message writes its referral (first) and its Patient in one step
		for _, out := range pl.outcomes[1:] {
			if out != nil && out.Resource != nil {
				r.What = append(r.What, out.Resource.Ref())
			}
		}
	}
	r.Status = audit.StatusOther
	if pl.outcomes[0].Created {
		r.Status = audit.StatusCreated
	}
	pl.commit.Audit = &r
}
