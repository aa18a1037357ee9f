// Package usecases assembles Signpost's use cases over one core: the one place
// that knows them all, so that the server, the worker and the tests wire
// them the same way.
package usecases

import (
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/delivery"
	"github.com/signpost-health/signpost/gateway/disclosures"
	"github.com/signpost-health/signpost/gateway/export"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/intake"
	"github.com/signpost-health/signpost/gateway/measures"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/search"
	"github.com/signpost-health/signpost/gateway/subscriptions"
	"github.com/signpost-health/signpost/gateway/writeback"
)

// Set is every use case of one deployment, sharing one core.
type Set struct {
	// Core reads resources under the visibility rules and holds the store,
	// the providers and the policies every use case shares.
	Core          *gateway.Core
	Intake        *intake.Service
	Search        *search.Service
	Delivery      *delivery.Service
	Subscriptions *subscriptions.Service
	WriteBack     *writeback.Service
	Insights      *insights.Service
	Portal        *portal.Service
	// Measures serves the outcome measures and records providers' answers.
	Measures *measures.Service
	// Export is the Bulk Data export; nil until the caller sets it (it
	// needs a directory and a job store beside the core).
	Export *export.Service
	// Disclosures answers a referrer's "who saw this referral"; nil until
	// the caller sets it (it reads the audit trail beside the core).
	Disclosures *disclosures.Service
}

// New wires the use cases over a core made from o. The portal lists through
// search and stores steps through intake, as the API would.
func New(o gateway.Options) *Set {
	core := gateway.NewCore(o)
	a := &Set{
		Core:          core,
		Intake:        intake.New(core),
		Search:        search.New(core),
		Delivery:      delivery.New(core),
		Subscriptions: subscriptions.New(core),
		WriteBack:     writeback.New(core),
		Insights:      insights.New(core),
		Measures:      measures.New(core),
	}
	a.Portal = portal.New(core, a.Search, a.Intake)
	a.Portal.UseMeasures(a.Measures)
	return a
}
