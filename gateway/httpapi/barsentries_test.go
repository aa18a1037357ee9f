package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// storedEntries sends the published example and returns, in message order,
// the entries it carried (fullUrl and resource as sent) and where each was
// stored, as the audit record of the message names them.
func storedEntries(t *testing.T, e *env) (sent []barsEntry, stored map[string]string) {
	t.Helper()
	e.post("/$process-message", barsExample(t), as("practice-a")...).must(t, http.StatusOK)
	return auditedEntries(t, e, barsExample(t))
}

// auditedEntries reads the audit record of the one message e has taken,
// message, and returns its entries but the MessageHeader, in message order,
// and where each was stored. The record names the ServiceRequest, the
// Patient, then every other entry in message order.
func auditedEntries(t *testing.T, e *env, message []byte) (sent []barsEntry, stored map[string]string) {
	t.Helper()
	var msg struct {
		Entry []barsEntry `json:"entry"`
	}
	if err := json.Unmarshal(message, &msg); err != nil {
		t.Fatal(err)
	}
	events, raw := e.audit(t)
	if len(events) != 1 || len(events[0].Entity) != len(msg.Entry)-1 {
		t.Fatalf("want one audit record naming the %d resources stored; got\n%s", len(msg.Entry)-1, raw)
	}
	var order, rest []int
	for i := 1; i < len(msg.Entry); i++ {
		switch typeOf(msg.Entry[i].Resource) {
		case "ServiceRequest":
			order = append([]int{i}, order...)
		case "Patient":
			order = append(order, i)
		default:
			rest = append(rest, i)
		}
	}
	order = append(order, rest...)
	stored = map[string]string{}
	for k, i := range order {
		ref := events[0].Entity[k].What.Reference
		if want := typeOf(msg.Entry[i].Resource) + "/"; !strings.HasPrefix(ref, want) {
			t.Fatalf("audit entity %d is %s, want a %s (entry %d)", k, ref, want, i)
		}
		ref, _, _ = strings.Cut(ref, "/_history/")
		stored[msg.Entry[i].FullURL] = ref
	}
	return msg.Entry[1:], stored
}

type barsEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
}

func typeOf(resource []byte) string {
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	_ = json.Unmarshal(resource, &r)
	return r.ResourceType
}

// asSent is a resource without the server's fields (id, meta.versionId,
// meta.lastUpdated, which the server sets) and with each reference to what
// an entry was stored as put back to the entry's fullUrl: a stored entry
// and the entry as sent read the same.
func asSent(t *testing.T, body []byte, stored map[string]string) any {
	t.Helper()
	back := map[string]string{}
	for url, ref := range stored {
		back[ref] = url
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	delete(v, "id")
	if meta, ok := v["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(v, "meta")
		}
	}
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, m := range x {
				if s, ok := m.(string); ok && k == "reference" && back[s] != "" {
					x[k] = back[s]
				} else {
					x[k] = walk(m)
				}
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return x
	}
	return walk(v)
}

func TestBaRSEveryEntryIsStoredAsReceived(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	sent, stored := storedEntries(t, e)
	for _, entry := range sent {
		typ, ref := typeOf(entry.Resource), stored[entry.FullURL]
		got := e.get("/"+ref, as("practice-a")...).must(t, http.StatusOK)
		if typ == "ServiceRequest" || typ == "Patient" {
			continue // their server fields and subject are the referral's (TestBaRSExampleMessageIsReceivedAndRouted)
		}
		if !reflect.DeepEqual(asSent(t, got.body, stored), asSent(t, entry.Resource, nil)) {
			t.Errorf("%s is not stored as received:\nsent   %s\nstored %s", entry.FullURL, entry.Resource, got.body)
		}
		if strings.Contains(string(got.body), "urn:uuid:") {
			t.Errorf("%s keeps a reference to a message entry, not to what was stored: %s", ref, got.body)
		}
		if got.header.Get("ETag") != `W/"1"` {
			t.Errorf("%s: ETag %q, want W/\"1\"", ref, got.header.Get("ETag"))
		}
		e.get("/"+ref+"/_history/1", as("practice-a")...).must(t, http.StatusOK)
		// The provider the referral went to reads it; nobody else learns it exists.
		e.get("/"+ref, as("walking")...).must(t, http.StatusOK)
		e.get("/"+ref, as("advice")...).must(t, http.StatusNotFound)
		e.get("/"+ref, as("practice-b")...).must(t, http.StatusNotFound)
		e.get("/"+ref+"/_history/1", as("advice")...).must(t, http.StatusNotFound)
	}
	// The ServiceRequest names what was stored.
	sr := e.get("/"+stored[sent[0].FullURL], as("practice-a")...).must(t, http.StatusOK)
	for _, field := range []string{"encounter", "basedOn", "performer", "locationReference", "requester"} {
		if strings.Contains(string(sr.body), `"`+field+`":{"reference":"urn:`) || strings.Contains(string(sr.body), `"`+field+`":[{"reference":"urn:`) {
			t.Errorf("ServiceRequest.%s still names a message entry: %s", field, sr.body)
		}
	}

	// Read by id only: not searched, not written on their own — but for
	// Consent, which a GP system records (and withdraws) on its own: an
	// empty one is refused as the Consent it is.
	for _, typ := range []string{"Encounter", "Consent", "Organization"} {
		r := e.get("/"+typ, as("practice-a")...).must(t, http.StatusMethodNotAllowed)
		if issues := readOutcome(t, r); len(issues) != 1 || !strings.Contains(issues[0].Diagnostics, "read by id") {
			t.Errorf("search of %s: %s", typ, r.body)
		}
		want := http.StatusMethodNotAllowed
		if typ == "Consent" {
			want = http.StatusBadRequest
		}
		e.post("/"+typ, []byte(`{"resourceType":"`+typ+`"}`), as("practice-a")...).must(t, want)
	}

	// The same message again stores nothing new.
	e.post("/$process-message", barsExample(t), as("practice-a")...).must(t, http.StatusOK)
	for _, entry := range sent {
		if r := e.get("/"+stored[entry.FullURL], as("practice-a")...).must(t, http.StatusOK); r.header.Get("ETag") != `W/"1"` {
			t.Errorf("%s has version %s after the same message again", stored[entry.FullURL], r.header.Get("ETag"))
		}
	}
}

// The example's Encounter entry, and the fullUrl that names it.
const (
	barsEncounter    = 3
	barsEncounterURL = "urn:uuid:8c63d621-4d86-4f57-8699-e8e22d49935d"
)

func TestBaRSUpdateStoresNewVersionsOfItsEntries(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	sent, stored := storedEntries(t, e)
	update := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "5a1d2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		entryResource(entries, barsEncounter)["status"] = "finished"
	})
	e.post("/$process-message", update, as("practice-a")...).must(t, http.StatusOK)
	for _, entry := range sent {
		want := `W/"1"`
		if entry.FullURL == barsEncounterURL {
			want = `W/"2"` // changed; the others are as they were
		} else if typeOf(entry.Resource) == "ServiceRequest" || typeOf(entry.Resource) == "Patient" {
			continue
		}
		r := e.get("/"+stored[entry.FullURL], as("walking")...).must(t, http.StatusOK)
		if r.header.Get("ETag") != want {
			t.Errorf("%s: ETag %s, want %s", stored[entry.FullURL], r.header.Get("ETag"), want)
		}
	}
	enc := e.get("/"+stored[barsEncounterURL], as("practice-a")...).json(t)
	if enc["status"] != "finished" {
		t.Errorf("Encounter.status = %v after the update, want finished", enc["status"])
	}
	old := e.get("/"+stored[barsEncounterURL]+"/_history/1", as("practice-a")...).json(t)
	if old["status"] == "finished" {
		t.Error("version 1 of the Encounter changed")
	}
}

// A message received again changes none of the entries it brought. Sent
// again after a later update changed its Encounter (a sender's late
// retry), the first message is refused (409 at that entry) and the
// Encounter stays as the update left it; so is that update sent again
// after another changed it. Before, each was answered 200 and stored its
// Encounter as it had been sent, a new version undoing the later change
// (a Consent's withdrawal just the same).
func TestBaRSMessageAgainChangesNoEntry(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, append(on, withBaRSService, withWarnNHS)...)
			a := as("practice-a")
			_, stored := storedEntries(t, e)
			encounter := "/" + stored[barsEncounterURL]
			update := func(bundleID, status string) []byte {
				return barsMutant(t, func(b map[string]any, entries []any) {
					b["id"] = bundleID
					entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
					entryResource(entries, barsEncounter)["status"] = status
				})
			}
			finished := update("5a1d2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "finished")
			e.post("/$process-message", finished, a...).must(t, http.StatusOK)
			mustBe := func(version, status string) {
				t.Helper()
				r := e.get(encounter, a...).must(t, http.StatusOK)
				if r.header.Get("ETag") != `W/"`+version+`"` || r.json(t)["status"] != status {
					t.Fatalf("the Encounter is %s, %v; want version %s, %s", r.header.Get("ETag"), r.json(t)["status"], version, status)
				}
			}
			mustBe("2", "finished")

			before := storeKeys(t, e)
			r := e.post("/$process-message", barsExample(t), a...).must(t, http.StatusConflict)
			if is := readOutcome(t, r); len(is) != 1 || is[0].Code != "conflict" || len(is[0].Expression) != 1 || is[0].Expression[0] != fmt.Sprintf("Bundle.entry[%d].resource", barsEncounter) {
				t.Errorf("the first message again: %s", r.body)
			}
			mustBe("2", "finished")
			if after := storeKeys(t, e); !reflect.DeepEqual(before, after) {
				t.Errorf("the refused message changed Redis:\nbefore %v\nafter  %v", before, after)
			}

			e.post("/$process-message", update("6b2e3d4f-5a6b-4c7d-9e8f-0a1b2c3d4e5f", "cancelled"), a...).must(t, http.StatusOK)
			mustBe("3", "cancelled")
			e.post("/$process-message", finished, a...).must(t, http.StatusConflict)
			mustBe("3", "cancelled")
		})
	}
}

func TestBaRSEntryOfAnotherReferralIsNotChanged(t *testing.T) {
	testBaRSEntryOfAnotherReferralIsNotChanged(t, nil)
}

// On a store that spreads referrals the other referral is placed in its
// own partition, and its entries' ids carry that partition: the reused
// fullUrl is still found, as the same sender's entry of another referral,
// and refused.
func TestBaRSEntryOfAnotherReferralIsNotChangedAcrossPartitions(t *testing.T) {
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		testBaRSEntryOfAnotherReferralIsNotChanged(t, nil, on, spread)
	})
}

// The other referral's entries were stored before the store spread (in
// legacy, under ids without a partition, and with no entry identity,
// gateway.MessageEntryKey, claimed: a store that does not spread claims
// none): once it spreads, the reused fullUrl is still refused, as on one
// Redis. Before, the message was taken.
func TestBaRSEntryOfAReferralMadeBeforeSpreadingIsNotChanged(t *testing.T) {
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		testBaRSEntryOfAnotherReferralIsNotChanged(t, func(e *env) { e.store.SpreadReferrals() }, on, unspread)
	})
}

// testBaRSEntryOfAnotherReferralIsNotChanged stores a referral's message,
// runs then (if given), and sends another referral's message reusing its
// entries' fullUrls.
func testBaRSEntryOfAnotherReferralIsNotChanged(t *testing.T, then func(*env), opts ...func(*options)) {
	e := setup(t, append([]func(*options){withBaRSService, withWarnNHS}, opts...)...)
	_, stored := storedEntries(t, e)
	if then != nil {
		then(e)
	}
	// Another referral (another message, ServiceRequest and identifier) whose
	// entries reuse the first referral's fullUrls: the first of them (entry 2) is refused.
	other := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "6b2e3d4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
		entries[1].(map[string]any)["fullUrl"] = "urn:uuid:7c3f4e5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"
		entryResource(entries, 0)["focus"].([]any)[0].(map[string]any)["reference"] = "urn:uuid:7c3f4e5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"
		entryResource(entries, 1)["identifier"] = []any{map[string]any{"system": gpIdentSystem, "value": "another-referral"}}
		entryResource(entries, barsEncounter)["status"] = "finished"
	})
	before := e.countServiceRequests(t)
	r := e.post("/$process-message", other, as("practice-a")...).must(t, http.StatusConflict)
	issues := readOutcome(t, r)
	if len(issues) != 1 || issues[0].Expression[0] != "Bundle.entry[2].resource" || !strings.Contains(issues[0].Diagnostics, "another referral") {
		t.Errorf("want one conflict at the Encounter entry; got %s", r.body)
	}
	if n := e.countServiceRequests(t); n != before {
		t.Errorf("%d ServiceRequests after a refused message, want %d", n, before)
	}
	if enc := e.get("/"+stored[barsEncounterURL], as("practice-a")...).json(t); enc["status"] == "finished" {
		t.Error("another referral's message changed this referral's Encounter")
	}
}

func TestBaRSMessageEntriesFollowTheDefinition(t *testing.T) {
	drop := func(typ string) func(map[string]any, []any) {
		return func(b map[string]any, entries []any) {
			kept := entries[:0]
			for _, en := range entries {
				if en.(map[string]any)["resource"].(map[string]any)["resourceType"] != typ {
					kept = append(kept, en)
				}
			}
			b["entry"] = kept
		}
	}
	cases := []struct {
		name   string
		change func(map[string]any, []any)
		status int
		expr   string
		says   string
	}{
		{"a Task entry", func(b map[string]any, entries []any) {
			b["entry"] = append(entries, map[string]any{"fullUrl": "urn:uuid:0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
				"resource": map[string]any{"resourceType": "Task", "status": "requested", "intent": "order"}})
		}, http.StatusUnprocessableEntity, "Bundle.entry[19].resource", "Task"},
		{"a type no definition lists", func(b map[string]any, entries []any) {
			b["entry"] = append(entries, map[string]any{"fullUrl": "urn:uuid:0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
				"resource": map[string]any{"resourceType": "Device"}})
		}, http.StatusUnprocessableEntity, "Bundle.entry[19].resource", "Device"},
		{"a type its definition does not list", func(b map[string]any, entries []any) {
			b["entry"] = append(entries, map[string]any{"fullUrl": "urn:uuid:0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
				"resource": map[string]any{"resourceType": "Condition", "subject": map[string]any{"reference": "urn:uuid:9589fb37-87a2-48d8-968f-b371429208a8"}}})
		}, http.StatusUnprocessableEntity, "Bundle.entry[19].resource", "Condition"},
		{"no Consent", drop("Consent"), http.StatusBadRequest, "Bundle.entry", "Consent"},
		{"two HealthcareServices", func(b map[string]any, entries []any) {
			b["entry"] = append(entries, map[string]any{"fullUrl": "urn:uuid:0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
				"resource": map[string]any{"resourceType": "HealthcareService"}})
		}, http.StatusBadRequest, "Bundle.entry", "HealthcareService"},
		{"an unknown definition", func(_ map[string]any, entries []any) {
			entryResource(entries, 0)["definition"] = "https://example.org/MessageDefinition/other"
		}, http.StatusUnprocessableEntity, barsHeader + ".definition", "definitions"},
		{"a Patient that is not the subject", func(_ map[string]any, entries []any) {
			entryResource(entries, 1)["subject"] = map[string]any{"identifier": map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhsNumber}}
		}, http.StatusBadRequest, "Bundle.entry", "subject"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, withBaRSService, withWarnNHS)
			r := e.post("/$process-message", barsMutant(t, c.change), as("practice-a")...).must(t, c.status)
			issues := readOutcome(t, r)
			if len(issues) != 1 || len(issues[0].Expression) != 1 || issues[0].Expression[0] != c.expr || !strings.Contains(issues[0].Diagnostics, c.says) {
				t.Errorf("want one issue at %s naming %s; got %s", c.expr, c.says, r.body)
			}
			if !strings.Contains(string(r.body), "https://fhir.nhs.uk/CodeSystem/http-error-codes") {
				t.Errorf("no BaRS error code: %s", r.body)
			}
			if n := e.countServiceRequests(t); n != 0 {
				t.Errorf("%d ServiceRequests stored after a refused message", n)
			}
		})
	}
	// Without a definition, any type a definition lists, in any number.
	e := setup(t, withBaRSService, withWarnNHS)
	e.post("/$process-message", barsMutant(t, func(b map[string]any, entries []any) {
		delete(entryResource(entries, 0), "definition")
		drop("Consent")(b, entries)
	}), as("practice-a")...).must(t, http.StatusOK)
}

// A referral keeps at most gateway.MaxSupporting resources beside its
// ServiceRequest and Patient, however many update messages bring more.
func TestBaRSReferralHoldsBoundedSupportingResources(t *testing.T) {
	e := setup(t, withBaRSService, withWarnNHS)
	observations := func(from, n int) []any {
		var out []any
		for i := from; i < from+n; i++ {
			out = append(out, map[string]any{"fullUrl": fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", i),
				"resource": map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "synthetic"}}})
		}
		return out
	}
	// The example's 16 and 80 more: 96, within the bound.
	first := barsMutant(t, func(b map[string]any, entries []any) {
		b["entry"] = append(entries, observations(0, 80)...)
	})
	e.post("/$process-message", first, as("practice-a")...).must(t, http.StatusOK)
	// An update with the same entries again and five more: 101.
	update := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "7d4f5e6a-7b8c-4d9e-8f0a-1b2c3d4e5f6b"
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		b["entry"] = append(append(entries, observations(0, 76)...), observations(80, 5)...)
	})
	r := e.post("/$process-message", update, as("practice-a")...).must(t, http.StatusUnprocessableEntity)
	if issues := readOutcome(t, r); len(issues) != 1 || !strings.Contains(issues[0].Diagnostics, "101") {
		t.Errorf("want one issue saying the referral would hold 101; got %s", r.body)
	}
	// Four more fit exactly.
	fits := barsMutant(t, func(b map[string]any, entries []any) {
		b["id"] = "8e5a6b7c-8d9e-4fa0-8b1c-2d3e4f5a6b7c"
		entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
		b["entry"] = append(entries, observations(80, 4)...)
	})
	e.post("/$process-message", fits, as("practice-a")...).must(t, http.StatusOK)
}
