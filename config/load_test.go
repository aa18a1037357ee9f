package config_test

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/config"
)

var validFile = filepath.Join("testdata", "valid.yaml")

func TestLoadFile(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(validFile, noEnv, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != validFile {
		t.Errorf("Path = %q, want %q", cfg.Path, validFile)
	}
	wantRetry := []time.Duration{time.Second, 90 * time.Second, 2 * time.Hour, 72 * time.Hour}
	if !slices.Equal(cfg.DeliveryRetry, wantRetry) {
		t.Errorf("DeliveryRetry = %v, want %v", cfg.DeliveryRetry, wantRetry)
	}
	// Host bits are dropped so the prefixes compare and contain as written.
	wantAllow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if !slices.Equal(cfg.OutboundAllow, wantAllow) {
		t.Errorf("OutboundAllow = %v, want %v", cfg.OutboundAllow, wantAllow)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}; !slices.Equal(cfg.TrustedProxies, want) {
		t.Errorf("TrustedProxies = %v, want %v", cfg.TrustedProxies, want)
	}
	if cfg.NHSNumber != config.NHSNumberWarn || cfg.Unmapped != config.UnmappedReject ||
		cfg.Auth.Mode != config.AuthSMART || cfg.MaxBodyBytes != 2048 {
		t.Errorf("policies = %q %q %q %d", cfg.NHSNumber, cfg.Unmapped, cfg.Auth.Mode, cfg.MaxBodyBytes)
	}
	if got, want := cfg.FHIRBase(), "https://signpost.example/fhir"; got != want {
		t.Errorf("FHIRBase() = %q, want %q", got, want)
	}
	if got, want := cfg.Mappings, filepath.Join("testdata", "codes.csv"); got != want {
		t.Errorf("Mappings = %q, want %q (relative to the file)", got, want)
	}

	cl, ok := cfg.ClientByID("practice-a")
	if !ok {
		t.Fatal("client practice-a missing")
	}
	// YAML written as a mapping arrives as JSON for the key handling code.
	want := `{"keys":[{"crv":"P-256","kid":"one","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	if string(cl.Auth.JWKS) != want {
		t.Errorf("JWKS = %s\nwant %s", cl.Auth.JWKS, want)
	}
	if !slices.Equal(cl.Auth.Scopes, []string{"system/ServiceRequest.c", "system/Task.rs"}) {
		t.Errorf("Scopes = %v", cl.Auth.Scopes)
	}
	if cl.Notify == nil || *cl.Notify != (config.Notify{FHIRBase: "https://gp.example/fhir", BearerTokenEnv: "GP_A_TOKEN"}) {
		t.Errorf("Notify = %+v", cl.Notify)
	}
	p, ok := cfg.ProviderByID("leeds-walking")
	if !ok {
		t.Fatal("provider leeds-walking missing")
	}
	wantDelivery := config.Delivery{Kind: config.DeliveryFHIR, URL: "https://walking.example/fhir", Payload: config.PayloadFull}
	if !reflect.DeepEqual(p.Delivery, wantDelivery) || p.Auth.JWKSURL != "https://walking.example/jwks.json" || p.Auth.JWKS != nil {
		t.Errorf("provider = %+v", p)
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]string{
		"empty":         "",
		"comments only": "# nothing set\n",
		"null value":    "listen:\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse([]byte(data), "")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			d := config.Default()
			if cfg.Listen != d.Listen || cfg.RedisURL != d.RedisURL || !slices.Equal(cfg.DeliveryRetry, d.DeliveryRetry) ||
				cfg.Auth != d.Auth || cfg.MaxBodyBytes != d.MaxBodyBytes || cfg.Unmapped != d.Unmapped {
				t.Errorf("Parse(%q) = %+v, want defaults", data, cfg)
			}
		})
	}
}

func TestParseKeepsDefaultsForMissingKeys(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("listen: \"127.0.0.1:9999\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.PublicURL != config.Default().PublicURL ||
		!slices.Equal(cfg.DeliveryRetry, config.DefaultDeliveryRetry()) {
		t.Errorf("got %+v", cfg)
	}
	// An explicitly empty list is the operator's choice, and then invalid.
	cfg, err = config.Parse([]byte("delivery_retry: []\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	ps := problemsOf(t, cfg.Validate(nil))
	if !slices.Equal(fieldsOf(ps), []string{"delivery_retry"}) || ps[0].Line != 1 {
		t.Errorf("problems = %v", ps)
	}
}

func TestParseMappingsPath(t *testing.T) {
	t.Parallel()
	abs, err := filepath.Abs(filepath.Join("testdata", "codes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, mappings, file, want string }{
		{"relative to file", "codes.csv", filepath.Join("etc", "signpost", "signpost.yaml"), filepath.Join("etc", "signpost", "codes.csv")},
		{"relative up", "../shared/codes.csv", filepath.Join("etc", "signpost", "signpost.yaml"), filepath.Join("etc", "shared", "codes.csv")},
		{"absolute kept", abs, filepath.Join("etc", "signpost.yaml"), abs},
		{"no file name", "codes.csv", "", "codes.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse([]byte("mappings: "+tt.mappings+"\n"), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Mappings != tt.want {
				t.Errorf("Mappings = %q, want %q", cfg.Mappings, tt.want)
			}
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("listen: \"127.0.0.1:8080\"\nproviders: [\n  - id: x\n"), "broken.yaml")
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Field != "" || ps[0].Line == 0 || !strings.Contains(ps[0].Reason, "YAML syntax") {
		t.Errorf("problems = %#v", ps)
	}
	if !strings.HasPrefix(err.Error(), "invalid configuration in broken.yaml:\n  - line ") {
		t.Errorf("Error() = %q", err)
	}
	if !reflect.DeepEqual(cfg, config.Config{}) {
		t.Errorf("Parse returned %+v with a syntax error", cfg)
	}
}

func TestParseRejectsSecondDocument(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte("listen: \"127.0.0.1:8080\"\n---\nlisten: \"127.0.0.1:9\"\n"), "two.yaml")
	ps := problemsOf(t, err)
	if len(ps) != 1 || !strings.Contains(ps[0].Reason, "more than one YAML document") {
		t.Errorf("problems = %v", ps)
	}
}

func TestLoadUnknownKeyNamesLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "unknown_key.yaml")
	_, err := config.Load(path, noEnv, nil)
	ps := problemsOf(t, err)
	if len(ps) != 1 {
		t.Fatalf("problems = %v", ps)
	}
	p := ps[0]
	if p.Field != "providers[0].delivery.payloud" || p.Line != 8 || !strings.Contains(p.Reason, "not a known setting") {
		t.Errorf("problem = %#v", p)
	}
	msg := err.Error()
	for _, want := range []string{path, "providers[0].delivery.payloud", "line 8"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Error() lacks %q:\n%s", want, msg)
		}
	}
}

func TestLoadEnvOverridesFile(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{
		"SIGNPOST_LISTEN":          "127.0.0.1:9999",
		"SIGNPOST_REDIS_URL":       "redis://:pw@redis.internal:6380/5",
		"SIGNPOST_PUBLIC_URL":      "https://signpost.nhs.example",
		"SIGNPOST_REDIS_NAMESPACE": "signpost-demo",
	})
	cfg, err := config.Load(validFile, env, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.RedisURL != "redis://:pw@redis.internal:6380/5" ||
		cfg.PublicURL != "https://signpost.nhs.example" || cfg.RedisNamespace != "signpost-demo" {
		t.Errorf("env did not win: listen %q redis %q public %q", cfg.Listen, cfg.RedisURLRedacted(), cfg.PublicURL)
	}
	// Everything the environment does not set still comes from the file.
	if cfg.MaxBodyBytes != 2048 || cfg.NHSNumber != config.NHSNumberWarn {
		t.Errorf("file settings lost: %d %q", cfg.MaxBodyBytes, cfg.NHSNumber)
	}
}

func TestLoadEnvOverridesDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", envOf(map[string]string{"SIGNPOST_LISTEN": "127.0.0.1:0"}), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Listen != "127.0.0.1:0" || cfg.Path != "" {
		t.Errorf("Listen %q Path %q", cfg.Listen, cfg.Path)
	}
}

func TestLoadEnvEmptyIgnored(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(validFile, envOf(map[string]string{"SIGNPOST_LISTEN": ""}), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Listen != "127.0.0.1:8080" {
		t.Errorf("empty SIGNPOST_LISTEN changed listen to %q", cfg.Listen)
	}
}

func TestLoadInvalidEnvReported(t *testing.T) {
	t.Parallel()
	_, err := config.Load(validFile, envOf(map[string]string{"SIGNPOST_REDIS_URL": "http://:secretpw@redis"}), nil)
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Field != "redis_url" || ps[0].Env != "SIGNPOST_REDIS_URL" {
		t.Errorf("problems = %#v", ps)
	}
	if strings.Contains(err.Error(), "secretpw") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestLoadUsesSIGNPOSTCONFIG(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", envOf(map[string]string{"SIGNPOST_CONFIG": validFile}), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != validFile || cfg.MaxBodyBytes != 2048 {
		t.Errorf("Path %q MaxBodyBytes %d: file named by SIGNPOST_CONFIG not read", cfg.Path, cfg.MaxBodyBytes)
	}
}

func TestLoadPathBeatsSIGNPOSTCONFIG(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	cfg, err := config.Load(validFile, envOf(map[string]string{"SIGNPOST_CONFIG": missing}), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != validFile {
		t.Errorf("Path = %q, want %q", cfg.Path, validFile)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := config.Load("", envOf(map[string]string{"SIGNPOST_CONFIG": missing}), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
	if !strings.Contains(err.Error(), "SIGNPOST_CONFIG") {
		t.Errorf("error does not say where the path came from: %v", err)
	}
}

func TestLoadDefaultsOnly(t *testing.T) {
	t.Parallel()
	for name, getenv := range map[string]func(string) string{"nil getenv": nil, "empty env": noEnv} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load("", getenv, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			d := config.Default()
			if cfg.Listen != d.Listen || cfg.PublicURL != d.PublicURL || cfg.Path != "" || len(cfg.Providers) != 0 {
				t.Errorf("Load() = %+v, want defaults", cfg)
			}
		})
	}
}

// Load reports decode problems and rule problems from one file together.
func TestLoadReportsEverything(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "signpost.yaml")
	data := "public_url: \"ftp://x\"\ndelivery_retry: [\"2d\"]\nsurprise: true\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path, noEnv, nil)
	ps := problemsOf(t, err)
	if want := []string{"public_url", "delivery_retry[0]", "surprise"}; !slices.Equal(fieldsOf(ps), want) {
		t.Errorf("fields = %q, want %q\n%v", fieldsOf(ps), want, err)
	}
}

func TestApplyEnvLeavesCopiesAlone(t *testing.T) {
	t.Parallel()
	a := parseExample(t)
	b := a
	b.ApplyEnv(envOf(map[string]string{"SIGNPOST_LISTEN": "bad"}))
	a.Listen = "also bad"
	ps := problemsOf(t, a.Validate(isCategory))
	if ps[0].Env != "" {
		t.Errorf("override recorded on a copy leaked to the original: %#v", ps[0])
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("rate_limit: { per_second: 5, burst: 10 }\n"), "rl.yaml")
	if err != nil || cfg.RateLimit.PerSecond != 5 || cfg.RateLimit.Burst != 10 {
		t.Fatalf("rate_limit: %+v %v", cfg.RateLimit, err)
	}
	if d := config.Default().RateLimit; d.PerSecond != 50 || d.Burst != 100 {
		t.Errorf("default %+v", d)
	}
	cfg, _ = config.Parse([]byte("rate_limit: { per_second: -1, burst: 0 }\n"), "rl.yaml")
	if err := cfg.Validate(nil); err == nil || !strings.Contains(err.Error(), "rate_limit") {
		t.Errorf("negative rate accepted: %v", err)
	}
}

func TestRotatingSecrets(t *testing.T) {
	t.Parallel()
	yaml := `providers:
  - id: p1
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "X1" }
    categories: [food]
    delivery: { kind: webhook, url: "https://p1.example/hook", secret: "whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz", rotating_secrets: ["whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4", "nope"] }
`
	cfg, err := config.Parse([]byte(yaml), "rot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Providers[0].Delivery.RotatingSecrets) != 2 {
		t.Fatalf("rotating secrets %v", cfg.Providers[0].Delivery.RotatingSecrets)
	}
	err = cfg.Validate(func(string) bool { return true })
	if err == nil || !strings.Contains(err.Error(), "rotating_secrets[1]") || strings.Contains(err.Error(), "nope") {
		t.Errorf("bad rotating secret: %v", err)
	}
}

func TestWebhookSecretFromEnvironment(t *testing.T) {
	t.Parallel()
	const good = "whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz"
	file := func(delivery string) string {
		p := filepath.Join(t.TempDir(), "signpost.yaml")
		text := "listen: \"127.0.0.1:8080\"\nauth: { mode: none }\nproviders:\n  - id: p1\n" +
			"    organization: { system: \"https://fhir.nhs.uk/Id/ods-organization-code\", value: \"X1\" }\n" +
			"    categories: [food]\n    delivery: " + delivery + "\n"
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	named := file(`{ kind: webhook, url: "https://p1.example/hook", secret_env: P1_WEBHOOK_SECRET }`)
	cfg, err := config.Load(named, envOf(map[string]string{"P1_WEBHOOK_SECRET": good}), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.Providers[0].Delivery.Secret; got != good {
		t.Errorf("the secret was not read from P1_WEBHOOK_SECRET")
	}
	for _, c := range []struct {
		name, path string
		env        map[string]string
		want       string
	}{
		{"variable not set", named, nil, "providers[0].delivery.secret_env: names P1_WEBHOOK_SECRET, which is not set"},
		{"not a secret", named, map[string]string{"P1_WEBHOOK_SECRET": "whsec_not!base64"}, "the secret in P1_WEBHOOK_SECRET"},
		{"both", file(`{ kind: webhook, url: "https://p1.example/hook", secret: "` + good + `", secret_env: P1_WEBHOOK_SECRET }`),
			map[string]string{"P1_WEBHOOK_SECRET": good}, "give secret or secret_env, not both"},
	} {
		_, err := config.Load(c.path, envOf(c.env), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "not!base64") || strings.Contains(err.Error(), good)) {
			t.Errorf("%s: the error shows the secret: %v", c.name, err)
		}
	}
}

// TestParseClientBars reads a client's BaRS endpoint under the names the
// design gives them, and leaves a client without one with none.
func TestParseClientBars(t *testing.T) {
	cfg, err := config.Parse([]byte(`clients:
  - id: practice-a
    bars: { endpoint: "https://gp-system.example/fhir", bearer_token_env: "GP_A_BARS_TOKEN" }
  - id: practice-b
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients) != 2 {
		t.Fatalf("clients = %d, want 2", len(cfg.Clients))
	}
	got := cfg.Clients[0].Bars
	if got == nil || got.Endpoint != "https://gp-system.example/fhir" || got.BearerTokenEnv != "GP_A_BARS_TOKEN" {
		t.Errorf("clients[0].bars = %+v", got)
	}
	if cfg.Clients[1].Bars != nil {
		t.Errorf("clients[1].bars = %+v, want none", cfg.Clients[1].Bars)
	}
}

// TestParseSubscriptionOrigins reads the origins registered for a client's
// subscription endpoints, by client id; a client without any has none.
func TestParseSubscriptionOrigins(t *testing.T) {
	cfg, err := config.Parse([]byte(`clients:
  - id: practice-a
    subscription_origins: ["https://gp-a.example:8443", "http://10.0.0.7:8080"]
  - id: practice-b
`), "")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.SubscriptionOrigins()
	if len(got) != 1 || !slices.Equal(got["practice-a"], []string{"https://gp-a.example:8443", "http://10.0.0.7:8080"}) {
		t.Errorf("subscription origins = %v", got)
	}
}

// TestParseProviderBarsDelivery reads a BaRS provider's delivery under the
// names the design gives them.
func TestParseProviderBarsDelivery(t *testing.T) {
	cfg, err := config.Parse([]byte(`providers:
  - id: leeds-walking
    services: ["http://fhir.nhs.uk/Id/dos-service-id|111111111"]
    delivery: { kind: bars, url: "https://provider.example/fhir", bearer_token_env: "PROVIDER_TOKEN" }
`), "")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Delivery{Kind: config.DeliveryBars, URL: "https://provider.example/fhir", BearerTokenEnv: "PROVIDER_TOKEN", Payload: config.PayloadThin}
	if got := cfg.Providers[0].Delivery; !reflect.DeepEqual(got, want) {
		t.Errorf("delivery = %+v, want %+v", got, want)
	}
}

// TestOrganizationNames reads the organisation directory under the name the
// design gives it, and lets a client's or provider's own name win for its
// own ODS code: a name is written once, where the party is configured.
func TestOrganizationNames(t *testing.T) {
	cfg, err := config.Parse([]byte(`organizations:
  - { ods: "A81001", name: "  Example Surgery " }
  - { ods: "B82005", name: "Park Lane Surgery" }
  - { ods: "X1A2B", name: "Old name of the walking group" }
clients:
  - id: practice-c
    name: "Hill Top Medical Centre"
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "C83003" }
  - id: practice-d
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "B82005" }
providers:
  - id: walking
    name: "Walking for Health"
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "X1A2B" }
  - id: other-system
    name: "Not an ODS code"
    organization: { system: "https://example.org/org", value: "A81001" }
`), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"A81001": "Example Surgery",         // trimmed; another system's A81001 is not this one
		"B82005": "Park Lane Surgery",       // a client without a name leaves the directory's
		"C83003": "Hill Top Medical Centre", // a client's own name
		"X1A2B":  "Walking for Health",      // the provider's own name wins
	}
	if got := cfg.OrganizationNames(); !reflect.DeepEqual(got, want) {
		t.Errorf("OrganizationNames() = %v, want %v", got, want)
	}
}
