package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The README shows each profile of the example configuration with its
// fields: the table must say what the file says.
func TestReadmeShowsEachExampleProfile(t *testing.T) {
	t.Parallel()
	cfg, err := Parse(Example(), "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ShareProfiles) == 0 {
		t.Fatal("the example has no share profiles")
	}
	for _, p := range cfg.ShareProfiles {
		var patient, request, types []string
		for _, el := range p.Elements {
			typ, name, qualified := strings.Cut(el, ".")
			switch {
			case qualified && typ == "Patient":
				patient = append(patient, name)
			case qualified:
				request = append(request, name)
			case slices.Contains(ShareableTypes, el):
				types = append(types, el)
			default:
				if slices.Contains(shareableElements["Patient"], el) {
					patient = append(patient, el)
				}
				if slices.Contains(shareableElements["ServiceRequest"], el) {
					request = append(request, el)
				}
			}
		}
		list := func(s []string) string {
			if len(s) == 0 {
				return "none"
			}
			return strings.Join(s, ", ")
		}
		row := "| `" + p.Name + "` | " + list(patient) + " | " + list(request) + " | " + list(types) + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README has no row %s", row)
		}
	}
}
