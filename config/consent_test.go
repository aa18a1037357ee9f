package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/config"
)

func TestExampleConsentAndShare(t *testing.T) {
	t.Parallel()
	cfg := parseExample(t)
	ca, _ := cfg.ProviderByID("citizens-advice-leeds")
	if cfg.ProviderConsent(*ca) != config.ConsentRequired || ca.Share != "minimal" {
		t.Errorf("citizens-advice-leeds: consent %q share %q", cfg.ProviderConsent(*ca), ca.Share)
	}
	lw, _ := cfg.ProviderByID("leeds-link-workers")
	if !lw.NHS || cfg.ProviderConsent(*lw) != config.ConsentNotRequired {
		t.Errorf("leeds-link-workers: nhs %v consent %q", lw.NHS, lw.Consent)
	}
	p, ok := cfg.Profile("minimal")
	if !ok || strings.Join(p.Elements, ",") != "name,telecom,reasonCode,note" {
		t.Errorf("minimal = %+v", p)
	}
	if got := cfg.UncheckedProviders(); strings.Join(got, ",") != "leeds-walking" {
		t.Errorf("unchecked = %v", got)
	}
}

func TestConsentAndShareProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, field, reason string
	}{
		{"unknown policy", "consent: maybe\n", "consent", `"maybe" is not one of required, attested, not-required`},
		{"provider policy", "providers:\n  - {id: p, consent: sometimes}\n", "providers[0].consent", "not one of"},
		{"not-required outside the NHS", "providers:\n  - {id: p, consent: not-required}\n", "providers[0].consent", "only to providers inside the NHS"},
		{"deployment not-required reaches a charity", "consent: not-required\nproviders:\n  - {id: p}\n", "consent", "p is not marked so"},
		{"unknown profile", "providers:\n  - {id: p, share: tiny}\n", "providers[0].share", `"tiny" is not a profile`},
		{"unknown element", "share_profiles:\n  tiny: [name, shoeSize]\n", "share_profiles.tiny[1]", `"shoeSize" is not an element`},
		{"unknown qualified element", "share_profiles:\n  tiny: [Patient.reasonCode]\n", "share_profiles.tiny[0]", "not an element"},
		{"twice", "share_profiles:\n  tiny: [name, name]\n", "share_profiles.tiny[1]", "listed twice"},
		{"empty", "share_profiles:\n  tiny: []\n", "share_profiles.tiny", "lists no elements"},
		{"not a mapping", "share_profiles: [name]\n", "share_profiles", "must map profile names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tc.yaml), "c.yaml")
			if err == nil {
				err = cfg.Validate(nil)
			}
			var ce *config.Error
			if err == nil || !errors.As(err, &ce) {
				t.Fatalf("want a config error, got %v", err)
			}
			for _, p := range ce.Problems {
				if p.Field == tc.field && strings.Contains(p.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("no problem %s: %s in %v", tc.field, tc.reason, err)
		})
	}
	// Inside the NHS, not-required is allowed; a supporting type and a
	// qualified element are names a profile may use.
	cfg, err := config.Parse([]byte("share_profiles:\n  ok: [Condition, Patient.identifier, reasonCode]\nproviders:\n  - {id: p, nhs: true, consent: not-required, share: ok}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(nil); err != nil {
		for _, s := range []string{"consent", "share"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("refused: %v", err)
			}
		}
	}
}
