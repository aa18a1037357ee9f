package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// A Task version's index terms and journey step, from the few members
// indexedTask decodes, are those of the whole Task decoded by the samply
// model: for the Gravity IG's own Task examples, withheld or not, and for
// the versions nextTaskWrite makes from them by changes of the indexed
// members, of others, and of meta.
func TestIndexedTaskHasTheWholeTasksTerms(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "fhir", "testdata", "conformance", "gravity")
	files, err := filepath.Glob(filepath.Join(dir, "Task-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Task examples in %s: %v", dir, err)
	}
	withheldTag := map[string]any{"tag": []any{map[string]any{"system": DisclosureTagSystem, "code": TagWithheld}}}
	changes := map[string]func() map[string]any{
		"status": func() map[string]any { return map[string]any{"status": TaskReceived} },
		"status and reason": func() map[string]any {
			return map[string]any{"status": TaskRejected, "statusReason": map[string]any{"text": "no capacity"}}
		},
		"business status": func() map[string]any {
			return map[string]any{"businessStatus": map[string]any{"text": "first session booked"}}
		},
		"coded ending": func() map[string]any {
			return map[string]any{"status": TaskFailed, "statusReason": map[string]any{"coding": []any{map[string]any{"code": EndDidNotAttend}}, "text": "did not attend"},
				"businessStatus": map[string]any{"coding": []any{map[string]any{"code": BusinessFirstSession}}}}
		},
		"output": func() map[string]any {
			return map[string]any{"output": []any{map[string]any{"type": map[string]any{"text": "note"}, "valueString": "seen"}}}
		},
		"owner": func() map[string]any {
			return map[string]any{"owner": map[string]any{"reference": "Organization/another-provider"}}
		},
		"identifier and for": func() map[string]any {
			return map[string]any{"identifier": []any{map[string]any{"system": "urn:example:tasks", "value": "t-9"}}, "for": map[string]any{"reference": "Patient/synthetic-2"}}
		},
		"owner removed":          func() map[string]any { return map[string]any{"owner": nil} },
		"meta: withheld tag set": func() map[string]any { return map[string]any{"meta": withheldTag} },
		"meta: tags cleared":     func() map[string]any { return map[string]any{"meta": map[string]any{"tag": []any{}}} },
	}
	now := time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)
	core := &Core{Base: "https://signpost.example/fhir", Now: func() time.Time { return now }}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, withheld := range []bool{false, true} {
			cur := &Resource{Type: TypeTask, ID: "t1", Version: 3, Owner: "gp-1", Body: WithWithheld(body, withheld)}
			for name, change := range changes {
				w := core.nextTaskWrite(cur, change(), now)
				var whole models.Task
				if err := json.Unmarshal(w.Resource.Body, &whole); err != nil {
					t.Fatal(err)
				}
				want := append(TaskTerms(cur.ID, &whole, core.Base), ClientTerm(cur.Owner))
				if !slices.Equal(w.Terms, want) {
					t.Errorf("%s, withheld %v, %s: terms %q, the whole Task's %q", filepath.Base(file), withheld, name, w.Terms, want)
				}
				// Its journey step too: what the stored version says.
				if st, ok := ReadTaskStep(w.Resource.Body); !ok || w.Step != st || w.Step != TaskStepOf(&whole) {
					t.Errorf("%s, withheld %v, %s: step %+v, the stored version's %+v", filepath.Base(file), withheld, name, w.Step, st)
				}
			}
		}
	}
}

// The terms a Task change records are its new version's: the change's
// status and owner, not the current version's (nextTaskWrite).
func TestTaskVersionIsIndexedUnderItsNewStatus(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join("..", "fhir", "testdata", "conformance", "gravity", "Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json"))
	if err != nil {
		t.Fatal(err)
	}
	core := &Core{Base: "https://signpost.example/fhir", Now: func() time.Time { return time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC) }}
	cur := &Resource{Type: TypeTask, ID: "t1", Version: 3, Owner: "gp-1", Body: body}
	w := core.nextTaskWrite(cur, map[string]any{"status": TaskCompleted, "owner": map[string]any{"reference": "Organization/another-provider"}}, core.Now())
	for _, term := range []string{StatusTerm(string(TaskCompleted)), Term("owner", "Organization/another-provider")} {
		if !slices.Contains(w.Terms, term) {
			t.Errorf("terms %q lack %q", w.Terms, term)
		}
	}
	for _, term := range []string{StatusTerm(string(TaskAccepted)), Term("owner", "Organization/SDOHCC-OrganizationCoordinationPlatformExample")} {
		if slices.Contains(w.Terms, term) {
			t.Errorf("terms %q still hold the current version's %q", w.Terms, term)
		}
	}
	if w.Expect != 3 || w.Resource.Version != 4 {
		t.Errorf("write expects %d and writes %d, want 3 and 4", w.Expect, w.Resource.Version)
	}
}
