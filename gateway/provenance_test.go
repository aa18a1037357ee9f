package gateway

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/fhir/structure"
)

// The Provenance of a version Signpost makes itself (a delivery recorded)
// is valid R4, targets that version and names Signpost as custodian; one
// made for a caller names the caller.
func TestProvenanceOfATaskVersion(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	in := referralTaskInputs{subject: []byte(`{"reference":"Patient/pat-1"}`),
		routing: &Routing{Category: "social-connection", Provider: &Provider{ID: "leeds-walking", Name: "Leeds Walking"}}, now: now}
	o, err := fhir.ParseResource(NewReferralTask("task-1", "sr-1", in.subject, nil, "routine", in.routing, now), fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur := &Resource{Type: TypeTask, ID: "task-1", Version: 1, LastUpdated: now, Owner: "practice-a", Body: o.WithServerFields("task-1", "1", Instant(now))}
	view, err := ParseTask(cur.Body)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCore(Options{Now: func() time.Time { return now.Add(time.Second) }})
	commit, _ := c.TaskVersion(cur, view, map[string]any{"businessStatus": map[string]any{"text": "delivered"}}, nil, nil)
	provider := Caller{ClientID: "walking", Kind: CallerProvider, Organization: Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1A2B"}}
	byCaller := c.TaskVersionBy(cur, view, map[string]any{}, c.AgentOf(provider), now.Add(time.Second))
	// A person's name is theirs to spell: quotes, a backslash and markup
	// are escaped in the body, which stays valid.
	person := provider
	person.Person = `Ann "Nan" O'Neil \ <b>&</b> Ŵ`
	byPerson := c.TaskVersionBy(cur, view, map[string]any{}, c.AgentOf(person), now.Add(time.Second))
	for name, tc := range map[string]struct {
		prov *Resource
		role string
		who  string
	}{
		"Signpost's own": {commit.Writes[1].Resource, "custodian", `{"display":"Signpost"}`},
		"a caller's":     {byCaller[1].Resource, "performer", `{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"X1A2B"},"reference":"Organization/walking"}`},
		"a person's": {byPerson[1].Resource, "performer",
			`{"display":"Ann \"Nan\" O'Neil \\ \u003cb\u003e\u0026\u003c/b\u003e Ŵ","identifier":{"system":"` + PortalUserSystem + `","value":"Ann \"Nan\" O'Neil \\ \u003cb\u003e\u0026\u003c/b\u003e Ŵ"}}`},
	} {
		if tc.prov.Type != TypeProvenance {
			t.Fatalf("%s: the second write is a %s", name, tc.prov.Type)
		}
		for _, is := range structure.Validate(tc.prov.Body).Issues {
			t.Errorf("%s: %s %v: %s", name, is.Code, is.Expression, is.Diagnostics)
		}
		var got struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Meta         struct{ VersionID, LastUpdated string }
			Target       []struct{ Reference string }
			Recorded     string
			Activity     struct {
				Coding []struct{ System, Code string }
			}
			Agent []struct {
				Type struct{ Coding []struct{ Code string } }
				Who  json.RawMessage
			}
		}
		if err := json.Unmarshal(tc.prov.Body, &got); err != nil {
			t.Fatal(err)
		}
		if got.ResourceType != "Provenance" || got.ID != tc.prov.ID || got.Meta.VersionID != "1" || got.Meta.LastUpdated != "2026-06-01T09:00:01.000Z" ||
			got.Recorded != got.Meta.LastUpdated || len(got.Target) != 1 || got.Target[0].Reference != "Task/task-1/_history/2" ||
			len(got.Activity.Coding) != 1 || got.Activity.Coding[0].Code != "UPDATE" {
			t.Errorf("%s: %s", name, tc.prov.Body)
		}
		if len(got.Agent) != 1 || len(got.Agent[0].Type.Coding) != 1 || got.Agent[0].Type.Coding[0].Code != tc.role || string(got.Agent[0].Who) != tc.who {
			t.Errorf("%s: agent %s", name, tc.prov.Body)
		}
	}
}
