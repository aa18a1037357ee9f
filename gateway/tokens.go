package gateway

import (
	"strings"
)

// Token search without a system. A code or identifier is indexed once, under
// its system ("code=http://snomed.info/sct|390893007"). FHIR lets a search
// leave the system out ("code=390893007": that code in any system), so the
// systems each token parameter has been indexed under are registered with
// the writes (Commit.Systems), and such a search is expanded to one term per
// registered system before it reaches the store. The store registers a
// bounded number of systems per parameter and indexes a term in any system
// beyond that under its bare code too, which the expansion always includes.

// AnySystem marks a parsed search term whose value named no system; expand
// replaces it before the store sees it.
const AnySystem = "\x00"

func AnySystemTerm(index, value string) string { return AnySystem + Term(index, value) }

// TokenSystems lists the registry fields ("Type index system") of the
// writes' system-qualified token terms. Only token terms hold a "|": a
// reference term is "Type/id" and the others are plain codes.
func TokenSystems(writes []Write) []string {
	var out []string
	seen := map[string]bool{} // not slices.Contains: a transaction may list many
	for _, w := range writes {
		for _, t := range w.Terms {
			index, value, ok := strings.Cut(t, "=")
			if !ok {
				continue
			}
			if system, _, ok := strings.Cut(value, "|"); ok && system != "" {
				f := w.Resource.Type + " " + index + " " + system
				if !seen[f] {
					seen[f] = true
					out = append(out, f)
				}
			}
		}
	}
	return out
}
