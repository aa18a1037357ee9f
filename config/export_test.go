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
