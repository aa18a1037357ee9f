package gateway

import (
	"context"
	"slices"
	"strings"

	"github.com/signpost-health/signpost/fhir"
)

// Token search without a system. A code or identifier is indexed once, under
// its system ("code=http://snomed.info/sct|390893007"). FHIR lets a search
// leave the system out ("code=390893007": that code in any system), so the
// systems each token parameter has been indexed under are registered with
// the writes (Commit.Systems), and such a search is expanded to one term per
// registered system before it reaches the store. The store registers a
// bounded number of systems per parameter and indexes a term in any system
// beyond that under its bare code too, which the expansion always includes.

// anySystem marks a parsed search term whose value named no system; expand
// replaces it before the store sees it.
const anySystem = "\x00"

func anySystemTerm(index, value string) string { return anySystem + index + "=" + value }

// tokenSystems lists the registry fields ("Type index system") of the
// writes' system-qualified token terms. Only token terms hold a "|": a
// reference term is "Type/id" and the others are plain codes.
func tokenSystems(writes []Write) []string {
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

// commit stores a change with the token systems it is indexed under.
func (s *Service) commit(ctx context.Context, c *Commit) (*CommitResult, error) {
	c.Systems = tokenSystems(c.Writes)
	return s.store.Commit(ctx, c)
}

// expandTokens replaces every anySystem term of the groups with the terms
// that find its value in any system: each registered system, no system,
// and the bare term older versions of Signpost indexed. It returns the
// registry generation it used, or -1 when there was nothing to expand.
func (s *Service) expandTokens(ctx context.Context, typ string, groups [][]string) (int64, error) {
	if !slices.ContainsFunc(groups, func(g []string) bool {
		return slices.ContainsFunc(g, func(t string) bool { return strings.HasPrefix(t, anySystem) })
	}) {
		return -1, nil
	}
	registered, gen, err := s.store.TokenSystems(ctx)
	if err != nil {
		return 0, err
	}
	for gi, g := range groups {
		var out []string
		for _, t := range g {
			if !strings.HasPrefix(t, anySystem) {
				out = append(out, t)
				continue
			}
			index, value, _ := strings.Cut(strings.TrimPrefix(t, anySystem), "=")
			out = append(out, index+"=|"+value, index+"="+value)
			prefix := typ + " " + index + " "
			for _, f := range registered {
				if system, ok := strings.CutPrefix(f, prefix); ok {
					out = append(out, index+"="+system+"|"+value)
				}
			}
		}
		groups[gi] = out
	}
	terms := 0
	for _, g := range groups {
		terms += len(g)
	}
	if terms > MaxExpandedTerms {
		return 0, newError(KindInvalid, fhir.IssueTooCostly, "",
			"the search is too broad to run: its values without a system stand for %d index entries, one per system each may be in; expected at most %d: give the system (system|code) or fewer values",
			terms, MaxExpandedTerms)
	}
	return gen, nil
}
