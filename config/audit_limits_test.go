package config_test

import (
	"strings"
	"testing"

	"github.com/signpost-health/signpost/config"
)

// Callers not yet known are limited per address, the audit stream is
// bounded, and the metrics are served apart from the API — each by
// default, each configurable within limits.
func TestAddressLimitAuditAndMetricsListen(t *testing.T) {
	t.Parallel()
	d := config.Default()
	if d.RateLimit.PerAddress.PerSecond <= 0 || d.RateLimit.PerAddress.Burst < 1 {
		t.Errorf("default per-address limit %+v: want one", d.RateLimit.PerAddress)
	}
	if d.Audit.MaxEntries != config.DefaultAuditEntries || d.MetricsListen != "" {
		t.Errorf("defaults: audit %+v, metrics_listen %q", d.Audit, d.MetricsListen)
	}
	cfg, err := config.Parse([]byte("rate_limit: { per_second: 5, burst: 10, per_address: { per_second: 1, burst: 3 } }\n"+
		"audit: { max_entries: 5000 }\nmetrics_listen: \"127.0.0.1:9090\"\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if pa := cfg.RateLimit.PerAddress; pa.PerSecond != 1 || pa.Burst != 3 || cfg.Audit.MaxEntries != 5000 || cfg.MetricsListen != "127.0.0.1:9090" {
		t.Errorf("parsed %+v %+v %q", cfg.RateLimit, cfg.Audit, cfg.MetricsListen)
	}
	// rate_limit without per_address keeps the default per-address limit.
	cfg, _ = config.Parse([]byte("rate_limit: { per_second: 5, burst: 10 }\n"), "a.yaml")
	if cfg.RateLimit.PerAddress != d.RateLimit.PerAddress {
		t.Errorf("per_address %+v, want the default %+v", cfg.RateLimit.PerAddress, d.RateLimit.PerAddress)
	}
	for _, bad := range []struct{ yaml, field string }{
		{"audit: { max_entries: 0 }\n", "audit.max_entries"},
		{"audit: { max_entries: 10 }\n", "audit.max_entries"},
		{"rate_limit: { per_second: 5, burst: 10, per_address: { per_second: -1 } }\n", "rate_limit.per_address"},
		{"metrics_listen: \"9090\"\n", "metrics_listen"},
		{"listen: \"127.0.0.1:8080\"\nmetrics_listen: \"127.0.0.1:8080\"\n", "metrics_listen"},
	} {
		cfg, _ := config.Parse([]byte(bad.yaml), "a.yaml")
		if err := cfg.Validate(nil); err == nil || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("%s: %v, want a problem naming %s", strings.TrimSpace(bad.yaml), err, bad.field)
		}
	}
	if cfg, err := config.Load("", func(k string) string {
		return map[string]string{config.EnvMetricsListen: "127.0.0.1:9191"}[k]
	}, nil); err != nil || cfg.MetricsListen != "127.0.0.1:9191" {
		t.Errorf("SIGNPOST_METRICS_LISTEN: %q %v", cfg.MetricsListen, err)
	}
}
