package web_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/web"
)

// refusingUpdates keeps every audit record but a web "update" one, which
// it refuses as go-redis does once the browser has gone (the request's
// context cancelled) or as Redis refuses an append over maxmemory. asked
// counts the update records it was given.
type refusingUpdates struct {
	web.Auditor
	asked *atomic.Int64
}

func (a refusingUpdates) Audit(ctx context.Context, r *gateway.AuditRecord) error {
	if r.Interaction == "update" {
		a.asked.Add(1)
		return context.Canceled
	}
	return a.Auditor.Audit(ctx, r)
}

// A step stored from the inbox has its audit record committed with it: a
// record appended after the step could be lost with the step kept and the
// GP told. Only a refused step, which stores nothing, is recorded apart.
func TestAStepIsStoredWithItsAuditRecord(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	e := setupWith(t, func(_ *env, pages *web.Options, _ *httpapi.Options) {
		pages.Auditor = refusingUpdates{pages.Auditor, &asked}
	})
	e.user("walking", "sam@example.org")
	task := e.refer("AUD-1", "390893007", "Alex Example")
	b := e.browser()
	b.signIn("sam@example.org")
	b.get("/portal/referrals/" + task)
	if p := b.post("/portal/referrals/"+task, url.Values{"action": {"accept"}, "version": {"1"}}); p.status != http.StatusSeeOther {
		t.Fatalf("accept: %d", p.status)
	}
	if e.version(task) != 2 {
		t.Fatalf("accept made version %d, want 2", e.version(task))
	}
	n := 0
	for _, r := range e.audited() {
		if r.Action == "U" && r.Interaction == "update" && r.Status == http.StatusSeeOther && r.User == "sam@example.org" &&
			r.Client == "walking" && slices.Equal(r.What, []string{gateway.TypeTask + "/" + task}) {
			n++
		}
	}
	if n != 1 || asked.Load() != 0 {
		t.Errorf("the accepted step (version 2) has %d audit records naming Task/%s (want 1), and %d were appended apart (want 0)", n, task, asked.Load())
	}

	// A step refused (here a stale page) stored nothing, and its record
	// is kept apart.
	if p := b.post("/portal/referrals/"+task, url.Values{"action": {"contact"}, "version": {"1"}}); p.status != http.StatusPreconditionFailed {
		t.Fatalf("a step on version 1 of version 2: %d", p.status)
	}
	if e.version(task) != 2 || asked.Load() != 1 {
		t.Errorf("after a refused step: version %d, %d records appended apart (want 1)", e.version(task), asked.Load())
	}
}
