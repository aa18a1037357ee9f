package httpapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// barsEntryTypes are the resource types the example message carries beside
// its MessageHeader, ServiceRequest and Patient, each with the place of its
// first entry.
func barsEntryTypes(t *testing.T) map[string]string {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource struct{ ResourceType string } `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(barsExample(t), &b); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for i, e := range b.Entry {
		switch typ := e.Resource.ResourceType; typ {
		case "MessageHeader", "ServiceRequest", "Patient":
		default:
			if _, seen := types[typ]; !seen {
				types[typ] = "Bundle.entry[" + strconv.Itoa(i) + "].resource"
			}
		}
	}
	return types
}

// barsEntryScopes are the scopes a GP system sending the example message
// needs beside its ServiceRequest's: for each type the message brings but
// skip, actions (c to store them, cu to change them too).
func barsEntryScopes(t *testing.T, actions, skip string) string {
	t.Helper()
	var scopes []string
	for typ := range barsEntryTypes(t) {
		if typ != skip {
			scopes = append(scopes, "system/"+typ+"."+actions)
		}
	}
	return strings.Join(scopes, " ")
}

// mustLackScope fails unless the response is the 403 of a token without
// scope, which it names in WWW-Authenticate and in its one issue, at expr.
func (r *response) mustLackScope(t *testing.T, scope, expr string) {
	t.Helper()
	r.mustName(t, http.StatusForbidden, expr)
	if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="`+scope+`"`) {
		t.Errorf("WWW-Authenticate = %q, want insufficient_scope naming %s", h, scope)
	}
	if !strings.Contains(string(r.body), scope) {
		t.Errorf("the OperationOutcome does not name %s: %s", scope, r.body)
	}
}

// What a BaRS message stores beside its ServiceRequest and Patient is held
// to the scopes a transaction entry storing it needs: a GP system's token
// without system/Consent.c records no consent through a message (a
// Consent decides what a provider is sent), and likewise for every other
// type the message brings (an Encounter needs system/Encounter.c, …).
// Before, the ServiceRequest create scope stored them all. Refused, the
// message stores nothing: no referral, no Task, no job.
func TestBaRSEntriesNeedTheirCreateScope(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, append(on, withBaRSService, withWarnNHS, func(o *options) { o.smart = smartClients(t) })...)
			types := barsEntryTypes(t)
			if _, ok := types[gateway.TypeConsent]; !ok {
				t.Fatal("the example message carries no Consent; the test needs one")
			}
			for typ, at := range types {
				tok := e.token(t, "practice-a", "system/ServiceRequest.cu "+barsEntryScopes(t, "c", typ))
				before := storeKeys(t, e)
				e.post("/$process-message", barsExample(t), bearer(tok)...).mustLackScope(t, "system/"+typ+".c", at)
				if after := storeKeys(t, e); !slices.Equal(before, after) {
					t.Errorf("a message refused for its %s changed Redis:\nbefore %v\nafter  %v", typ, before, after)
				}
			}
			if jobs := e.queued(t, gateway.QueueDelivery); len(jobs) != 0 {
				t.Errorf("refused messages queued %d deliveries", len(jobs))
			}

			// A transaction's Consent entry is held to the same rule.
			tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + string(consentFor("walking", "active")) +
				`,"request":{"method":"POST","url":"Consent"}}]}`
			noConsent := e.token(t, "practice-a", "system/ServiceRequest.cu "+barsEntryScopes(t, "c", gateway.TypeConsent))
			e.post("", []byte(tx), bearer(noConsent)...).mustLackScope(t, "system/Consent.c", "Bundle.entry[0].request.url")

			// With the scopes, the message is taken as before, its Consent stored.
			tok := e.token(t, "practice-a", "system/ServiceRequest.cu "+barsEntryScopes(t, "c", ""))
			_, _, task := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), bearer(tok)...).must(t, http.StatusOK))
			if task["status"] != "requested" {
				t.Errorf("the referral's Task is %v, want requested", task["status"])
			}
			e.messageConsent(t)
		})
	}
}

// An update message that changes the Consent its referral came with needs
// system/Consent.u, as a PUT of that Consent does; refused, nothing of the
// message is stored, its ServiceRequest's change neither. One that carries
// the Consent unchanged stores nothing of it, and needs no Consent scope.
func TestBaRSUpdateChangingConsentNeedsConsentUpdateScope(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, append(on, withBaRSService, withWarnNHS, func(o *options) { o.smart = smartClients(t) })...)
			creates := e.token(t, "practice-a", "system/ServiceRequest.cu "+barsEntryScopes(t, "c", ""))
			reads := e.token(t, "practice-a", "system/ServiceRequest.r system/Consent.r")
			_, sr, _ := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), bearer(creates)...).must(t, http.StatusOK))
			srID, consentID := sr["id"].(string), e.messageConsent(t)
			version := func(path string) any {
				t.Helper()
				return e.get(path, bearer(reads)...).must(t, http.StatusOK).json(t)["meta"].(map[string]any)["versionId"]
			}

			onHold := func(sr map[string]any) { sr["status"] = "on-hold" }
			consentAt := barsEntryTypes(t)[gateway.TypeConsent]
			changed := barsMutant(t, func(b map[string]any, entries []any) {
				b["id"] = "4e5f6a7b-8c9d-4e0f-8a1b-2c3d4e5f6a7b"
				entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
				onHold(entryResource(entries, 1))
				for i := range entries {
					if r := entryResource(entries, i); r["resourceType"] == gateway.TypeConsent {
						namingWalking(r, "active")
					}
				}
			})
			before, jobs := storeKeys(t, e), len(e.queued(t, gateway.QueueDelivery))
			e.post("/$process-message", changed, bearer(creates)...).mustLackScope(t, "system/Consent.u", consentAt)
			if after := storeKeys(t, e); !slices.Equal(before, after) {
				t.Errorf("the refused update changed Redis:\nbefore %v\nafter  %v", before, after)
			}
			if n := len(e.queued(t, gateway.QueueDelivery)); n != jobs {
				t.Errorf("the refused update queued %d deliveries", n-jobs)
			}
			if v := version("/Consent/" + consentID); v != "1" {
				t.Errorf("the refused update left the Consent at version %v, want 1", v)
			}
			if v := version("/ServiceRequest/" + srID); v != "1" {
				t.Errorf("the refused update left the ServiceRequest at version %v, want 1", v)
			}

			// The Consent unchanged: the referral's update is taken.
			_, got, _ := readBaRSAnswer(t, e.post("/$process-message", barsChange(t, "5f6a7b8c-9d0e-4f1a-9b2c-3d4e5f6a7b8c", "update", onHold), bearer(creates)...).must(t, http.StatusOK))
			if got["status"] != "on-hold" {
				t.Errorf("the update left the referral %v, want on-hold", got["status"])
			}
			if v := version("/Consent/" + consentID); v != "1" {
				t.Errorf("an update carrying the Consent unchanged made version %v of it", v)
			}

			// With system/Consent.u the Consent's change is made.
			updates := e.token(t, "practice-a", "system/ServiceRequest.cu "+barsEntryScopes(t, "cu", ""))
			e.post("/$process-message", changed, bearer(updates)...).must(t, http.StatusOK)
			if v := version("/Consent/" + consentID); v != "2" {
				t.Errorf("with system/Consent.u the Consent is at version %v, want 2", v)
			}
		})
	}
}
