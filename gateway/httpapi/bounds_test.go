package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/query"
)

// What one request may make Redis do is bounded before anything reaches it:
// a commit is one script, and while it runs every other client and worker
// waits. A referral with thousands of codings in made-up systems once held
// Redis for seconds (every other caller got BUSY, and its own caller a 503
// although the referral was stored).

// codings is n codings, each in a system of its own when distinct is set
// (else all SNOMED CT), after the referral's own code.
func codings(n int, distinct bool) []any {
	out := []any{map[string]any{"system": "http://snomed.info/sct", "code": "390893007"}}
	for i := 1; i < n; i++ {
		system := "http://snomed.info/sct"
		if distinct {
			system = "https://codes.example/made-up-" + strconv.Itoa(i)
		}
		out = append(out, map[string]any{"system": system, "code": "C" + strconv.Itoa(i)})
	}
	return out
}

// identifiers is n referral identifiers of the GP system.
func identifiers(prefix string, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"system": gpIdentSystem, "value": prefix + "-" + strconv.Itoa(i)}
	}
	return out
}

// performers is n performers, the first a configured provider.
func performers(n int) []any {
	out := []any{map[string]any{"reference": "Organization/walking"}}
	for i := 1; i < n; i++ {
		out = append(out, map[string]any{"reference": "Organization/other-" + strconv.Itoa(i)})
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func withCodings(n int, distinct bool) func(map[string]any) {
	return func(m map[string]any) { m["code"] = map[string]any{"coding": codings(n, distinct)} }
}

// largestReferral is a referral with every indexed repeating element at its
// bound, its identifiers named after ident.
func largestReferral(ident string) []byte {
	return referralWith("390893007", withField("identifier", identifiers(ident, conform.MaxIdentifiers)),
		withCodings(conform.MaxCodings, false), withField("performer", performers(conform.MaxPerformers)))
}

func TestIndexedElementsAreBounded(t *testing.T) {
	t.Parallel()
	tooCostly := func(expr string, diag ...string) issueWant {
		return issueWant{code: "too-costly", expr: expr, diag: diag}
	}
	atMost := func(n int) string { return "expected at most " + strconv.Itoa(n) }
	patient := string(patientWith(withField("identifier", identifiers("P", conform.MaxIdentifiers+1))))
	// Three referrals whose made-up code systems are few enough each, and
	// too many together.
	var spread [][3]string
	for i := 0; i < 3; i++ {
		body := referralWith("390893007", withField("identifier", identifiers("S"+strconv.Itoa(i), 1)), func(m map[string]any) {
			cs := codings(12, true)
			for _, c := range cs[1:] {
				c := c.(map[string]any)
				c["system"] = c["system"].(string) + "-" + strconv.Itoa(i)
			}
			m["code"] = map[string]any{"coding": cs}
		})
		spread = append(spread, [3]string{"", string(body), "ServiceRequest"})
	}
	// A transaction of 100 referrals at their bounds: each is allowed,
	// together they are too many index entries for one step.
	var largest [][3]string
	for i := 0; i < conform.MaxTransactionEntries; i++ {
		largest = append(largest, [3]string{"", string(largestReferral("L" + strconv.Itoa(i))), "ServiceRequest"})
	}
	runRejectCases(t, []rejectCase{
		{name: "thousands of codings in made-up systems", body: referralWith("390893007", withCodings(4000, true)),
			status: http.StatusUnprocessableEntity,
			issues: []issueWant{tooCostly("ServiceRequest.code.coding", "4000 items", atMost(conform.MaxCodings))}},
		{name: "one coding over", body: referralWith("390893007", withCodings(conform.MaxCodings+1, false)),
			status: http.StatusUnprocessableEntity,
			issues: []issueWant{tooCostly("ServiceRequest.code.coding", atMost(conform.MaxCodings))}},
		{name: "identifiers and performers, both reported",
			body: referralWith("390893007", withField("identifier", identifiers("R", conform.MaxIdentifiers+1)),
				withField("performer", performers(conform.MaxPerformers+1))),
			status: http.StatusUnprocessableEntity,
			issues: []issueWant{tooCostly("ServiceRequest.identifier", atMost(conform.MaxIdentifiers)),
				tooCostly("ServiceRequest.performer", atMost(conform.MaxPerformers))}},
		{name: "too many distinct systems in one resource",
			body:   referralWith("390893007", withCodings(conform.MaxCodings, true)),
			status: http.StatusUnprocessableEntity,
			issues: []issueWant{tooCostly("ServiceRequest", "distinct systems", atMost(conform.MaxTokenSystemsPerResource))}},
		{name: "patient identifiers", path: "/Patient", body: []byte(patient), status: http.StatusUnprocessableEntity,
			issues: []issueWant{tooCostly("Patient.identifier", atMost(conform.MaxIdentifiers))}},
		{name: "task identifiers", path: "/Task",
			body: []byte(`{"resourceType":"Task","status":"requested","intent":"order","focus":{"reference":"ServiceRequest/x"},"identifier":` +
				string(mustJSON(identifiers("T", conform.MaxIdentifiers+1))) + `}`),
			status: http.StatusUnprocessableEntity,
			issues: []issueWant{tooCostly("Task.identifier", atMost(conform.MaxIdentifiers))}},
		{name: "an entry of a transaction", atBase: true,
			body: txBundle([3]string{"", string(referral("B-1", "390893007")), "ServiceRequest"},
				[3]string{"", string(referralWith("390893007", withCodings(100, false))), "ServiceRequest"}),
			status: http.StatusUnprocessableEntity,
			issues: []issueWant{tooCostly("Bundle.entry[1].resource.code.coding", atMost(conform.MaxCodings))}},
		{name: "systems across a transaction", atBase: true, body: txBundle(spread...),
			status: http.StatusRequestEntityTooLarge,
			issues: []issueWant{tooCostly("Bundle.entry", "distinct systems", atMost(conform.MaxTokenSystemsPerRequest))}},
		{name: "index entries across a transaction", atBase: true, body: txBundle(largest...),
			status: http.StatusRequestEntityTooLarge,
			issues: []issueWant{tooCostly("Bundle.entry", "index entries", atMost(conform.MaxIndexTermsPerRequest))}},
	})
}

// Real senders' referrals fit: every bound is generous, and a referral at
// all of them at once is accepted, found by each of its values.
func TestReferralAtTheBoundsIsAccepted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.post("/ServiceRequest", largestReferral("MAX")).must(t, http.StatusCreated)
	systems := referralWith("390893007", withField("identifier", identifiers("SYS", 1)),
		withCodings(conform.MaxTokenSystemsPerResource-3, true)) // + referral id, NHS number, ODS code
	e.post("/ServiceRequest", systems).must(t, http.StatusCreated)
	for _, q := range []string{"identifier=MAX-" + strconv.Itoa(conform.MaxIdentifiers-1),
		"code=C" + strconv.Itoa(conform.MaxCodings-1), "performer=Organization/other-" + strconv.Itoa(conform.MaxPerformers-1),
		"code=" + url.QueryEscape("https://codes.example/made-up-12|C12")} {
		if got := total(t, e.get("/ServiceRequest?"+q)); got != 1 {
			t.Errorf("%s: %d found, want 1", q, got)
		}
	}
}

// A value without a system stands for one index set per system registered
// for its parameter: past a bound, the search is refused, not run.
func TestSearchWithoutSystemsIsBoundedAfterExpansion(t *testing.T) {
	t.Parallel()
	testSearchWithoutSystemsIsBoundedAfterExpansion(t)
}

// On a store that spreads referrals, the cap of systems per parameter is
// counted across its partitions: a search expands to no more systems than
// with one registry, wherever the referrals that brought them went.
func TestSpreadSearchWithoutSystemsIsBoundedAfterExpansion(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		testSearchWithoutSystemsIsBoundedAfterExpansion(t, on, spread)
	})
}

func testSearchWithoutSystemsIsBoundedAfterExpansion(t *testing.T, opts ...func(*options)) {
	e := setup(t, opts...)
	// Fill the code parameter's registry (64 systems): referrals of 12 made-up
	// systems each, with their own 4 (SNOMED CT, referral id, NHS number, ODS).
	for i := 0; i < 6; i++ {
		body := referralWith("390893007", withField("identifier", identifiers("F"+strconv.Itoa(i), 1)), func(m map[string]any) {
			cs := codings(13, true)
			for _, c := range cs[1:] {
				c := c.(map[string]any)
				c["system"] = c["system"].(string) + "-" + strconv.Itoa(i)
			}
			m["code"] = map[string]any{"coding": cs}
		})
		e.post("/ServiceRequest", body).must(t, http.StatusCreated)
	}
	values := func(n int) string {
		v := make([]string, n)
		for i := range v {
			v[i] = "C" + strconv.Itoa(i+1)
		}
		return strings.Join(v, ",")
	}
	// 15 values stand for 15 × (64 + 2) = 990 sets; 16 for 1,056.
	if got := total(t, e.get("/ServiceRequest?code="+values(15))); got != 6 {
		t.Errorf("15 values without a system: %d found, want 6", got)
	}
	r := e.get("/ServiceRequest?code="+values(16)).must(t, http.StatusBadRequest)
	checkIssues(t, readOutcome(t, r), []issueWant{{code: "too-costly", diag: []string{"expected at most " + strconv.Itoa(query.MaxExpandedTerms), "system|code"}}}, r.body)
}

// A transaction's If-None-Exist searches run in its one commit script, so
// together they may combine no more unions than one search may: each
// union costs as much as the caller's resources it matches, and a
// transaction of 100 entries could otherwise hold Redis for a hundred of
// the costliest searches. Conditional creates by identifier (system|value)
// combine none, however many.
func TestTransactionsConditionalCreatesAreBoundedAsOneSearch(t *testing.T) {
	t.Parallel()
	e := setup(t, onOneRedis) // it counts its Redis's scripts
	tx := func(n int, ifNoneExist func(i int) string) []byte {
		entries := make([]string, n)
		for i := range entries {
			ident := "CC-" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
			entries[i] = `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-00000000000` + strconv.Itoa(i) + `","resource":` +
				string(referral(ident, "390893007")) + `,"request":{"method":"POST","url":"ServiceRequest","ifNoneExist":"` +
				ifNoneExist(i) + `"}}`
		}
		return transaction(entries...)
	}
	unions := func(i int) string {
		return "status=active,draft&identifier=" + gpIdentSystem + "|CC-U-" + strconv.Itoa(i)
	}
	// Refused before the searches past the bound run, not after all of
	// them: one entry past it costs the scripts (EVALSHA) that twice as
	// many past it do, whatever a search costs the store (one script, or
	// one a partition).
	rdb := e.rdb.(*redis.Client)
	scriptsOfRefused := func(n int) int {
		t.Helper()
		if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		e.post("", tx(n, unions)).must(t, http.StatusBadRequest)
		_, calls := scriptCost(t, rdb)
		return calls["evalsha"]
	}
	if one, many := scriptsOfRefused(query.MaxUnions+1), scriptsOfRefused(3*query.MaxUnions); many > one {
		t.Errorf("a transaction refused for its If-None-Exist unions ran %d scripts with %d entries, %d with %d: the searches past the bound ran",
			many, 3*query.MaxUnions, one, query.MaxUnions+1)
	}
	res := e.post("", tx(query.MaxUnions+1, unions)).must(t, http.StatusBadRequest)
	if !strings.Contains(string(res.body), "too-costly") || !strings.Contains(string(res.body), "If-None-Exist") {
		t.Errorf("a transaction whose conditional creates combine %d unions: %s", query.MaxUnions+1, res.body)
	}
	if n := total(t, e.get("/ServiceRequest")); n != 0 {
		t.Fatalf("%d referrals stored from a refused transaction", n)
	}
	e.post("", tx(query.MaxUnions, unions)).must(t, http.StatusOK)
	byIdentifier := func(i int) string { return "identifier=" + gpIdentSystem + "|CC-I-" + strconv.Itoa(i) }
	e.post("", tx(2*query.MaxUnions+1, byIdentifier)).must(t, http.StatusOK)
}
