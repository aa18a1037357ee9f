package conform

import (
	"github.com/signpost-health/signpost/gateway"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/fhir/structure"
)

// maxURLShown bounds a modifier extension's url quoted back to its sender.
const maxURLShown = 200

// checkStructure refuses a resource that is not valid R4 — every problem at
// once, each at its element — before any business rule reads it: what
// Signpost stores and forwards, providers' and GP systems' strict parsers
// must be able to read. Then it refuses modifier extensions the deployment
// does not understand: R4 forbids processing a resource as if such a
// modifier were absent (it may reverse what the resource means). The body
// has passed the raw checks (ParseRaw).
func (s *Parser) checkStructure(body []byte, typ string) error {
	res := structure.ValidateChecked(body, typ)
	if !res.Valid() {
		return &gateway.Error{Kind: gateway.KindInvalid, Issues: res.Issues}
	}
	var p gateway.Problems
	for _, m := range res.Modifiers {
		if s.understood[m.URL] {
			continue
		}
		shown := m.URL
		if len(shown) > maxURLShown {
			shown = shown[:maxURLShown] + "…"
		}
		p.Add(fhir.IssueNotSupported, m.Expression,
			"the modifier extension %q is not understood by this deployment, and a resource cannot be processed as if a modifier were absent; the operator lists the ones it understands in understood_modifier_extensions", shown)
	}
	return p.Err(gateway.KindUnprocessable)
}
