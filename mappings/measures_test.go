package mappings_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/mappings"
)

func TestDefaultMeasures(t *testing.T) {
	m := mappings.DefaultMeasures()
	ons4, ok := m.ByID("ons4")
	if !ok || len(ons4.Scores) != 4 {
		t.Fatalf("ons4: %v, %d scores; want four scores", ok, len(ons4.Scores))
	}
	ucla, ok := m.ByCanonical("https://signpost.health/fhir/Questionnaire/ucla3|1")
	if !ok || ucla.ID != "ucla3" || len(ucla.Scores) != 1 || ucla.Scores[0].Min != 3 || ucla.Scores[0].Max != 9 {
		t.Fatalf("ucla3 by canonical: %+v", ucla)
	}
	if _, ok := m.ByCanonical("https://signpost.health/fhir/Questionnaire/ucla3|2"); ok {
		t.Error("a version not shipped was found")
	}
	if it, _ := ons4.Item("anxiety"); it.Min != 0 || it.Max != 10 || it.Type != mappings.ItemInteger || !it.Required {
		t.Errorf("anxiety item: %+v", it)
	}
	for _, q := range m.List() {
		// What Signpost serves at /fhir/Questionnaire must be valid R4.
		if res := structure.ValidateAs(q.Body, "Questionnaire"); !res.Valid() {
			t.Errorf("%s is not valid R4: %v", q.ID, res.Issues)
		}
		if !strings.Contains(string(q.Body), "Open Government Licence") {
			t.Errorf("%s does not cite its licence", q.ID)
		}
		for _, s := range q.Scores {
			if s.Code.System != mappings.MeasureCodeSystem {
				t.Errorf("%s/%s: a code outside Signpost's system must be verified first; got %s", q.ID, s.ID, s.Code.System)
			}
		}
	}
}

func TestValidLOINC(t *testing.T) {
	for _, good := range []string{"2345-7", "8480-6", "72133-2", "44249-1"} {
		if err := mappings.ValidLOINC(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{"2345-8", "8480-5", "2345", "-7", "23a5-7", "12345678-0", "2345-77"} {
		if mappings.ValidLOINC(bad) == nil {
			t.Errorf("%s passed", bad)
		}
	}
}

const minimalQ = `{"resourceType":"Questionnaire","id":"mood","url":"https://example.org/Questionnaire/mood","version":"1","title":"Mood","status":"active","copyright":"ours",
"item":[{"linkId":"mood","type":"integer","required":true,"text":"Mood?","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/minValue","valueInteger":1},{"url":"http://hl7.org/fhir/StructureDefinition/maxValue","valueInteger":5}]}]}`

func TestLoadMeasuresProblems(t *testing.T) {
	good := fstest.MapFS{
		"mood.json":  {Data: []byte(minimalQ)},
		"scores.csv": {Data: []byte(mappings.ScoresHeader + "\nmood,mood,mood,higher,http://loinc.org,72133-2,Mood,a checked LOINC code\n")},
	}
	m, err := mappings.LoadMeasures(good, "local")
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := m.ByID("mood"); q.Scores[0].Min != 1 || q.Scores[0].Max != 5 {
		t.Errorf("score bounds %+v", q.Scores[0])
	}
	bad := fstest.MapFS{
		"mood.json": {Data: []byte(strings.Replace(minimalQ, `"copyright":"ours",`, "", 1))},
		"scores.csv": {Data: []byte(mappings.ScoresHeader + "\nmood,mood,mood,higher,http://loinc.org,72133-3,Mood,x\n" +
			"mood,other,missing,sideways,http://snomed.info/sct,390893008,Other,x\n")},
	}
	_, err = mappings.LoadMeasures(bad, "local")
	if err == nil {
		t.Fatal("a bad set loaded")
	}
	for _, want := range []string{"copyright must cite", "mood.json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	bad["mood.json"] = good["mood.json"]
	_, err = mappings.LoadMeasures(bad, "local")
	for _, want := range []string{"scores.csv:2", "LOINC check digit", "scores.csv:3", "Verhoeff", "better \"sideways\"", "item \"missing\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
