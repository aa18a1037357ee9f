package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

func TestSearchParameters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Three referrals: two walking (physical activity), one debt advice.
	a := e.post("/ServiceRequest", referral("S-1", "390893007")).must(t, http.StatusCreated).json(t)
	b := e.post("/ServiceRequest", referral("S-2", "390893007")).must(t, http.StatusCreated).json(t)
	c := e.post("/ServiceRequest", referral("S-3", "710913009")).must(t, http.StatusCreated).json(t)
	ids := func(r *response) []string {
		var out []string
		for _, m := range bundleEntries(t, r.must(t, http.StatusOK), "match") {
			out = append(out, m["id"].(string))
		}
		return out
	}
	sorted := func(ids []string) string { slices.Sort(ids); return strings.Join(ids, ",") }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"ServiceRequest?_id=" + a["id"].(string), []string{a["id"].(string)}},
		{"ServiceRequest?identifier=" + url.QueryEscape(gpIdentSystem+"|S-2"), []string{b["id"].(string)}},
		{"ServiceRequest?identifier=S-2", []string{b["id"].(string)}},
		{"ServiceRequest?code=710913009", []string{c["id"].(string)}},
		{"ServiceRequest?code=" + url.QueryEscape("http://snomed.info/sct|390893007"), []string{a["id"].(string), b["id"].(string)}},
		{"ServiceRequest?code=" + url.QueryEscape("http://other.example|390893007"), nil},
		{"ServiceRequest?status=active&code=710913009,390893007", []string{a["id"].(string), b["id"].(string), c["id"].(string)}},
		{"ServiceRequest?status=draft", nil},
		{"ServiceRequest?requester:identifier=" + url.QueryEscape("https://fhir.nhs.uk/Id/ods-organization-code|A81001") + "&code=710913009", []string{c["id"].(string)}},
	} {
		// Matches are ordered by lastUpdated, then id; referrals made in the
		// same millisecond may come in either order, so compare as sets.
		if got := ids(e.get("/" + tc.query)); sorted(got) != sorted(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
		}
	}
	asc, desc := ids(e.get("/ServiceRequest?_sort=_lastUpdated")), ids(e.get("/ServiceRequest?_sort=-_lastUpdated"))
	slices.Reverse(desc)
	if len(asc) != 3 || strings.Join(asc, ",") != strings.Join(desc, ",") {
		t.Errorf("descending order is not the reverse of ascending: %v / %v", asc, desc)
	}
	// Task by owner, with the ServiceRequest included.
	res := e.get("/Task?owner=Organization/advice&_include=Task:focus").must(t, http.StatusOK)
	matches, included := bundleEntries(t, res, "match"), bundleEntries(t, res, "include")
	if len(matches) != 1 || len(included) != 1 || included[0]["id"] != c["id"] {
		t.Errorf("owner search: %d matches, %d included: %s", len(matches), len(included), res.body)
	}
	if got := total(t, e.get("/Task?owner=walking&status=requested&code=fulfill")); got != 2 {
		t.Errorf("Task?owner=walking: total %d, want 2", got)
	}
	if got := total(t, e.get("/Task?requester:identifier=A81001")); got != 3 {
		t.Errorf("Task?requester:identifier: total %d, want 3", got)
	}
}

func TestSearchPagingAndLastUpdated(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testSearchPagingAndLastUpdated)
}

func testSearchPagingAndLastUpdated(t *testing.T, on func(*options)) {
	t.Parallel()
	e := setup(t, on)
	before := time.Now().UTC().Add(-time.Second)
	for i := 0; i < 7; i++ {
		e.post("/ServiceRequest", referral(ident(i), "390893007")).must(t, http.StatusCreated)
	}
	// Page through three at a time, following next links.
	seen := map[string]bool{}
	next := e.base + "/ServiceRequest?_count=3"
	pages := 0
	for next != "" {
		res := e.get(next).must(t, http.StatusOK)
		var b struct {
			Total int
			Link  []struct{ Relation, URL string }
			Entry []struct{ Resource struct{ ID string } }
		}
		if err := json.Unmarshal(res.body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Total != 7 {
			t.Fatalf("total %d, want 7", b.Total)
		}
		for _, en := range b.Entry {
			if seen[en.Resource.ID] {
				t.Fatalf("%s on two pages", en.Resource.ID)
			}
			seen[en.Resource.ID] = true
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if pages++; pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 7 || pages != 3 {
		t.Errorf("saw %d resources on %d pages, want 7 on 3", len(seen), pages)
	}
	ts := url.QueryEscape(before.Format(time.RFC3339))
	if got := total(t, e.get("/ServiceRequest?_lastUpdated=gt"+ts)); got != 7 {
		t.Errorf("_lastUpdated=gt(before): %d, want 7", got)
	}
	if got := total(t, e.get("/ServiceRequest?_lastUpdated=lt"+ts)); got != 0 {
		t.Errorf("_lastUpdated=lt(before): %d, want 0", got)
	}
	if got := total(t, e.get("/ServiceRequest?_count=0")); got != 7 {
		t.Errorf("_count=0 total %d", got)
	}
	// Polling: changes since a moment return only what changed after it.
	mid := time.Now().UTC()
	time.Sleep(2 * time.Millisecond) // lastUpdated has millisecond precision
	e.post("/ServiceRequest", referral("late", "390893007")).must(t, http.StatusCreated)
	if got := total(t, e.get("/Task?_lastUpdated=gt"+url.QueryEscape(mid.Format("2006-01-02T15:04:05.000Z")))); got != 1 {
		t.Errorf("Task changes since mid: %d, want 1", got)
	}
	// Search by POST, parameters in the body.
	req, _ := http.NewRequest(http.MethodPost, e.base+"/ServiceRequest/_search", strings.NewReader("identifier=late"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("POST _search: %d", res.StatusCode)
	}
}

func TestSearchAnsweredWithoutIndexes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.post("/ServiceRequest", referral("N-1", "390893007")).must(t, http.StatusCreated).json(t)
	e.post("/ServiceRequest", referral("N-2", "710913009")).must(t, http.StatusCreated)
	aID := a["id"].(string)
	for query, want := range map[string]int{
		// _id from the set of all ids, alone, several, and with other filters.
		"ServiceRequest?_id=" + aID:                             1,
		"ServiceRequest?_id=" + aID + ",no-such-id":             1,
		"ServiceRequest?_id=" + aID + "&status=active":          1,
		"ServiceRequest?_id=" + aID + "&status=draft":           0,
		"ServiceRequest?_id=" + aID + "&code=710913009,1234567": 0,
		"ServiceRequest?_id=no-such-id":                         0,
		// Task.code is always fulfill.
		"Task?code=fulfill": 2,
		"Task?code=" + url.QueryEscape("http://hl7.org/fhir/CodeSystem/task-code|fulfill") + "&owner=walking": 1,
		"Task?code=review": 0,
		// Owners are providers: their ODS code finds their Tasks.
		"Task?owner:identifier=X3C4D": 1,
		"Task?owner:identifier=" + url.QueryEscape("https://fhir.nhs.uk/Id/ods-organization-code|X1A2B"): 1,
		"Task?owner:identifier=ZZZZZ":                        0,
		"Task?owner:identifier=X3C4D,X1A2B&status=requested": 2,
	} {
		if got := total(t, e.get("/"+query)); got != want {
			t.Errorf("%s: total %d, want %d", query, got, want)
		}
	}
	e.post("/Patient", []byte(`{"resourceType":"Patient"}`), "If-None-Exist", "_id=x").must(t, http.StatusBadRequest)
}

// A token is indexed once, under its system; a search that names no system
// finds it under every system registered for the parameter, with no system
// at all, and as older versions indexed it (a bare entry).
func TestTokenWithoutSystemIsFoundInEverySystem(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.post("/ServiceRequest", referral("T-1", "390893007")).must(t, http.StatusCreated)
	other := strings.Replace(string(referral("T-1", "390893007")), gpIdentSystem, "https://other-gp.example/referral-id", 1)
	e.post("/ServiceRequest", []byte(other)).must(t, http.StatusCreated)
	noSystem := strings.Replace(string(referral("T-1", "390893007")), `"system":"`+gpIdentSystem+`",`, "", 1)
	e.post("/ServiceRequest", []byte(noSystem)).must(t, http.StatusCreated)
	// A ServiceRequest stored by an older Signpost, indexed with the bare
	// value as well (written straight to the store, as it would have been).
	legacy := &gateway.Resource{Type: gateway.TypeServiceRequest, ID: "legacy-1", Version: 1, LastUpdated: time.Now(),
		Body: []byte(`{"resourceType":"ServiceRequest","id":"legacy-1","status":"active","intent":"order"}`)}
	if res, err := e.store.Commit(context.Background(), &gateway.Commit{Writes: []gateway.Write{{Resource: legacy,
		Terms: []string{"identifier=T-1", "identifier=" + gpIdentSystem + "|T-1"}}}}); err != nil || !res.OK() {
		t.Fatalf("legacy write: %+v %v", res, err)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"identifier=T-1", 4},
		{"identifier=" + url.QueryEscape(gpIdentSystem+"|T-1"), 2}, // a and the legacy one
		{"identifier=" + url.QueryEscape("|T-1"), 1},               // c: no system
		{"identifier=T-2", 0},
		{"subject:identifier=" + nhsNumber, 3},
		{"code=390893007&identifier=T-1", 3},
	} {
		if got := total(t, e.get("/ServiceRequest?"+tc.query)); got != tc.want {
			t.Errorf("%s: %d found, want %d", tc.query, got, tc.want)
		}
	}
	// The one entry a referral has per token: no bare entries any more, in
	// any partition.
	if keys := e.keys(t, "{signpost*}:i:ServiceRequest:code=390893007"); len(keys) != 0 {
		t.Errorf("a bare code entry was written: %q", keys)
	}
}
