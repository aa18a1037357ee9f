package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/config"
)

func TestMeasuresSettings(t *testing.T) {
	cfg, err := config.Parse([]byte(`
providers:
  - { id: walk, name: Walk, organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: X1A2B }, categories: [physical-activity], delivery: { kind: portal } }
measures:
  - { categories: ["*"], questionnaires: [ons4, ucla3], at: [first-contact, completion] }
  - { categories: [physical-activity], providers: [walk], questionnaires: [ons4], at: [completion] }
questionnaires: my-measures
`), "/etc/signpost/x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := config.MeasureRule{Categories: []string{"*"}, Questionnaires: []string{"ons4", "ucla3"}, At: []config.MeasurePoint{config.MeasureFirstContact, config.MeasureCompletion}}
	if len(cfg.Measures) != 2 || !slices.Equal(cfg.Measures[0].Questionnaires, want.Questionnaires) || !slices.Equal(cfg.Measures[0].At, want.At) ||
		!slices.Equal(cfg.Measures[1].Providers, []string{"walk"}) {
		t.Errorf("measures = %+v", cfg.Measures)
	}
	if cfg.Questionnaires != "/etc/signpost/my-measures" {
		t.Errorf("questionnaires = %q, want it relative to the file", cfg.Questionnaires)
	}
	if err := cfg.Validate(func(c string) bool { return c == "physical-activity" }); err != nil {
		t.Errorf("valid measures refused: %v", err)
	}
	if err := cfg.CheckQuestionnaires(func(id string) bool { return id == "ons4" || id == "ucla3" }); err != nil {
		t.Errorf("known questionnaires refused: %v", err)
	}
	unknown := cfg.CheckQuestionnaires(func(id string) bool { return id == "ons4" })
	if ps := problemsOf(t, unknown); len(ps) != 1 || ps[0].Field != "measures[0].questionnaires[1]" || ps[0].Line == 0 {
		t.Errorf("unknown questionnaire: %+v", ps)
	}

	bad, err := config.Parse([]byte(`
measures:
  - { categories: [gardening], providers: [nobody], at: [halfway] }
  - { questionnaires: [ons4] }
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fields := fieldsOf(problemsOf(t, bad.Validate(func(c string) bool { return c == "physical-activity" })))
	for _, f := range []string{"measures[0].categories[0]", "measures[0].providers[0]", "measures[0].questionnaires", "measures[0].at[0]", "measures[1].categories", "measures[1].at"} {
		if !slices.Contains(fields, f) {
			t.Errorf("no problem named %s in %v", f, fields)
		}
	}
	def, _ := config.Parse([]byte("{}\n"), "x.yaml")
	if len(def.Measures) != 0 || def.Questionnaires != "" {
		t.Errorf("default asks measures: %+v", def.Measures)
	}
	if !strings.Contains(string(config.Example()), "measures:") {
		t.Error("the example configuration does not show measures")
	}
}
