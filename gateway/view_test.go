package gateway

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/signpost-health/signpost/fhir"
)

// The Gravity IG's own Task examples (fhir/testdata/conformance, unmodified) read
// correctly: status, focus, owner and the closed-loop output.
func TestReadGravityTasks(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "fhir", "testdata", "conformance", "gravity")
	for _, tc := range []struct {
		file, status, focus, owner, outputType, outputRef string
	}{
		{"Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json", "accepted",
			"ServiceRequest/SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample", "Organization/SDOHCC-OrganizationCoordinationPlatformExample", "", ""},
		{"Task-SDOHCC-TaskReferralManagementOrderFulfillmentCompletedExample.json", "completed",
			"ServiceRequest/SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample", "Organization/SDOHCC-OrganizationCoordinationPlatformExample",
			"resulting-activity", "Procedure/SDOHCC-ProcedureFoodPantryApplicationAssistanceExample"},
		{"Task-SDOHCC-TaskReferralManagementOrderSubtaskAcceptedExample.json", "accepted", "", "Organization/SDOHCC-OrganizationClinicExample", "", ""},
		{"Task-SDOHCC-TaskReferralManagementOrderSubtaskCompletedExample.json", "completed", "", "Organization/SDOHCC-OrganizationClinicExample", "resulting-activity", ""},
		{"Task-SDOHCC-TaskPatientMakeAppointmentCompletedExample.json", "completed", "", "Patient/pat-53234", "", ""},
		{"Task-SDOHCC-TaskPatientRiskQuestionnaireCompletedExample.json", "completed", "", "Patient/pat-53234", "", ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fhir.ParseResource(body, fhir.ParseOptions{}); err != nil {
				t.Fatalf("raw checks refuse a published example: %v", err)
			}
			v, err := ParseTask(body)
			if err != nil {
				t.Fatal(err)
			}
			if string(v.Status) != tc.status || v.Owner != tc.owner || (tc.focus != "" && v.Focus != tc.focus) || v.For != "Patient/pat-53234" {
				t.Errorf("view = %+v", v)
			}
			if tc.outputType != "" {
				if len(v.Outputs) == 0 || v.Outputs[0].Type.Code != tc.outputType {
					t.Fatalf("outputs = %+v", v.Outputs)
				}
				if tc.outputRef != "" && v.Outputs[0].Reference != tc.outputRef {
					t.Errorf("output reference = %q", v.Outputs[0].Reference)
				}
			}
		})
	}
}
