package auditevent

import (
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
)

// Every AuditEvent Signpost renders — API interactions allowed and
// refused, unauthenticated ones, searches, disclosures, web sign-ins — is
// valid R4, whatever the record leaves empty.
func TestAuditEventsAreValidR4(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	org := gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "A81001"}
	records := map[string]gateway.AuditRecord{
		"read":            {Recorded: now, Interaction: "read", Action: "R", Status: 200, Client: "practice-a", Org: org, Address: "127.0.0.1", What: []string{"Task/t1"}},
		"unauthenticated": {Recorded: now, Interaction: "search-type", Action: "E", Status: 401},
		"search":          {Recorded: now, Interaction: "search-type", Action: "E", Status: 200, Client: "walking", Address: "::1", Query: "Task?status", What: []string{"Task/a", "Task/b"}, Unlisted: 3},
		"failed create":   {Recorded: now, Interaction: "create", Action: "C", Status: 500, Client: "practice-a", Address: "127.0.0.1"},
		"token":           {Recorded: now, Interaction: "token", Action: "E", Status: 401, Address: "127.0.0.1"},
		"disclosure":      {Recorded: now, Interaction: gateway.InteractionExport, Action: "R", Status: 200, Client: "walking", Query: "webhook-full", What: []string{"Task/t1/_history/2", "Patient/p1/_history/1"}},
		"bare disclosure": {Recorded: now, Interaction: gateway.InteractionExport, Action: "R", Status: 200},
		"sign-in":         {Recorded: now, Interaction: gateway.InteractionLogin, Action: "E", Status: 200, Address: "127.0.0.1", User: "staff@example.org"},
		"refused sign-in": {Recorded: now, Interaction: gateway.InteractionLogin, Action: "E", Status: 401, Address: "127.0.0.1"},
		"web step":        {Recorded: now, Interaction: "update", Action: "U", Status: 200, Client: "walking", Address: "127.0.0.1", User: "staff@example.org", What: []string{"Task/t1"}},
	}
	for name, r := range records {
		for _, observer := range []string{"https://signpost.example/fhir", ""} {
			for _, is := range structure.Validate(Render(r, observer)).Issues {
				t.Errorf("%s (observer %q): %s %v: %s", name, observer, is.Code, is.Expression, is.Diagnostics)
			}
		}
	}
}
