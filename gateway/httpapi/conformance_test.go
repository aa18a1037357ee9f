package httpapi_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// The Gravity IG's ServiceRequest examples (fhir/testdata/conformance, unmodified)
// are accepted once a deployment adds their US SNOMED CT extension codes to
// its code table, and the Patient they refer to is held.
func TestGravityServiceRequestsAccepted(t *testing.T) {
	t.Parallel()
	var table strings.Builder
	table.WriteString(mappings.Header + "\n")
	for _, e := range mappings.Default().Entries() {
		table.WriteString(e.System + "," + e.Code + ",\"" + e.Display + "\"," + e.Category + "\n")
	}
	table.WriteString("http://snomed.info/sct,467771000124109,Assistance with application for food pantry program,food\n")
	table.WriteString("http://snomed.info/sct,467751000124104,Garden program,community-activities\n")
	table.WriteString("http://snomed.info/sct,467681000124101,Summer food program,food\n")
	codes, err := mappings.Load(strings.NewReader(table.String()), "deployment.csv")
	if err != nil {
		t.Fatal(err)
	}
	food := gateway.Provider{ID: "pantry", Name: "Community Pantry", Categories: []string{"food", "community-activities"},
		Organization: gateway.Identifier{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X9F0D"}}
	e := setup(t, func(o *options) { o.codes = codes; o.providers = append([]gateway.Provider{food}, testProviders...) })

	// The examples' subject, as a synthetic Patient under the id they use.
	e.put("/Patient/pat-53234", []byte(`{"resourceType":"Patient","id":"pat-53234","name":[{"family":"Testpatient"}]}`)).must(t, http.StatusCreated)

	dir := filepath.Join("..", "..", "fhir", "testdata", "conformance", "gravity")
	for _, tc := range []struct {
		file      string
		wantTasks int // only the active referral is routed
	}{
		{"ServiceRequest-SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample.json", 1},
		{"ServiceRequest-SDOHCC-ServiceRequestSubreferralGardenProgramExample.json", 0},
		{"ServiceRequest-SDOHCC-ServiceRequestSubreferralSummerFoodProgramExample.json", 0},
	} {
		body, err := os.ReadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		sr := e.post("/ServiceRequest", body).must(t, http.StatusCreated).json(t)
		tasks := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)), "match")
		if len(tasks) != tc.wantTasks {
			t.Errorf("%s: %d referral Tasks, want %d", tc.file, len(tasks), tc.wantTasks)
			continue
		}
		if tc.wantTasks == 1 {
			owner := tasks[0]["owner"].(map[string]any)["reference"]
			requester := tasks[0]["requester"].(map[string]any)["identifier"].(map[string]any)["value"]
			if owner != "Organization/pantry" || requester != practiceODS {
				t.Errorf("%s: owner %v requester %v", tc.file, owner, requester)
			}
		}
		// Stored as sent: the narrative survives byte for byte.
		if got := e.get("/ServiceRequest/" + sr["id"].(string)).body; !strings.Contains(string(got), `Generated Narrative: ServiceRequest`) {
			t.Errorf("%s: narrative lost", tc.file)
		}
	}
	// Without the deployment's codes, the active example is refused as unmapped.
	plain := setup(t)
	plain.put("/Patient/pat-53234", []byte(`{"resourceType":"Patient","id":"pat-53234"}`)).must(t, http.StatusCreated)
	body, _ := os.ReadFile(filepath.Join(dir, "ServiceRequest-SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample.json"))
	res := plain.post("/ServiceRequest", body).must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(res.body), "http://snomed.info/sct|467771000124109") {
		t.Errorf("422 does not name the code: %s", res.body)
	}
}

func TestCapabilityStatementTellsTheTruth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cs := e.get("/metadata").must(t, http.StatusOK).json(t)
	if cs["resourceType"] != "CapabilityStatement" || cs["fhirVersion"] != "4.0.1" {
		t.Fatalf("not an R4 CapabilityStatement: %v", cs)
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	types := map[string]map[string]any{}
	for _, r := range rest["resource"].([]any) {
		m := r.(map[string]any)
		types[m["type"].(string)] = m
	}
	if len(types) != 7+len(gateway.SupportingTypes()) || types["AuditEvent"] == nil || types["ServiceRequest"] == nil || types["Task"] == nil || types["Patient"] == nil || types["Provenance"] == nil || types["Subscription"] == nil ||
		types["Questionnaire"] == nil {
		t.Fatalf("resource types: %v", types)
	}
	// A message's supporting resources are read by id, and say so; a
	// provider also records (and corrects) outcome measures, and a GP
	// system creates and updates a Consent on its own.
	for _, typ := range gateway.SupportingTypes() {
		r := types[typ]
		want := "[map[code:read] map[code:vread]]"
		if typ == gateway.TypeQuestionnaireResponse {
			want = "[map[code:create] map[code:read] map[code:vread] map[code:update]]"
		}
		if typ == "Consent" {
			want = "[map[code:create] map[code:update] map[code:read] map[code:vread]]"
		}
		if r == nil || fmt.Sprint(r["interaction"]) != want || r["searchParam"] != nil {
			t.Errorf("%s: %v; want %s only", typ, r, want)
		}
	}
	if q := types["Questionnaire"]; fmt.Sprint(q["interaction"]) != "[map[code:read] map[code:vread] map[code:search-type]]" {
		t.Errorf("Questionnaire: %v; want read, vread and search only", q)
	}
	// Every search parameter it lists must be accepted by search.
	for typ, r := range types {
		params, _ := r["searchParam"].([]any)
		for _, p := range params {
			name := p.(map[string]any)["name"].(string)
			value := "x"
			switch name {
			case "_lastUpdated":
				value = "gt2020-01-01"
			case "_count":
				value = "5"
			case "_sort":
				value = "_lastUpdated"
			case "entity":
				continue // names one referral of the caller's: TestReferrerReadsTheDisclosures
			}
			if res := e.get("/" + typ + "?" + name + "=" + value); res.status != http.StatusOK {
				t.Errorf("%s?%s listed in metadata but refused: %d %s", typ, name, res.status, res.body)
			}
		}
	}
	// And what it does not list is refused: no delete, no history of a type.
	e.do(http.MethodDelete, "/Task/x", nil).must(t, http.StatusMethodNotAllowed)
	if types["Patient"]["updateCreate"] != true || types["Task"]["updateCreate"] != false {
		t.Errorf("updateCreate: Patient %v, Task %v", types["Patient"]["updateCreate"], types["Task"]["updateCreate"])
	}
}
