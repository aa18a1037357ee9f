package config_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/config"
)

// categories mirrors the project's category list; the config package is
// given it rather than importing it.
var categories = []string{
	"link-worker", "physical-activity", "healthy-lifestyle", "social-connection",
	"community-activities", "peer-support", "carers", "emotional-support",
	"mental-wellbeing", "money-debt-benefits", "housing", "legal-advice",
	"food", "learning", "employment", "arts", "substance-use",
}

func isCategory(s string) bool { return slices.Contains(categories, s) }

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// secretOf builds a Standard Webhooks secret of n bytes.
func secretOf(n int, b byte) string {
	return "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, n))
}

func parseExample(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Parse(config.Example(), "example.yaml")
	if err != nil {
		t.Fatalf("Parse(example): %v", err)
	}
	return cfg
}

// problemsOf insists err is a *config.Error and returns its problems.
func problemsOf(t *testing.T, err error) []config.FieldProblem {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want an invalid configuration")
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T %q is not a *config.Error", err, err)
	}
	if len(ce.Problems) == 0 {
		t.Fatal("*config.Error with no problems")
	}
	return ce.Problems
}

func fieldsOf(ps []config.FieldProblem) []string {
	var fs []string
	for _, p := range ps {
		fs = append(fs, p.Field)
	}
	return fs
}

func TestExampleParsesAndValidates(t *testing.T) {
	t.Parallel()
	cfg := parseExample(t)
	if err := cfg.Validate(isCategory); err != nil {
		t.Fatalf("example does not validate: %v", err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Auth.Mode != config.AuthNone || !cfg.IsLoopbackListen() {
		t.Errorf("listen %q auth %q: want loopback 127.0.0.1:8080 with auth none", cfg.Listen, cfg.Auth.Mode)
	}
	if len(cfg.Clients) != 1 {
		t.Fatalf("clients = %d, want 1", len(cfg.Clients))
	}
	cl := cfg.Clients[0]
	if cl.ID != "practice-a" || cl.Name != "Example Surgery" || cl.Organization.Value != "A81001" ||
		cl.Organization.System != "https://fhir.nhs.uk/Id/ods-organization-code" {
		t.Errorf("client = %+v", cl)
	}
	want := map[string]struct {
		kind config.DeliveryKind
		cats []string
	}{
		"leeds-walking":         {config.DeliveryWebhook, []string{"physical-activity", "healthy-lifestyle"}},
		"citizens-advice-leeds": {config.DeliveryPortal, []string{"money-debt-benefits", "housing", "legal-advice"}},
		"leeds-link-workers": {config.DeliveryPortal, []string{
			"link-worker", "social-connection", "community-activities", "peer-support", "carers",
			"emotional-support", "mental-wellbeing", "food", "learning", "employment", "arts", "substance-use"}},
	}
	if len(cfg.Providers) != len(want) {
		t.Fatalf("providers = %d, want %d", len(cfg.Providers), len(want))
	}
	for id, w := range want {
		p, ok := cfg.ProviderByID(id)
		if !ok {
			t.Errorf("provider %s missing", id)
			continue
		}
		if p.Delivery.Kind != w.kind || !slices.Equal(p.Categories, w.cats) {
			t.Errorf("provider %s = kind %s %v, want %s %v", id, p.Delivery.Kind, p.Categories, w.kind, w.cats)
		}
	}
	walk, _ := cfg.ProviderByID("leeds-walking")
	if walk.Delivery.URL != "http://127.0.0.1:9001/referrals" || walk.Delivery.Payload != config.PayloadThin {
		t.Errorf("leeds-walking delivery = %s %s", walk.Delivery.URL, walk.Delivery.Payload)
	}
	if !slices.Equal(walk.Services, []string{"http://fhir.nhs.uk/Id/dos-service-id|111111111"}) {
		t.Errorf("leeds-walking services = %q, want the example's BaRS destination", walk.Services)
	}
	// Every category is used by some provider, so every referral can route.
	used := map[string]bool{}
	for _, p := range cfg.Providers {
		for _, c := range p.Categories {
			used[c] = true
		}
	}
	for _, c := range categories {
		if !used[c] {
			t.Errorf("no provider in the example takes category %s", c)
		}
	}
}

func TestExampleReturnsCopy(t *testing.T) {
	t.Parallel()
	a := config.Example()
	a[0] = 'X'
	if b := config.Example(); b[0] == 'X' {
		t.Fatal("Example shares its bytes with callers")
	}
}

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	d := config.Default()
	if err := d.Validate(isCategory); err != nil {
		t.Fatalf("Default() is invalid: %v", err)
	}
	if d.Auth.Mode != config.AuthSMART || d.Unmapped != config.UnmappedReject ||
		d.NHSNumber != config.NHSNumberStrict || d.MaxBodyBytes != 1<<20 || len(d.DeliveryRetry) != 9 {
		t.Errorf("unexpected defaults: %+v", d)
	}
}

func TestRedisURLRedacted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, secret string
	}{
		{"redis://user:hunter2@127.0.0.1:6379/0", "redis://user:xxxxx@127.0.0.1:6379/0", "hunter2"},
		{"rediss://:s3cr3t@redis.example:6380/1", "rediss://:xxxxx@redis.example:6380/1", "s3cr3t"},
		{"unix:///run/redis.sock?db=1&password=pa55", "unix:///run/redis.sock?db=1&password=xxxxx", "pa55"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", ""},
		{"redis://:p%zzword@host:6379", "", "zzword"}, // unparseable: hidden entirely
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.RedisURL = tt.in
			got := cfg.RedisURLRedacted()
			if tt.want != "" && got != tt.want {
				t.Errorf("RedisURLRedacted() = %q, want %q", got, tt.want)
			}
			if tt.secret != "" && strings.Contains(got, tt.secret) {
				t.Errorf("RedisURLRedacted() = %q shows the password", got)
			}
		})
	}
}

func TestFHIRBase(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"http://127.0.0.1:8080":          "http://127.0.0.1:8080/fhir",
		"http://127.0.0.1:8080/":         "http://127.0.0.1:8080/fhir",
		"https://nhs.example/signpost/":  "https://nhs.example/signpost/fhir",
		"https://nhs.example/signpost//": "https://nhs.example/signpost/fhir",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.PublicURL = in
			if got := cfg.FHIRBase(); got != want {
				t.Errorf("FHIRBase() = %q, want %q", got, want)
			}
		})
	}
}

func TestIsLoopbackListen(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"127.0.0.1:8080":         true,
		"127.9.9.9:0":            true,
		"[::1]:8080":             true,
		"localhost:8080":         true,
		"LOCALHOST:8080":         true,
		"[::ffff:127.0.0.1]:80":  true,
		"0.0.0.0:8080":           false,
		"[::]:8080":              false,
		"10.0.0.5:8080":          false,
		":8080":                  false,
		"localhost.example:8080": false,
		"not-host-port":          false,
	}
	for listen, want := range tests {
		t.Run(listen, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.Listen = listen
			if got := cfg.IsLoopbackListen(); got != want {
				t.Errorf("IsLoopbackListen(%q) = %v, want %v", listen, got, want)
			}
		})
	}
}

func TestByID(t *testing.T) {
	t.Parallel()
	cfg := parseExample(t)
	if p, ok := cfg.ProviderByID("citizens-advice-leeds"); !ok || p.Name != "Citizens Advice Leeds" {
		t.Errorf("ProviderByID(citizens-advice-leeds) = %v, %v", p, ok)
	}
	if _, ok := cfg.ProviderByID("practice-a"); ok {
		t.Error("ProviderByID found a client")
	}
	if c, ok := cfg.ClientByID("practice-a"); !ok || c.Organization.Value != "A81001" {
		t.Errorf("ClientByID(practice-a) = %v, %v", c, ok)
	}
	if _, ok := cfg.ClientByID("leeds-walking"); ok {
		t.Error("ClientByID found a provider")
	}
	// The pointer refers to the Config's element, not a copy.
	p, _ := cfg.ProviderByID("leeds-walking")
	p.Name = "changed"
	if cfg.Providers[0].Name != "changed" {
		t.Error("ProviderByID returned a copy")
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	e := &config.Error{Problems: []config.FieldProblem{
		{Field: "listen", Reason: "is required"},
		{Field: "providers[1].delivery.url", Reason: "must be an absolute http(s) URL", Line: 12},
		{Field: "redis_url", Reason: "must be a redis:// URL", Env: "SIGNPOST_REDIS_URL"},
		{Reason: "YAML syntax: bad", Line: 3},
	}}
	want := "invalid configuration:\n" +
		"  - listen: is required\n" +
		"  - providers[1].delivery.url: must be an absolute http(s) URL (line 12)\n" +
		"  - redis_url: must be a redis:// URL (from SIGNPOST_REDIS_URL)\n" +
		"  - line 3: YAML syntax: bad"
	if got := e.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	e.File = "signpost.yaml"
	if got := e.Error(); !strings.HasPrefix(got, "invalid configuration in signpost.yaml:\n  - listen") {
		t.Errorf("Error() with file = %q", got)
	}
}

// Only systems with a write-back target are written back to: the rest of
// their Task changes queue no write-back job.
func TestWriteBackClients(t *testing.T) {
	t.Parallel()
	cfg := parseExample(t)
	if got := cfg.WriteBackClients(); len(got) != 0 {
		t.Errorf("example (no notify): write-back clients %v, want none", got)
	}
	cfg.Clients[0].Notify = &config.Notify{FHIRBase: "https://gp-system.example/fhir"}
	if got := cfg.WriteBackClients(); len(got) != 1 || got[0] != cfg.Clients[0].ID {
		t.Errorf("with notify: write-back clients %v, want [%s]", got, cfg.Clients[0].ID)
	}
	cfg.Clients[0].Notify = &config.Notify{}
	if got := cfg.WriteBackClients(); len(got) != 0 {
		t.Errorf("notify without fhir_base: write-back clients %v, want none", got)
	}
}
