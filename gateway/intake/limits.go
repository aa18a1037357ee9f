package intake

import (
	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/query"
)

// checkRequestBounds checks a whole request's commit: its token systems,
// the index entries it writes and searches and the resources whose
// versions it checks, all entries together.
func (pl *plan) checkRequestBounds() error {
	terms := 0
	for _, w := range pl.commit.Writes {
		terms += len(w.Terms)
	}
	for _, c := range pl.commit.Criteria {
		for _, g := range c.Groups {
			terms += len(g)
		}
	}
	if terms > conform.MaxIndexTermsPerRequest {
		return gateway.NewError(gateway.KindTooLarge, fhir.IssueTooCostly, "Bundle.entry",
			"the request would write and search %d index entries; expected at most %d: send it as several transactions",
			terms, conform.MaxIndexTermsPerRequest)
	}
	if n := len(pl.commit.Unchanged); n > maxDecidedOn {
		return gateway.NewError(gateway.KindTooLarge, fhir.IssueTooCostly, "Bundle.entry",
			"the consent decisions of the request read %d stored Consents and Patients; expected at most %d: send it as several transactions",
			n, maxDecidedOn)
	}
	if n := len(gateway.TokenSystems(pl.commit.Writes)); n > conform.MaxTokenSystemsPerRequest {
		return gateway.NewError(gateway.KindTooLarge, fhir.IssueTooCostly, "Bundle.entry",
			"the identifiers and codings of the request name %d distinct systems; expected at most %d: send it as several transactions",
			n, conform.MaxTokenSystemsPerRequest)
	}
	return nil
}

// maxDecidedOn bounds the stored resources one commit checks are unchanged
// (Commit.Unchanged, one HGET each in its script): every Consent a
// request's consent decisions read, and every Patient their names were
// compared with. One referral's decision reads at most 2 × maxConsentReads
// Consents (its patient's and its own) and a Patient for each and for the
// referral at most; a transaction's referrals for many patients add up,
// so the bound is a request's, as high as the index entries one request
// may write and search (each of those costs its script about as much as a
// version read).
const maxDecidedOn = 2048

// ifNoneExistUnionsBounded bounds the unions a request's If-None-Exist
// searches combine, all of them together, checked before each runs
// (resolveRepeat): each runs once before the plan and again in the
// request's one commit script, and a union costs as much as the caller's
// resources it matches, so together they may combine as many as one
// search may.
func ifNoneExistUnionsBounded(unions int) error {
	if unions <= query.MaxUnions {
		return nil
	}
	return gateway.NewError(gateway.KindInvalid, fhir.IssueTooCostly, "Bundle.entry.request.ifNoneExist",
		"the request's If-None-Exist searches have %d parameters that each stand for several index sets (several values, or a value without its system); expected at most %d across the request, as in one search: give identifiers with their system (system|value), or send the entries as several transactions",
		unions, query.MaxUnions)
}

// unionsOf counts the groups of several index sets in a search's groups.
func unionsOf(groups [][]string) int {
	n := 0
	for _, g := range groups {
		if len(g) > 1 {
			n++
		}
	}
	return n
}
