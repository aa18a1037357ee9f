package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A measure rule naming a Questionnaire Signpost does not hold, or a
// deployment's own measures with a problem, stop serve, saying which.
func TestServeRefusesMeasuresItCannotAsk(t *testing.T) {
	t.Parallel()
	unknown := writeFile(t, "signpost.yaml", testConfig+"measures: [{ categories: [\"*\"], questionnaires: [ons4, phq9], at: [first-contact] }]\n")
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "-config", unknown}, env(nil), &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "measures[0].questionnaires[1]") || !strings.Contains(err.Error(), `"phq9"`) || exitCode(err) == 0 {
		t.Errorf("an unknown Questionnaire: %v", err)
	}

	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "mood.json"), []byte(`{"resourceType":"Questionnaire","id":"mood","url":"https://example.org/Questionnaire/mood","version":"1","title":"Mood","status":"active",`+
		`"item":[{"linkId":"mood","type":"string","text":"How are you?"}]}`), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "scores.csv"), []byte("questionnaire,score,items,better,system,code,display,source\n"), 0o600))
	own := writeFile(t, "signpost.yaml", testConfig+"questionnaires: \""+dir+"\"\nmeasures: [{ categories: [\"*\"], questionnaires: [mood], at: [completion] }]\n")
	err = run(context.Background(), []string{"serve", "-config", own}, env(nil), &bytes.Buffer{}, &stderr)
	for _, want := range []string{"questionnaires:", "mood.json", "copyright must cite", `type "string" is not supported`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a bad measure set: error lacks %q: %v", want, err)
		}
	}
}
