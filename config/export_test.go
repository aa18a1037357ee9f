package config_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/config"
)

func TestExportSettings(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("export: { dir: exports, keep: 2h }\n"), filepath.Join("etc", "signpost.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Export.Dir != filepath.Join("etc", "exports") || cfg.Export.Keep != 2*time.Hour {
		t.Errorf("export = %+v", cfg.Export)
	}
	if err := cfg.Validate(nil); err != nil {
		t.Errorf("valid export settings refused: %v", err)
	}
	def, err := config.Parse([]byte("listen: \"127.0.0.1:8080\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if def.Export.Keep != config.DefaultExportKeep || def.Export.Dir != "" {
		t.Errorf("default export = %+v", def.Export)
	}
}

func TestExportKeepRefused(t *testing.T) {
	t.Parallel()
	for _, keep := range []string{"tomorrow", "10s", "9000h"} {
		cfg, err := config.Parse([]byte("export: { keep: "+keep+" }\n"), "x.yaml")
		if err == nil {
			err = cfg.Validate(nil)
		}
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].Field != "export.keep" || !strings.Contains(ps[0].Reason, keep) {
			t.Errorf("keep %s: problems %v", keep, ps)
		}
	}
}

func TestExportPseudonymKeyEnv(t *testing.T) {
	t.Parallel()
	def, err := config.Parse([]byte("listen: \"127.0.0.1:8080\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if def.Export.PseudonymKeyEnv != "SIGNPOST_PSEUDONYM_KEY" {
		t.Errorf("default pseudonym_key_env %q", def.Export.PseudonymKeyEnv)
	}
	cfg, err := config.Parse([]byte("export: { pseudonym_key_env: REGION_PSEUDONYM_KEY }\n"), "x.yaml")
	if err != nil || cfg.Export.PseudonymKeyEnv != "REGION_PSEUDONYM_KEY" || cfg.Validate(nil) != nil {
		t.Errorf("pseudonym_key_env: %+v %v", cfg.Export, err)
	}
	for _, bad := range []string{`"1KEY"`, `"MY-KEY"`, `""`} {
		cfg, err := config.Parse([]byte("export: { pseudonym_key_env: "+bad+" }\n"), "x.yaml")
		if err == nil {
			err = cfg.Validate(nil)
		}
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].Field != "export.pseudonym_key_env" {
			t.Errorf("%s: problems %v", bad, ps)
		}
	}
}

// operators: are SMART clients that take exports; de-identified only
// unless their export right says full.
func TestOperators(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`auth: { mode: smart }
operators:
  - { id: evaluation, auth: { jwks_url: "https://evaluation.example/jwks.json", scopes: ["system/*.rs"] } }
  - { id: ops, auth: { jwks_url: "https://ops.example/jwks.json", scopes: ["system/*.rs"] }, export: full }
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Operators) != 2 || cfg.Operators[0].Export != config.ExportDeidentified || cfg.Operators[1].Export != config.ExportFull {
		t.Fatalf("operators = %+v", cfg.Operators)
	}
	if err := cfg.Validate(nil); err != nil {
		t.Errorf("valid operators refused: %v", err)
	}
	bad, err := config.Parse([]byte(`auth: { mode: smart }
clients:
  - { id: shared, organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: A81001 }, auth: { jwks_url: "https://gp.example/jwks.json", scopes: ["system/Task.rs"] } }
operators:
  - { id: shared, auth: { jwks_url: "https://x.example/jwks.json", scopes: ["system/*.rs"] }, export: everything }
  - { id: no-scopes, auth: { jwks_url: "https://y.example/jwks.json" } }
`), "x.yaml")
	if err == nil {
		err = bad.Validate(nil)
	}
	var fields []string
	for _, p := range problemsOf(t, err) {
		fields = append(fields, p.Field)
	}
	for _, want := range []string{"operators[0].id", "operators[0].export", "operators[1].auth.scopes"} {
		if !strings.Contains(strings.Join(fields, " "), want) {
			t.Errorf("no problem for %s: %v", want, fields)
		}
	}
}

func TestExportBirthDate(t *testing.T) {
	t.Parallel()
	def, _ := config.Parse([]byte("export: { keep: 2h }\n"), "x.yaml")
	if def.Export.BirthDate != config.BirthDateYear {
		t.Errorf("default birth_date %q", def.Export.BirthDate)
	}
	cfg, err := config.Parse([]byte("export: { birth_date: remove }\n"), "x.yaml")
	if err != nil || cfg.Export.BirthDate != config.BirthDateRemove || cfg.Validate(nil) != nil {
		t.Errorf("birth_date remove: %+v %v", cfg.Export, err)
	}
	bad, err := config.Parse([]byte("export: { birth_date: age-band }\n"), "x.yaml")
	if err == nil {
		err = bad.Validate(nil)
	}
	if ps := problemsOf(t, err); len(ps) != 1 || ps[0].Field != "export.birth_date" {
		t.Errorf("birth_date age-band: %v", ps)
	}
}
