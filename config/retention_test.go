package config_test

import (
	"testing"
	"time"

	"github.com/signpost-health/signpost/config"
)

func TestRetentionSettings(t *testing.T) {
	cfg, err := config.Parse([]byte("retention: { closed_after: 180d, audit_after: 8y }\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention.ClosedAfter != 180*24*time.Hour || cfg.Retention.AuditAfter != 8*365*24*time.Hour {
		t.Errorf("retention = %+v", cfg.Retention)
	}
	if err := cfg.Validate(nil); err != nil {
		t.Errorf("valid retention refused: %v", err)
	}
	def, _ := config.Parse([]byte("{}\n"), "x.yaml")
	if def.Retention != (config.Retention{}) {
		t.Errorf("default retention removes: %+v", def.Retention)
	}
	short, _ := config.Parse([]byte("retention: { closed_after: 12h, audit_after: 30d }\n"), "x.yaml")
	if ps := problemsOf(t, short.Validate(nil)); len(ps) != 2 {
		t.Errorf("short periods: %v", ps)
	}
	bad, err := config.Parse([]byte("retention: { closed_after: soon }\n"), "x.yaml")
	if err == nil {
		err = bad.Validate(nil)
	}
	if err == nil {
		t.Errorf("a bad period was accepted")
	}
}
