package httpapi_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/gateway"
)

// barsConsentProviders: walking needs a Consent and serves the example
// message's destination.
func barsConsentProviders() []gateway.Provider {
	ps := consentProviders()
	ps[0].Services = []string{barsService}
	return ps
}

// messageConsent is the id of the one Consent stored: the example
// message's.
func (e *env) messageConsent(t *testing.T) string {
	t.Helper()
	ks := e.keys(t, "*:r:Consent:*")
	if len(ks) != 1 {
		t.Fatalf("%d Consents stored, want the message's: %v", len(ks), ks)
	}
	return ks[0][strings.LastIndex(ks[0], ":")+1:]
}

// namingWalking is a Consent as its GP system reads it, with the
// provision naming the walking provider (its status as given): what a GP
// system sends updating the Consent its BaRS message brought.
func namingWalking(c map[string]any, status string) []byte {
	c["status"] = status
	c["provision"] = map[string]any{"type": "permit", "actor": []any{map[string]any{
		"role":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}}},
		"reference": map[string]any{"reference": "Organization/walking"}}}}
	return mustJSON(c)
}

// A Consent that came in a BaRS message is about that message's referral,
// also once its GP system has updated it (PUT): another referral for the
// same patient is not sent on it, so the Consent's withdrawal, which
// decides again for its own referral, leaves nothing with the provider.
// Before, the update filed the Consent under the patient as well: a
// second referral for the patient went out on it, and the withdrawal,
// answered 200, left that one delivered and visible to the provider.
func TestBaRSConsentCountsOnlyForItsReferral(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, append(on, withProviders(barsConsentProviders()), withWarnNHS)...)
			a := as("practice-a")
			_, sr1, task1 := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), a...).must(t, http.StatusOK))
			if task1["status"] != "requested" {
				t.Fatalf("the message's referral is %v; want requested on the Consent it came with", task1["status"])
			}
			srID1, taskID1 := sr1["id"].(string), task1["id"].(string)
			patient := sr1["subject"].(map[string]any)["reference"].(string)
			id := e.messageConsent(t)
			consent := e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t)
			e.put("/Consent/"+id, namingWalking(consent, "active"), a...).must(t, http.StatusOK)

			// A second referral for the same patient (the Patient the
			// message stored), to the same provider, with no Consent of
			// its own.
			byNHSNumber := `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
			body := strings.Replace(string(referral("BARS-CONSENT-2", "390893007")), byNHSNumber, `"subject":{"reference":"`+patient+`"}`, 1)
			if !strings.Contains(body, patient) {
				t.Fatal("the second referral does not name the message's Patient")
			}
			srID2 := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			task2 := e.referralTask(t, srID2)
			taskID2 := task2["id"].(string)
			if task2["status"] != "on-hold" || reasonCode(task2) != gateway.ReasonAwaitingConsent {
				t.Errorf("second referral: Task %v reason %q; want on-hold awaiting-consent (the message's Consent is about its own referral)",
					task2["status"], reasonCode(task2))
			}

			// Withdrawn: its referral is withdrawn, and nothing of the
			// patient is left with the provider.
			consent = e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t)
			e.put("/Consent/"+id, namingWalking(consent, "inactive"), a...).must(t, http.StatusOK)
			if got := e.referralTask(t, srID1); got["status"] != "cancelled" || reasonCode(got) != gateway.ReasonConsentWithdrawn {
				t.Errorf("the message's referral: Task %v reason %q; want cancelled consent-withdrawn", got["status"], reasonCode(got))
			}
			e.providerSeesNothing(t, "walking", taskID1, srID1)
			if got := e.referralTask(t, srID2); got["status"] == "requested" || !gateway.Withheld(mustJSON(got)) {
				t.Errorf("after the withdrawal the second referral is %v, not withheld from the provider", got["status"])
			}
			e.providerSeesNothing(t, "walking", taskID2, srID2)
			if sent, told := e.deliveries(t, "referral"), e.deliveries(t, "withdrawn"); sent != told {
				t.Errorf("%d referral deliveries queued, %d delete notices: a referral sent is left with the provider", sent, told)
			}
		})
	}
}

// A message's Consent an update filed under its patient too, before an
// update kept it to its referral (written here straight to the store, as
// such an update stored it), may have sent the patient's other referrals:
// its withdrawal, by PUT or by an update message, decides again for them
// too, wherever it is filed; no referral sent on it is left with the
// provider.
func TestBaRSConsentFiledForItsPatientWithdrawsWhatWentOnIt(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		for _, by := range []string{"put", "message"} {
			t.Run(name+" "+by, func(t *testing.T) {
				t.Parallel()
				e := setup(t, append(on, withProviders(barsConsentProviders()), withWarnNHS)...)
				a := as("practice-a")
				_, sr1, task1 := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), a...).must(t, http.StatusOK))
				srID1, taskID1 := sr1["id"].(string), task1["id"].(string)
				patient := sr1["subject"].(map[string]any)["reference"].(string)
				id := e.messageConsent(t)

				// Its update as an earlier Signpost stored it: naming the
				// provider, filed under the patient and the referral.
				ctx := context.Background()
				cur, err := e.store.Read(ctx, "Consent", id)
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now().UTC().Truncate(time.Millisecond)
				c := e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t)
				c["meta"] = map[string]any{"versionId": strconv.Itoa(cur.Version + 1), "lastUpdated": gateway.Instant(now)}
				next := &gateway.Resource{Type: "Consent", ID: id, Version: cur.Version + 1, LastUpdated: now, Owner: cur.Owner, Body: namingWalking(c, "active")}
				terms := append(gateway.ConsentTerms("active", &models.Reference{Reference: &patient}, ""),
					gateway.ReferralTerm("ServiceRequest/"+srID1), gateway.ClientTerm(cur.Owner))
				if res, err := e.store.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: next, Expect: cur.Version, Terms: terms}}}); err != nil || !res.OK() {
					t.Fatalf("the earlier update: %+v %v", res, err)
				}

				// A second referral for the patient went out on it.
				byNHSNumber := `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
				body := strings.Replace(string(referral("BARS-CONSENT-3", "390893007")), byNHSNumber, `"subject":{"reference":"`+patient+`"}`, 1)
				srID2 := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
				taskID2 := e.referralTask(t, srID2)["id"].(string)
				if got := e.referralTask(t, srID2); got["status"] != "requested" {
					t.Fatalf("the second referral is %v; the test needs it sent on the Consent filed under the patient", got["status"])
				}
				e.get("/Task/"+taskID2, callerHeader, "walking").must(t, http.StatusOK)

				if by == "put" {
					c = e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t)
					e.put("/Consent/"+id, namingWalking(c, "inactive"), a...).must(t, http.StatusOK)
				} else {
					inactive := barsMutant(t, func(b map[string]any, entries []any) {
						b["id"] = "8d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a"
						entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
						for i := range entries {
							if r := entryResource(entries, i); r["resourceType"] == "Consent" {
								namingWalking(r, "inactive")
							}
						}
					})
					e.post("/$process-message", inactive, a...).must(t, http.StatusOK)
				}
				for _, ids := range [][2]string{{srID1, taskID1}, {srID2, taskID2}} {
					if got := e.referralTask(t, ids[0]); got["status"] != "cancelled" || reasonCode(got) != gateway.ReasonConsentWithdrawn {
						t.Errorf("referral %s: Task %v reason %q; want cancelled consent-withdrawn", ids[0], got["status"], reasonCode(got))
					}
					e.providerSeesNothing(t, "walking", ids[1], ids[0])
				}
				if sent, told := e.deliveries(t, "referral"), e.deliveries(t, "withdrawn"); sent != 2 || told != 2 {
					t.Errorf("%d referral deliveries queued, %d delete notices; want 2 and 2", sent, told)
				}
			})
		}
	}
}
