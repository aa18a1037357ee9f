package config_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/config"
)

// In the example: clients[0] practice-a; providers[0] leeds-walking
// (webhook), providers[1] citizens-advice-leeds (portal), providers[2]
// leeds-link-workers (portal). Auth is none, so mutations that move listen
// off loopback also switch to smart.
func TestValidateRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		field  string
		reason string // substring of the reason
	}{
		// listen
		{"listen empty", func(c *config.Config) { c.Listen = "" }, "listen", "is required"},
		{"listen without port", func(c *config.Config) { c.Listen = "127.0.0.1" }, "listen", "host:port"},
		{"listen without host", func(c *config.Config) { c.Listen = ":8080"; c.Auth.Mode = config.AuthSMART }, "listen", "no host"},
		{"listen named port", func(c *config.Config) { c.Listen = "127.0.0.1:http" }, "listen", "port"},
		{"listen port too big", func(c *config.Config) { c.Listen = "127.0.0.1:65536" }, "listen", "0 to 65535"},
		{"listen bad host", func(c *config.Config) { c.Listen = "bad_host!:80"; c.Auth.Mode = config.AuthSMART }, "listen", "neither an IP address nor a host name"},

		// public_url
		{"public_url empty", func(c *config.Config) { c.PublicURL = "" }, "public_url", "absolute http(s) URL"},
		{"public_url relative", func(c *config.Config) { c.PublicURL = "/signpost" }, "public_url", "absolute http(s) URL"},
		{"public_url ftp", func(c *config.Config) { c.PublicURL = "ftp://127.0.0.1/" }, "public_url", "absolute http(s) URL"},
		{"public_url no host", func(c *config.Config) { c.PublicURL = "http:///x" }, "public_url", "absolute http(s) URL"},
		{"public_url query", func(c *config.Config) { c.PublicURL = "http://127.0.0.1:8080/?a=b" }, "public_url", "query"},
		{"public_url fragment", func(c *config.Config) { c.PublicURL = "http://127.0.0.1:8080/#top" }, "public_url", "fragment"},
		{"public_url userinfo", func(c *config.Config) { c.PublicURL = "http://u:p@127.0.0.1:8080/" }, "public_url", "user name or password"},

		// redis_url
		{"redis_url empty", func(c *config.Config) { c.RedisURL = "" }, "redis_url", "is required"},
		{"redis_url http", func(c *config.Config) { c.RedisURL = "http://127.0.0.1:6379" }, "redis_url", "redis://, rediss:// or unix://"},
		{"redis_url no host", func(c *config.Config) { c.RedisURL = "redis:///0" }, "redis_url", "needs a host"},
		{"redis_namespace empty", func(c *config.Config) { c.RedisNamespace = "" }, "redis_namespace", "1 to 64"},
		{"redis_namespace brace", func(c *config.Config) { c.RedisNamespace = "sign}post" }, "redis_namespace", "only letters"},
		{"redis_url bad db", func(c *config.Config) { c.RedisURL = "redis://127.0.0.1:6379/zero" }, "redis_url", "database number"},
		{"redis_url unix no path", func(c *config.Config) { c.RedisURL = "unix://" }, "redis_url", "socket path"},
		{"redis_url unparseable", func(c *config.Config) { c.RedisURL = "redis://127.0.0.1:port/0" }, "redis_url", "does not parse"},

		// policies
		{"unmapped", func(c *config.Config) { c.Unmapped = "ignore" }, "unmapped", `"ignore" is not one of reject, triage`},
		{"nhs_number", func(c *config.Config) { c.NHSNumber = "lenient" }, "nhs_number", `"lenient" is not one of strict, warn`},
		{"understood_modifier_extensions", func(c *config.Config) { c.UnderstoodModifierExtensions = []string{"do-not-contact"} }, "understood_modifier_extensions[0]", "absolute URL"},
		{"auth.mode", func(c *config.Config) { c.Auth.Mode = "oauth" }, "auth.mode", `"oauth" is not one of smart, none`},
		{"auth none on all interfaces", func(c *config.Config) { c.Listen = "0.0.0.0:8080" }, "auth.mode", "anyone who can reach the port could read referrals"},
		{"auth none on a LAN address", func(c *config.Config) { c.Listen = "192.168.1.10:8080" }, "auth.mode", "loopback"},
		{"auth none on a host name", func(c *config.Config) { c.Listen = "signpost.internal:8080" }, "auth.mode", "loopback"},

		// limits
		{"max_body_bytes too small", func(c *config.Config) { c.MaxBodyBytes = 1023 }, "max_body_bytes", "1023 is outside"},
		{"max_body_bytes too big", func(c *config.Config) { c.MaxBodyBytes = 64<<20 + 1 }, "max_body_bytes", "outside"},
		{"max_body_bytes zero", func(c *config.Config) { c.MaxBodyBytes = 0 }, "max_body_bytes", "outside"},
		{"delivery_retry empty", func(c *config.Config) { c.DeliveryRetry = nil }, "delivery_retry", "at least one"},
		{"delivery_retry zero", func(c *config.Config) { c.DeliveryRetry = []time.Duration{0} }, "delivery_retry[0]", "greater than zero"},
		{"delivery_retry negative", func(c *config.Config) { c.DeliveryRetry = []time.Duration{time.Second, -time.Second} }, "delivery_retry[1]", "greater than zero"},
		{"delivery_retry too long", func(c *config.Config) {
			c.DeliveryRetry = []time.Duration{time.Second, time.Minute, 73 * time.Hour}
		}, "delivery_retry[2]", "73h is longer than the 72h limit"},
		{"outbound_allow invalid", func(c *config.Config) { c.OutboundAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), {}} }, "outbound_allow[1]", "CIDR"},
		{"trusted_proxies invalid", func(c *config.Config) { c.TrustedProxies = []netip.Prefix{{}} }, "trusted_proxies[0]", "CIDR"},

		// organizations
		{"organization ods empty", func(c *config.Config) { c.Organizations = []config.Organization{{Name: "Example Surgery"}} }, "organizations[0].ods", "is required"},
		{"organization ods lowercase", func(c *config.Config) {
			c.Organizations = []config.Organization{{ODS: "a81001", Name: "Example Surgery"}}
		}, "organizations[0].ods", `"a81001" is not an ODS code`},
		{"organization ods too short", func(c *config.Config) { c.Organizations = []config.Organization{{ODS: "A8", Name: "Example Surgery"}} }, "organizations[0].ods", "3 to 10 capital letters and digits"},
		{"organization ods with a system", func(c *config.Config) {
			c.Organizations = []config.Organization{{ODS: "https://fhir.nhs.uk/Id/ods-organization-code|A81001", Name: "Example Surgery"}}
		}, "organizations[0].ods", "is not an ODS code"},
		{"organization listed twice", func(c *config.Config) {
			c.Organizations = []config.Organization{{ODS: "A81001", Name: "Example Surgery"}, {ODS: "B82005", Name: "Park Lane Surgery"}, {ODS: "A81001", Name: "Example Surgery (old)"}}
		}, "organizations[2].ods", `"A81001" is already listed as organizations[0] ("Example Surgery")`},
		{"organization name empty", func(c *config.Config) { c.Organizations = []config.Organization{{ODS: "A81001"}} }, "organizations[0].name", "the name people read for A81001"},
		{"organization name with a line break", func(c *config.Config) {
			c.Organizations = []config.Organization{{ODS: "A81001", Name: "Example\nSurgery"}}
		}, "organizations[0].name", "control characters"},

		// ids
		{"client id empty", func(c *config.Config) { c.Clients[0].ID = "" }, "clients[0].id", "is required"},
		{"client id uppercase", func(c *config.Config) { c.Clients[0].ID = "Practice_A" }, "clients[0].id", "lowercase"},
		{"client id leading hyphen", func(c *config.Config) { c.Clients[0].ID = "-practice" }, "clients[0].id", "starting with a letter or digit"},
		{"client id too long", func(c *config.Config) { c.Clients[0].ID = strings.Repeat("a", 64) }, "clients[0].id", "1 to 63"},
		{"provider id empty", func(c *config.Config) { c.Providers[2].ID = "" }, "providers[2].id", "is required"},
		{"provider id with dot", func(c *config.Config) { c.Providers[2].ID = "leeds.links" }, "providers[2].id", "lowercase"},
		{"provider id same as client", func(c *config.Config) { c.Providers[1].ID = "practice-a" }, "providers[1].id", `"practice-a" is already used by clients[0]`},
		{"provider ids repeated", func(c *config.Config) { c.Providers[2].ID = "leeds-walking" }, "providers[2].id", "already used by providers[0]"},
		{"client ids repeated", func(c *config.Config) {
			c.Clients = append(c.Clients, c.Clients[0])
			c.Clients[1].Organization.Value = "B82002"
		}, "clients[1].id", "already used by clients[0]"},

		// organizations
		{"client org system empty", func(c *config.Config) { c.Clients[0].Organization.System = "" }, "clients[0].organization.system", "is required"},
		{"client org system relative", func(c *config.Config) { c.Clients[0].Organization.System = "ods-organization-code" }, "clients[0].organization.system", "absolute URI"},
		{"client org system bare scheme", func(c *config.Config) { c.Clients[0].Organization.System = "https:" }, "clients[0].organization.system", "absolute URI"},
		{"client org value empty", func(c *config.Config) { c.Clients[0].Organization.Value = "" }, "clients[0].organization.value", "is required"},
		{"provider org value empty", func(c *config.Config) { c.Providers[1].Organization.Value = " " }, "providers[1].organization.value", "is required"},
		{"provider org system relative", func(c *config.Config) { c.Providers[1].Organization.System = "ods" }, "providers[1].organization.system", "absolute URI"},
		{"providers share an organization", func(c *config.Config) {
			c.Providers[2].Organization = c.Providers[0].Organization
		}, "providers[2].organization", "https://fhir.nhs.uk/Id/ods-organization-code|X1A2B is already used by providers[0]"},
		{"provider shares the client's organization", func(c *config.Config) {
			c.Providers[0].Organization = c.Clients[0].Organization
		}, "providers[0].organization", "already used by clients[0]"},

		// categories
		{"unknown category", func(c *config.Config) { c.Providers[0].Categories[1] = "knitting" }, "providers[0].categories[1]", `unknown category "knitting"`},
		{"no categories", func(c *config.Config) { c.Providers[1].Categories = nil }, "providers[1].categories", "at least one category"},
		{"empty category", func(c *config.Config) { c.Providers[1].Categories[0] = "" }, "providers[1].categories[0]", "must not be empty"},
		{"category twice", func(c *config.Config) { c.Providers[1].Categories[2] = "housing" }, "providers[1].categories[2]", `"housing" is listed twice`},

		// services (BaRS destination endpoints)
		{"service without system", func(c *config.Config) { c.Providers[0].Services = []string{"111111111"} }, "providers[0].services[0]", "system|value"},
		{"service with empty value", func(c *config.Config) { c.Providers[0].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id|"} }, "providers[0].services[0]", "system|value"},
		{"service with a space", func(c *config.Config) {
			c.Providers[0].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id| 111111111"}
		}, "providers[0].services[0]", "without spaces"},
		{"service of two providers", func(c *config.Config) {
			c.Providers[0].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id|111111111"}
			c.Providers[2].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id|222222222", "http://fhir.nhs.uk/Id/dos-service-id|111111111"}
		}, "providers[2].services[1]", "already routed by providers[0].services[0]"},

		// delivery
		{"delivery kind missing", func(c *config.Config) { c.Providers[1].Delivery.Kind = "" }, "providers[1].delivery.kind", "is required"},
		{"delivery kind unknown", func(c *config.Config) { c.Providers[1].Delivery.Kind = "email" }, "providers[1].delivery.kind", `"email" is not one of webhook, fhir, bars, portal`},
		{"webhook without url", func(c *config.Config) { c.Providers[0].Delivery.URL = "" }, "providers[0].delivery.url", "must be an absolute http(s) URL"},
		{"webhook relative url", func(c *config.Config) { c.Providers[0].Delivery.URL = "/referrals" }, "providers[0].delivery.url", "must be an absolute http(s) URL"},
		{"webhook ftp url", func(c *config.Config) { c.Providers[0].Delivery.URL = "ftp://127.0.0.1/x" }, "providers[0].delivery.url", "must be an absolute http(s) URL"},
		{"fhir without url", func(c *config.Config) { c.Providers[1].Delivery.Kind = config.DeliveryFHIR }, "providers[1].delivery.url", "must be an absolute http(s) URL"},
		{"bars without url", func(c *config.Config) {
			c.Providers[1].Delivery.Kind = config.DeliveryBars
			c.Providers[1].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id|222222222"}
		}, "providers[1].delivery.url", "POSTs each referral as a BaRS message to {url}/$process-message"},
		{"bars without services", func(c *config.Config) {
			c.Providers[1].Delivery = config.Delivery{Kind: config.DeliveryBars, URL: "https://cab.example/fhir", Payload: config.PayloadThin}
		}, "providers[1].services", "bars delivery needs at least one service"},
		{"bars token env not a name", func(c *config.Config) {
			c.Providers[1].Delivery = config.Delivery{Kind: config.DeliveryBars, URL: "https://cab.example/fhir", Payload: config.PayloadThin, BearerTokenEnv: "1 token"}
			c.Providers[1].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id|222222222"}
		}, "providers[1].delivery.bearer_token_env", "is not an environment variable name"},
		{"token env for a webhook", func(c *config.Config) { c.Providers[0].Delivery.BearerTokenEnv = "TOKEN" }, "providers[0].delivery.bearer_token_env", "bars delivery only"},
		{"portal with url", func(c *config.Config) { c.Providers[1].Delivery.URL = "https://cab.example/hook" }, "providers[1].delivery.url", "must be empty for portal delivery"},
		{"payload unknown", func(c *config.Config) { c.Providers[0].Delivery.Payload = "fat" }, "providers[0].delivery.payload", `"fat" is not one of thin, full`},
		{"payload empty in code", func(c *config.Config) { c.Providers[1].Delivery.Payload = "" }, "providers[1].delivery.payload", "not one of thin, full"},
		{"webhook secret missing", func(c *config.Config) { c.Providers[0].Delivery.Secret = "" }, "providers[0].delivery.secret", "is required for webhook delivery"},
		{"webhook secret without prefix", func(c *config.Config) { c.Providers[0].Delivery.Secret = strings.TrimPrefix(secretOf(32, 7), "whsec_") }, "providers[0].delivery.secret", "whsec_"},
		{"webhook secret not base64", func(c *config.Config) { c.Providers[0].Delivery.Secret = "whsec_not*base64!" }, "providers[0].delivery.secret", "not valid base64"},
		{"webhook secret too short", func(c *config.Config) { c.Providers[0].Delivery.Secret = secretOf(23, 7) }, "providers[0].delivery.secret", "holds 23 bytes"},
		{"webhook secret too long", func(c *config.Config) { c.Providers[0].Delivery.Secret = secretOf(65, 7) }, "providers[0].delivery.secret", "holds 65 bytes"},

		// notify
		{"notify fhir_base missing", func(c *config.Config) { c.Clients[0].Notify = &config.Notify{} }, "clients[0].notify.fhir_base", "absolute http(s) URL"},
		{"notify fhir_base relative", func(c *config.Config) { c.Clients[0].Notify = &config.Notify{FHIRBase: "gp.example/fhir"} }, "clients[0].notify.fhir_base", "absolute http(s) URL"},
		{"notify token env with hyphen", func(c *config.Config) {
			c.Clients[0].Notify = &config.Notify{FHIRBase: "https://gp.example/fhir", BearerTokenEnv: "GP-TOKEN"}
		}, "clients[0].notify.bearer_token_env", "not an environment variable name"},
		{"notify token env leading digit", func(c *config.Config) {
			c.Clients[0].Notify = &config.Notify{FHIRBase: "https://gp.example/fhir", BearerTokenEnv: "1TOKEN"}
		}, "clients[0].notify.bearer_token_env", "not an environment variable name"},

		// bars
		{"bars endpoint missing", func(c *config.Config) { c.Clients[0].Bars = &config.Bars{} }, "clients[0].bars.endpoint", "absolute http(s) URL"},
		{"bars endpoint relative", func(c *config.Config) { c.Clients[0].Bars = &config.Bars{Endpoint: "gp.example/fhir"} }, "clients[0].bars.endpoint", "absolute http(s) URL"},
		// subscription origins: one endpoint host and port, never a network
		{"subscription origin with a path", func(c *config.Config) { c.Clients[0].SubscriptionOrigins = []string{"https://gp.example/hooks"} }, "clients[0].subscription_origins[0]", "path, query or fragment"},
		{"subscription origin without scheme", func(c *config.Config) { c.Clients[0].SubscriptionOrigins = []string{"gp.example:8443"} }, "clients[0].subscription_origins[0]", "must be an origin"},
		{"subscription origin ftp", func(c *config.Config) {
			c.Clients[0].SubscriptionOrigins = []string{"https://gp.example", "ftp://gp.example"}
		}, "clients[0].subscription_origins[1]", "must be an origin"},
		{"subscription origin wildcard", func(c *config.Config) { c.Clients[0].SubscriptionOrigins = []string{"https://*.gp.example"} }, "clients[0].subscription_origins[0]", "wildcard"},
		{"subscription origin outside ASCII", func(c *config.Config) {
			c.Clients[0].SubscriptionOrigins = []string{"https://\u0130ntranet.gp.example"}
		}, "clients[0].subscription_origins[0]", "ASCII form"},
		{"subscription origin userinfo", func(c *config.Config) { c.Clients[0].SubscriptionOrigins = []string{"https://u:p@gp.example"} }, "clients[0].subscription_origins[0]", "user name or password"},
		{"subscription origin port", func(c *config.Config) { c.Clients[0].SubscriptionOrigins = []string{"http://10.0.0.7:70000"} }, "clients[0].subscription_origins[0]", "port"},
		{"bars token env with hyphen", func(c *config.Config) {
			c.Clients[0].Bars = &config.Bars{Endpoint: "https://gp.example/fhir", BearerTokenEnv: "GP-BARS"}
		}, "clients[0].bars.bearer_token_env", "not an environment variable name"},

		// client auth
		{"jwks and jwks_url together", func(c *config.Config) {
			c.Clients[0].Auth = config.ClientAuth{JWKS: json.RawMessage(`{"keys":[]}`), JWKSURL: "https://gp.example/jwks"}
		}, "clients[0].auth.jwks_url", "together with jwks"},
		{"jwks without keys", func(c *config.Config) { c.Clients[0].Auth.JWKS = json.RawMessage(`{"kid":"a"}`) }, "clients[0].auth.jwks", `"keys" array`},
		{"jwks keys not an array", func(c *config.Config) { c.Clients[0].Auth.JWKS = json.RawMessage(`{"keys":{}}`) }, "clients[0].auth.jwks", `"keys" array`},
		{"jwks keys null", func(c *config.Config) { c.Clients[0].Auth.JWKS = json.RawMessage(`{"keys":null}`) }, "clients[0].auth.jwks", `"keys" array`},
		{"jwks is an array", func(c *config.Config) { c.Providers[0].Auth.JWKS = json.RawMessage(`[{"kty":"EC"}]`) }, "providers[0].auth.jwks", "JSON object"},
		{"jwks key not an object", func(c *config.Config) { c.Providers[0].Auth.JWKS = json.RawMessage(`{"keys":["k"]}`) }, "providers[0].auth.jwks", "key objects"},
		{"jwks not JSON", func(c *config.Config) { c.Providers[0].Auth.JWKS = json.RawMessage(`{keys`) }, "providers[0].auth.jwks", "JSON object"},
		{"jwks_url plain http", func(c *config.Config) { c.Clients[0].Auth.JWKSURL = "http://gp.example/jwks" }, "clients[0].auth.jwks_url", "must use https"},
		{"jwks_url relative", func(c *config.Config) { c.Clients[0].Auth.JWKSURL = "/jwks.json" }, "clients[0].auth.jwks_url", "absolute https URL"},
		{"jwks_url ftp", func(c *config.Config) { c.Providers[2].Auth.JWKSURL = "ftp://keys.example/jwks" }, "providers[2].auth.jwks_url", "absolute https URL"},
		{"scope empty", func(c *config.Config) { c.Clients[0].Auth.Scopes = []string{"system/Task.rs", " "} }, "clients[0].auth.scopes[1]", "must not be empty"},
		{"scope with space", func(c *config.Config) {
			c.Providers[1].Auth.Scopes = []string{"system/Task.rs system/Task.u"}
		}, "providers[1].auth.scopes[0]", "single scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := parseExample(t)
			tt.mutate(&cfg)
			ps := problemsOf(t, cfg.Validate(isCategory))
			for _, p := range ps {
				if p.Field != tt.field {
					t.Errorf("unexpected problem %s", p)
				}
			}
			if !slices.ContainsFunc(ps, func(p config.FieldProblem) bool {
				return p.Field == tt.field && strings.Contains(p.Reason, tt.reason)
			}) {
				t.Errorf("want %s: ...%s..., got %v", tt.field, tt.reason, ps)
			}
		})
	}
}

// Decode-stage rules: values that cannot even be converted to their Go type
// are reported by index and field, like the rules Validate checks.
func TestParseRejects(t *testing.T) {
	t.Parallel()
	client := func(auth string) string {
		return "clients:\n" +
			"  - id: practice-a\n" +
			"    organization: { system: \"https://fhir.nhs.uk/Id/ods-organization-code\", value: A81001 }\n" +
			"    auth: " + auth + "\n"
	}
	tests := []struct {
		name, yaml, field, reason string
		line                      int
	}{
		{"duration with day unit", "delivery_retry: [\"5s\", \"1d\"]\n", "delivery_retry[1]", `"1d" is not a duration`, 1},
		{"duration without unit", "delivery_retry:\n  - 5s\n  - 30\n", "delivery_retry[1]", `"30" is not a duration`, 3},
		{"duration words", "delivery_retry: [soon]\n", "delivery_retry[0]", `"soon" is not a duration`, 1},
		{"delivery_retry not a list", "delivery_retry: 5s\n", "delivery_retry", "must be a list", 1},
		{"cidr out of range", "outbound_allow: [\"10.0.0.0/33\"]\n", "outbound_allow[0]", "not a CIDR prefix", 1},
		{"cidr junk", "outbound_allow:\n  - 127.0.0.0/8\n  - private\n", "outbound_allow[1]", `"private" is not a CIDR prefix`, 3},
		{"cidr bare address", "outbound_allow: [\"10.0.0.7\"]\n", "outbound_allow[0]", "write 10.0.0.7/32", 1},
		{"trusted proxy bare address", "trusted_proxies: [\"10.0.0.7\"]\n", "trusted_proxies[0]", "write 10.0.0.7/32", 1},
		{"max_body_bytes too large to store", "max_body_bytes: 99999999999999999999999\n", "max_body_bytes", "whole number", 1},
		{"max_body_bytes text", "max_body_bytes: 1MiB\n", "max_body_bytes", "must be a whole number", 1},
		{"listen as list", "listen:\n  - 127.0.0.1:8080\n", "listen", "must be a single value, not a list", 2},
		{"providers as mapping", "providers: { id: x }\n", "providers", "must be a list", 1},
		{"unknown top-level key", "listen: 127.0.0.1:8080\nlisten_addr: 127.0.0.1:9\n", "listen_addr", "not a known setting", 2},
		{"unknown nested key", "auth: { mode: smart, jwks_url: x }\n", "auth.jwks_url", "not a known setting", 1},
		{"key set twice", "unmapped: reject\nunmapped: triage\n", "unmapped", "more than once", 2},
		{"jwks text not JSON", client("{ jwks: \"keys: none\" }"), "clients[0].auth.jwks", "not JSON", 4},
		{"jwks with non-text keys", client("{ jwks: { keys: [], 1: x } }"), "clients[0].auth.jwks", "cannot be expressed as JSON", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(tt.yaml), "t.yaml")
			ps := problemsOf(t, err)
			if len(ps) != 1 {
				t.Fatalf("want one problem, got %v", ps)
			}
			p := ps[0]
			if p.Field != tt.field || !strings.Contains(p.Reason, tt.reason) || p.Line != tt.line {
				t.Errorf("got %s (line %d), want %s: ...%s... (line %d)", p, p.Line, tt.field, tt.reason, tt.line)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Config)
	}{
		{"example as is", func(c *config.Config) {}},
		{"BaRS services", func(c *config.Config) {
			c.Providers[0].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id|111111111", "https://fhir.nhs.uk/Id/ods-organization-code|X1A2B"}
		}},
		{"port 0 for tests", func(c *config.Config) { c.Listen = "127.0.0.1:0" }},
		{"auth none on ::1", func(c *config.Config) { c.Listen = "[::1]:8080" }},
		{"auth none on localhost", func(c *config.Config) { c.Listen = "localhost:8080" }},
		{"all interfaces with smart", func(c *config.Config) { c.Listen = "0.0.0.0:443"; c.Auth.Mode = config.AuthSMART }},
		{"host name with smart", func(c *config.Config) { c.Listen = "signpost.internal:8080"; c.Auth.Mode = config.AuthSMART }},
		{"public_url with path", func(c *config.Config) { c.PublicURL = "https://nhs.example/signpost/" }},
		{"rediss with password", func(c *config.Config) { c.RedisURL = "rediss://default:pw@redis.example:6380/3" }},
		{"redis without db", func(c *config.Config) { c.RedisURL = "redis://redis.example" }},
		{"unix socket", func(c *config.Config) { c.RedisURL = "unix:///run/redis/redis.sock?db=2" }},
		{"body limits", func(c *config.Config) { c.MaxBodyBytes = 1 << 10 }},
		{"body limit max", func(c *config.Config) { c.MaxBodyBytes = 64 << 20 }},
		{"retry at the limit", func(c *config.Config) { c.DeliveryRetry = []time.Duration{72 * time.Hour} }},
		{"warn and reject", func(c *config.Config) { c.NHSNumber = config.NHSNumberWarn; c.Unmapped = config.UnmappedReject }},
		{"secret 24 bytes", func(c *config.Config) { c.Providers[0].Delivery.Secret = secretOf(24, 1) }},
		{"secret 64 bytes", func(c *config.Config) { c.Providers[0].Delivery.Secret = secretOf(64, 2) }},
		{"fhir delivery full payload", func(c *config.Config) {
			c.Providers[1].Delivery = config.Delivery{Kind: config.DeliveryFHIR, URL: "https://cab.example/fhir", Payload: config.PayloadFull}
		}},
		{"notify", func(c *config.Config) {
			c.Clients[0].Notify = &config.Notify{FHIRBase: "https://gp.example/fhir", BearerTokenEnv: "GP_A_TOKEN"}
		}},
		{"notify without token", func(c *config.Config) { c.Clients[0].Notify = &config.Notify{FHIRBase: "http://127.0.0.1:9002/fhir"} }},
		{"bars", func(c *config.Config) {
			c.Clients[0].Bars = &config.Bars{Endpoint: "https://gp.example/fhir", BearerTokenEnv: "GP_A_BARS_TOKEN"}
		}},
		{"bars on loopback without token", func(c *config.Config) { c.Clients[0].Bars = &config.Bars{Endpoint: "http://127.0.0.1:9004/fhir"} }},
		{"subscription origins", func(c *config.Config) {
			c.Clients[0].SubscriptionOrigins = []string{"https://gp-system.example", "http://10.0.0.7:8080/", "https://[fd00::7]:8443"}
		}},
		{"inline jwks", func(c *config.Config) {
			c.Clients[0].Auth = config.ClientAuth{JWKS: json.RawMessage(`{"keys":[{"kty":"EC"}]}`), Scopes: []string{"system/ServiceRequest.c"}}
		}},
		{"jwks_url https", func(c *config.Config) { c.Providers[0].Auth.JWKSURL = "https://walking.example/jwks.json" }},
		{"jwks_url http on loopback", func(c *config.Config) { c.Providers[0].Auth.JWKSURL = "http://127.0.0.1:9003/jwks" }},
		{"jwks_url http on localhost", func(c *config.Config) { c.Providers[1].Auth.JWKSURL = "http://localhost/jwks" }},
		{"urn organization system", func(c *config.Config) {
			c.Providers[1].Organization.System = "urn:oid:2.16.840.1.113883.2.1.3.2.4.18.48"
		}},
		{"same value in another system", func(c *config.Config) {
			c.Providers[1].Organization = config.Identifier{System: "https://example.org/charity-number", Value: "X1A2B"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := parseExample(t)
			tt.mutate(&cfg)
			if err := cfg.Validate(isCategory); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateNilIsCategorySkipsOnlyNames(t *testing.T) {
	t.Parallel()
	cfg := parseExample(t)
	cfg.Providers[0].Categories = []string{"knitting"}
	if err := cfg.Validate(nil); err != nil {
		t.Errorf("Validate(nil) judged category names: %v", err)
	}
	cfg.Providers[0].Categories = nil
	ps := problemsOf(t, cfg.Validate(nil))
	if !slices.Equal(fieldsOf(ps), []string{"providers[0].categories"}) {
		t.Errorf("Validate(nil) = %v, want the missing categories", ps)
	}
}

// One file with many mistakes reports all of them, decode problems and rule
// problems together, in the order they appear in the file.
func TestSeveralProblemsAtOnce(t *testing.T) {
	t.Parallel()
	data := `providers:
  - id: Bad_ID
    organization: { system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "X1A2B" }
    categories: [physical-activity, knitting]
    delivery: { kind: webhook, url: "/relative", secret: "whsec_c2hvcnQ=" }
listen: "0.0.0.0:8080"
auth: { mode: none }
delivery_retry: ["5s", "1d", "100h"]
max_body_bytes: 10
clients:
  - id: practice-a
    organization: { system: "ods", value: "" }
`
	cfg, err := config.Parse([]byte(data), "many.yaml")
	if ps := problemsOf(t, err); !slices.Equal(fieldsOf(ps), []string{"delivery_retry[1]"}) {
		t.Errorf("Parse problems = %v, want only the undecodable duration", ps)
	}
	ps := problemsOf(t, cfg.Validate(isCategory))
	want := []string{
		"providers[0].id",
		"providers[0].categories[1]",
		"providers[0].delivery.url",
		"providers[0].delivery.secret",
		"auth.mode",
		"delivery_retry[1]",
		"delivery_retry[2]",
		"max_body_bytes",
		"clients[0].organization.system",
		"clients[0].organization.value",
	}
	if got := fieldsOf(ps); !slices.Equal(got, want) {
		t.Errorf("fields =\n%q\nwant\n%q\nfull error:\n%v", got, want, cfg.Validate(isCategory))
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Line < ps[i-1].Line {
			t.Errorf("problems not in file order: %s before %s", ps[i-1], ps[i])
		}
	}
	if ps[0].Line != 2 || ps[len(ps)-1].Line != 12 {
		t.Errorf("lines: first %d last %d, want 2 and 12", ps[0].Line, ps[len(ps)-1].Line)
	}
}

// Secrets end up in logs if they are in errors, so no error may quote them,
// whichever rule fails.
func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	const password = "Pa55w0rdPa55w0rd"
	shortSecret := secretOf(20, 'S')       // fails the length rule
	oddSecret := "whsec_" + password + "*" // fails base64
	tests := []struct {
		name    string
		yaml    string
		secrets []string
	}{
		{"short webhook secret", `providers:
  - id: p
    organization: { system: "https://x.example/id", value: "1" }
    categories: [arts]
    delivery: { kind: webhook, url: "https://p.example/hook", secret: "` + shortSecret + `" }
`, []string{shortSecret, strings.TrimPrefix(shortSecret, "whsec_")}},
		{"non-base64 webhook secret", `providers:
  - id: p
    organization: { system: "https://x.example/id", value: "1" }
    categories: [arts]
    delivery: { kind: webhook, url: "not a url", secret: "` + oddSecret + `" }
`, []string{password}},
		{"secret on a portal provider with a url", `providers:
  - id: p
    organization: { system: "https://x.example/id", value: "1" }
    categories: [arts]
    delivery: { kind: portal, url: "https://user:` + password + `@p.example/", secret: "` + shortSecret + `" }
`, []string{password, shortSecret}},
		{"redis password with bad db", "redis_url: \"redis://default:" + password + "@127.0.0.1:6379/x\"\n", []string{password}},
		{"redis password with bad port", "redis_url: \"redis://default:" + password + "@127.0.0.1:port/0\"\n", []string{password}},
		{"redis password with bad escape", "redis_url: \"redis://default:" + password + "%zz@127.0.0.1/0\"\n", []string{password}},
		{"redis password with wrong scheme", "redis_url: \"https://default:" + password + "@127.0.0.1/0\"\n", []string{password}},
		{"redis password with no host", "redis_url: \"redis://:" + password + "@/0\"\n", []string{password}},
		{"secret as a list", "providers:\n  - id: p\n    delivery: { secret: [\"" + password + "\"] }\n", []string{password}},
		{"webhook url with token", `providers:
  - id: p
    organization: { system: "https://x.example/id", value: "1" }
    categories: [arts]
    delivery: { kind: webhook, url: "ftp://p.example/hook?token=` + password + `", secret: "` + secretOf(32, 1) + `" }
`, []string{password}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse([]byte(tt.yaml), "s.yaml")
			if err == nil {
				err = cfg.Validate(isCategory)
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, s := range tt.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a secret:\n%v", err)
				}
			}
		})
	}
}

func TestEnvProblemNamesVariable(t *testing.T) {
	t.Parallel()
	cfg := parseExample(t)
	cfg.ApplyEnv(envOf(map[string]string{"SIGNPOST_LISTEN": "nowhere"}))
	ps := problemsOf(t, cfg.Validate(isCategory))
	if len(ps) != 1 || ps[0].Field != "listen" || ps[0].Env != "SIGNPOST_LISTEN" || ps[0].Line != 0 {
		t.Fatalf("problems = %#v, want listen from SIGNPOST_LISTEN", ps)
	}
	if got := ps[0].String(); !strings.HasSuffix(got, "(from SIGNPOST_LISTEN)") {
		t.Errorf("String() = %q", got)
	}
}
