package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/fhir/structure/r4examples"
)

// officialExamples are the official R4 examples, by file name.
func officialExamples(t *testing.T) map[string][]byte {
	t.Helper()
	out, err := r4examples.All()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The official R4 Patient and ServiceRequest examples, sent as an
// integrator would: every one is valid R4, so none is refused for its
// structure (400); every one stored is read back member for member as it
// was sent, but for the server's id and meta. ServiceRequests may still be
// refused by a referral's business rules (422: a code no table maps, a
// subject that is not a Patient held).
func TestOfficialR4ExamplesThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var names []string
	ex := officialExamples(t)
	for n := range ex {
		if strings.HasPrefix(n, "Patient-") || strings.HasPrefix(n, "ServiceRequest-") {
			names = append(names, n)
		}
	}
	sort.Strings(names) // Patients first: the referrals refer to them
	stored, refused := 0, 0
	for _, n := range names {
		body := ex[n]
		var head struct{ ResourceType, ID string }
		_ = json.Unmarshal(body, &head)
		var res *response
		if head.ResourceType == "Patient" {
			res = e.put("/Patient/"+head.ID, body)
		} else {
			res = e.post("/ServiceRequest", body)
		}
		switch res.status {
		case http.StatusCreated:
			stored++
			got := e.get("/"+head.ResourceType+"/"+res.json(t)["id"].(string)).must(t, http.StatusOK)
			sameMembers(t, n, body, got.body)
		case http.StatusUnprocessableEntity:
			refused++
		default:
			t.Errorf("%s: %d %s", n, res.status, res.body)
		}
	}
	t.Logf("%d stored and read back, %d refused by a referral's business rules", stored, refused)
	if stored < 10 {
		t.Errorf("only %d examples stored", stored)
	}
}

// sameMembers checks that every member of a resource as sent is stored
// with its bytes (id and meta are the server's), and nothing else added.
func sameMembers(t *testing.T, name string, sent, stored []byte) {
	t.Helper()
	a, err := fhir.ParseResource(sent, fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := fhir.ParseResource(stored, fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range a.Names() {
		if m == "id" || m == "meta" {
			continue
		}
		x, _ := a.Member(m)
		y, ok := b.Member(m)
		if !ok || !bytes.Equal(x, y) {
			t.Errorf("%s: %s not stored as sent", name, m)
		}
	}
	if extra := len(b.Names()) - len(a.Names()); extra < 0 || extra > 2 {
		t.Errorf("%s: stored with %d members, sent with %d", name, len(b.Names()), len(a.Names()))
	}
	var sm, bm map[string]any
	_ = json.Unmarshal(sent, &sm)
	_ = json.Unmarshal(stored, &bm)
	if meta, ok := sm["meta"].(map[string]any); ok {
		got, _ := bm["meta"].(map[string]any)
		for k, v := range meta {
			if k != "versionId" && k != "lastUpdated" && !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s: meta.%s not kept", name, k)
			}
		}
	}
}
