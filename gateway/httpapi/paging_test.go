package httpapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Paging cannot lose or repeat a match while matches change between
// pages: Tasks already returned and Tasks not yet reached both change (so
// each moves to the end of the _lastUpdated order), and every Task is still
// returned exactly once, in either direction.
func TestPagingNeitherLosesNorRepeatsWhileTasksChange(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testPagingNeitherLosesNorRepeatsWhileTasksChange)
}

func testPagingNeitherLosesNorRepeatsWhileTasksChange(t *testing.T, on func(*options)) {
	t.Parallel()
	for _, sort := range []string{"_lastUpdated", "-_lastUpdated"} {
		t.Run(sort, func(t *testing.T) {
			t.Parallel()
			e := setup(t, on)
			for i := range 12 {
				e.post("/ServiceRequest", referral("R-PAGE-"+string(rune('a'+i)), "390893007")).must(t, http.StatusCreated)
			}
			all := bundleEntries(t, e.get("/Task?_count=100&_sort="+sort).must(t, http.StatusOK), "match")
			if len(all) != 12 {
				t.Fatalf("%d Tasks", len(all))
			}
			seen := map[string]int{}
			next := "/Task?_count=5&_sort=" + sort
			for page := 0; next != ""; page++ {
				res := e.get(next).must(t, http.StatusOK)
				for _, m := range bundleEntries(t, res, "match") {
					seen[m["id"].(string)]++
				}
				if page == 0 {
					// One already returned, and two not yet reached, change.
					for _, i := range []int{0, 6, 9} {
						id := all[i]["id"].(string)
						e.do(http.MethodPatch, "/Task/"+id, []byte(`[{"op":"replace","path":"/status","value":"accepted"}]`),
							with(as("walking"), "Content-Type", "application/json-patch+json")...).must(t, http.StatusOK)
					}
				}
				next = nextLink(t, res)
				if page > 5 {
					t.Fatal("paging does not end")
				}
			}
			for _, m := range all {
				if n := seen[m["id"].(string)]; n != 1 {
					t.Errorf("Task %s returned %d times", m["id"], n)
				}
			}
		})
	}
}

// A paging link that is not one Signpost made is refused, as is an
// offset beside it.
func TestPagingCursorIsChecked(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.get("/Task?_cursor=not-a-cursor").must(t, http.StatusBadRequest)
	for i := range 3 {
		e.post("/ServiceRequest", referral("R-CUR-"+string(rune('a'+i)), "390893007")).must(t, http.StatusCreated)
	}
	next := nextLink(t, e.get("/Task?_count=1").must(t, http.StatusOK))
	if !strings.Contains(next, "_cursor=") {
		t.Fatalf("next link %q has no cursor", next)
	}
	e.get(next+"&_offset=1").must(t, http.StatusBadRequest)
}

// nextLink is a search Bundle's next link, as a path below /fhir ("" when
// there is none).
func nextLink(t *testing.T, res *response) string {
	t.Helper()
	links, _ := res.json(t)["link"].([]any)
	for _, l := range links {
		l := l.(map[string]any)
		if l["relation"] == "next" {
			u, err := url.Parse(l["url"].(string))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimPrefix(u.Path, "/fhir") + "?" + u.RawQuery
		}
	}
	return ""
}

// Patients are kept under their practice's key: paging through them by
// cursor reaches each once, and the next link names no other practice.
func TestPagingThroughPatients(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	for _, id := range []string{"p1", "p2", "p3"} {
		e.put("/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`"}`), a...).must(t, http.StatusCreated)
	}
	e.put("/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`), as("practice-b")...).must(t, http.StatusCreated)
	seen := map[string]int{}
	next := "/Patient?_count=1"
	for page := 0; next != ""; page++ {
		res := e.get(next, a...).must(t, http.StatusOK)
		for _, m := range bundleEntries(t, res, "match") {
			seen[m["id"].(string)]++
		}
		next = nextLink(t, res)
		if page > 4 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 3 || seen["p1"] != 1 || seen["p2"] != 1 || seen["p3"] != 1 {
		t.Errorf("practice a paged through %v", seen)
	}
}
