// Package conform holds the rules a resource must pass before any use case
// reads it: R4 structure and required bindings, modifier extensions the
// deployment understands, which side of a referral may change which Task
// elements, the requester a GP system may name, and what makes a repeated
// request the same as the first.
package conform

// Parser reads resources from untrusted bodies under the deployment's
// policy. It is safe for concurrent use.
type Parser struct {
	maxDepth int
	// understood holds the modifierExtension urls that may be processed.
	understood map[string]bool
}

// NewParser returns a Parser that refuses JSON nested deeper than maxDepth
// and modifier extensions other than understood.
func NewParser(maxDepth int, understood []string) *Parser {
	p := &Parser{maxDepth: maxDepth, understood: make(map[string]bool, len(understood))}
	for _, u := range understood {
		p.understood[u] = true
	}
	return p
}
