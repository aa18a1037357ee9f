package web_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/portal"
)

// BenchmarkOutcomesView times the outcomes view over 2,000 referrals, a
// third accepted and completed: go test ./gateway/web -run x -bench Outcomes.
// The view reads every Task's versions, so its cost grows with the period's
// referrals; the figure is the reason to keep periods to what people ask.
func BenchmarkOutcomesView(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	staff := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	for i := range 2000 {
		task := e.refer(fmt.Sprintf("BENCH-%d", i), "390893007", "Bench Example")
		if i%3 == 0 {
			for v, s := range []portal.Step{{Action: portal.ActionAccept}, {Action: portal.ActionComplete, Code: "goals-met"}} {
				s.Version = 1 + v
				if _, err := e.svc.Portal.Progress(ctx, staff, task, s, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	e.user("", "lead@example.org")
	lead := e.browser()
	lead.signIn("lead@example.org")
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if p := lead.get("/insights/"); p.status != http.StatusOK {
			b.Fatal(p.status)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/view")
}
