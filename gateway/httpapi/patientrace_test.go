package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// The Patient a consent decision compares a Consent's names with (a
// reference beside an NHS number) may be renumbered by a PUT between the
// decision's read of it and its commit, while nothing names it by
// reference yet, so the rule that a named Patient keeps its NHS number
// does not stop the PUT. These tests land that PUT in the window with a
// commitHook.

// racePatient is the kept Patient the races are about.
const racePatient = "race-renumbered"

// numberedPatient is practice-a's Patient racePatient with one NHS number.
func numberedPatient(nhs string) []byte {
	return []byte(`{"resourceType":"Patient","id":"` + racePatient + `","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` +
		nhs + `"}],"name":[{"text":"Synthetic Person"}]}`)
}

// renumberBefore arms h to renumber racePatient (a PUT giving it the
// second synthetic NHS number, answered 200) just before the first commit
// for which decides holds, after that commit's plan read the Patient with
// the first number. It returns whether the renumbering ran.
func (e *env) renumberBefore(t *testing.T, h *commitHook, decides func(c *gateway.Commit) bool) func() bool {
	var done atomic.Bool // set on the server's goroutine, read on the test's
	h.set(func(c *gateway.Commit) bool {
		if done.Load() || !decides(c) {
			return false
		}
		done.Store(true)
		if r := e.put("/Patient/"+racePatient, numberedPatient(nhsNumber2), as("practice-a")...); r.status != http.StatusOK {
			t.Errorf("the renumbering: %d %s", r.status, r.body)
		}
		return true
	})
	return done.Load
}

// mustRefuseTwoPeople checks the answer to a request naming the Patient
// by reference beside the number it no longer has: 422, a business rule
// at expr, echoing neither number.
func mustRefuseTwoPeople(t *testing.T, r *response, expr string) {
	t.Helper()
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"business-rule"`) || !strings.Contains(string(r.body), `"`+expr+`"`) {
		t.Errorf("answered %d %.300s; want 422, a business rule at %s (the Patient it names has another NHS number now)", r.status, r.body, expr)
		return
	}
	noPatientData(t, r.body, nhsNumber, nhsNumber2)
}

// A referral naming a kept Patient by reference and NHS number, sent on a
// Consent by that NHS number: the Patient is renumbered after the
// referral's plan read it and before the referral's commit. The commit
// used to go through, on the Patient as read: the referral went to the
// provider, who reads the Patient through its Task, now someone the
// Consent does not name. The Patient's version is a precondition of the
// commit, which is refused and planned again on the renumbered Patient:
// the referral names two people and is refused, nothing queued. On one
// Redis, and on a store that spreads referrals (the referral beside its
// Patient), also on a Redis Cluster; and where no consent is asked, whose
// decision reads no Patient: the referral's own check of its subject
// against the Patient rests on the version it read.
func TestPatientRenumberedWhileAReferralIsDecidedIsNotSentOnIt(t *testing.T) {
	t.Parallel()
	for _, run := range []struct {
		name      string
		on        []func(*options)
		providers []gateway.Provider
	}{
		{"redis", []func(*options){onOneRedis, unspread}, consentProviders()},
		{"spread", []func(*options){onOneRedis, spread}, consentProviders()},
		{"spread cluster", []func(*options){onCluster, spread}, consentProviders()},
		{"redis, no consent asked", []func(*options){onOneRedis, unspread}, testProviders},
	} {
		t.Run(run.name, func(t *testing.T) {
			t.Parallel()
			h := &commitHook{}
			e := setup(t, append(run.on, withProviders(run.providers), withCommitHook(h))...)
			a := as("practice-a")
			e.put("/Patient/"+racePatient, numberedPatient(nhsNumber), a...).must(t, http.StatusCreated)
			e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated) // by NHS number

			renumbered := e.renumberBefore(t, h, writesReferral)
			body := strings.Replace(string(referral("RENUMBERED-1", "390893007")), `"subject":`+byNHSNumber,
				`"subject":`+byBoth("Patient/"+racePatient, nhsNumber), 1)
			r := e.post("/ServiceRequest", []byte(body), a...)
			if !renumbered() {
				t.Fatal("the renumbering did not run between the referral's plan and its commit; the test proves nothing")
			}
			mustRefuseTwoPeople(t, r, "ServiceRequest.subject.identifier.value")
			if n := e.deliveries(t, "referral"); n != 0 {
				t.Errorf("%d deliveries queued for a referral decided on a Patient renumbered before its commit; want none", n)
			}
		})
	}
}

// A Consent naming a kept Patient by reference and NHS number releases a
// referral held for that NHS number: the Patient is renumbered after the
// Consent's plan read it (at the door, and for the decision) and before
// its commit. The commit used to go through: the Consent was stored naming
// two people and, where the release was in its commit, the referral went
// to the provider on it. The Patient's version is a precondition of the
// commit, which is refused and planned again: the Consent is refused as
// at the door, and the referral stays held. On one Redis, and on a store
// that spreads referrals, with the referral beside the Patient (released
// in the Consent's commit) or apart (released in a commit of its own after
// it), also on a Redis Cluster.
func TestPatientRenumberedWhileAConsentIsDecidedReleasesNothing(t *testing.T) {
	t.Parallel()
	for _, run := range []struct {
		name  string
		on    []func(*options)
		apart bool
	}{
		{"redis", []func(*options){onOneRedis, unspread}, false},
		{"spread beside", []func(*options){onOneRedis, spread}, false},
		{"spread apart", []func(*options){onOneRedis, spread}, true},
		{"spread cluster apart", []func(*options){onCluster, spread}, true},
	} {
		t.Run(run.name, func(t *testing.T) {
			t.Parallel()
			h := &commitHook{}
			e := setup(t, append(run.on, withProviders(consentProviders()), withCommitHook(h))...)
			a := as("practice-a")
			e.put("/Patient/"+racePatient, numberedPatient(nhsNumber), a...).must(t, http.StatusCreated)
			place, err := e.store.PlacePatient(context.Background(), gateway.PatientKey("practice-a", racePatient))
			if err != nil {
				t.Fatal(err)
			}
			ident := e.identifierPlaced(t, place, run.apart)
			srID := e.post("/ServiceRequest", referral(ident, "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string) // by NHS number
			task := e.referralTask(t, srID)
			taskID := task["id"].(string)
			if task["status"] != "on-hold" {
				t.Fatalf("the referral is %v; the test needs it held awaiting consent", task["status"])
			}

			renumbered := e.renumberBefore(t, h, func(c *gateway.Commit) bool {
				return slices.ContainsFunc(c.Writes, func(w gateway.Write) bool { return w.Resource.Type == gateway.TypeConsent })
			})
			r := e.post("/Consent", withPatient(t, consentFor("walking", "active"), byBoth("Patient/"+racePatient, nhsNumber)), a...)
			if !renumbered() {
				t.Fatal("the renumbering did not run between the Consent's plan and its commit; the test proves nothing")
			}
			mustRefuseTwoPeople(t, r, "Consent.patient.identifier.value")
			task = e.referralTask(t, srID)
			if task["status"] != "on-hold" || reasonCode(task) != gateway.ReasonAwaitingConsent || !gateway.Withheld(mustJSON(task)) {
				t.Errorf("Task %v, reason %q; want on-hold awaiting-consent, withheld", task["status"], reasonCode(task))
			}
			if n := e.deliveries(t, "referral"); n != 0 {
				t.Errorf("%d deliveries queued on a Consent decided on a Patient renumbered before its commit; want none", n)
			}
			e.providerSeesNothing(t, "walking", taskID, srID)
		})
	}
}

// identifierPlaced is a business identifier for a new referral of
// practice-a: on a store that spreads, one that places the referral in
// the partition with id prefix place, or (apart) in another.
func (e *env) identifierPlaced(t *testing.T, place string, apart bool) string {
	t.Helper()
	for i := range 4096 {
		ident := "PLACED-" + strings.ToUpper(strings.TrimSuffix(place, "-")) + "-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		got := e.store.Place(gateway.ReferralKey(testCallers["practice-a"], gateway.Identifier{System: gpIdentSystem, Value: ident}))
		if !e.store.Spread() || (got != place) == apart {
			return ident
		}
	}
	t.Fatal("no identifier places a referral as the test needs")
	return ""
}

// A Patient is renumbered by a PUT whose plan found nothing naming it by
// reference, and a referral (or a Consent) naming it by reference and its
// NHS number is stored between that plan and the PUT's commit. The PUT
// used to go through: the referral, sent on the number, then named a
// Patient that is someone else, whom its provider reads through its Task,
// the very change the rule that a named Patient keeps its NHS number
// refuses. The PUT's commit now rests on what its plan found naming the
// Patient, and is refused and planned again: 422 at Patient.identifier,
// the Patient as it was.
func TestPatientRenumberedWhileSomethingComesToNameItIsRefused(t *testing.T) {
	t.Parallel()
	for _, run := range []struct {
		name string
		on   []func(*options)
		// names is what comes to name the Patient, posted by practice-a.
		names, path string
	}{
		{"redis referral", []func(*options){onOneRedis, unspread}, "referral", "/ServiceRequest"},
		{"redis consent", []func(*options){onOneRedis, unspread}, "consent", "/Consent"},
		{"spread cluster referral", []func(*options){onCluster, spread}, "referral", "/ServiceRequest"},
	} {
		t.Run(run.name, func(t *testing.T) {
			t.Parallel()
			h := &commitHook{}
			e := setup(t, append(run.on, withProviders(consentProviders()), withCommitHook(h))...)
			a := as("practice-a")
			e.put("/Patient/"+racePatient, numberedPatient(nhsNumber), a...).must(t, http.StatusCreated)
			e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated) // by NHS number

			body := withPatient(t, consentFor("walking", "active"), byBoth("Patient/"+racePatient, nhsNumber))
			if run.names == "referral" {
				body = []byte(strings.Replace(string(referral("RENUMBERED-2", "390893007")), `"subject":`+byNHSNumber,
					`"subject":`+byBoth("Patient/"+racePatient, nhsNumber), 1))
			}
			var named atomic.Bool
			h.set(func(c *gateway.Commit) bool {
				if named.Load() || !slices.ContainsFunc(c.Writes, func(w gateway.Write) bool {
					return w.Resource.Type == gateway.TypePatient && w.Resource.Version == 2
				}) {
					return false
				}
				named.Store(true)
				e.post(run.path, body, a...).must(t, http.StatusCreated)
				return true
			})
			r := e.put("/Patient/"+racePatient, numberedPatient(nhsNumber2), a...)
			if !named.Load() {
				t.Fatal("nothing came to name the Patient between the renumbering's plan and its commit; the test proves nothing")
			}
			if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"Patient.identifier"`) {
				t.Errorf("the renumbering answered %d; want 422 at Patient.identifier", r.status)
			} else {
				noPatientData(t, r.body, nhsNumber, nhsNumber2)
			}
			got := e.get("/Patient/"+racePatient, a...).must(t, http.StatusOK).body
			if !strings.Contains(string(got), nhsNumber) || strings.Contains(string(got), nhsNumber2) {
				t.Errorf("the Patient after the refusal has another NHS number than its first")
			}
		})
	}
}

// A GP system's own referral Task (a transaction entry) for a referral
// that names the patient by NHS number alone may point at a Patient the
// client keeps with that number. That Patient is read, and decides the
// Task; renumbered between the plan and the commit, while nothing stored
// names it yet, the Task used to be stored for a Patient with another NHS
// number, and its provider shown that other person. The Patient's version
// is a precondition of the commit, which is refused and planned again on
// the renumbered Patient: the Task names someone else and is refused,
// nothing queued. No consent is asked here, so no consent decision reads
// (and guards) the Patient.
func TestPatientRenumberedWhileAnOwnTaskIsDecidedIsRefused(t *testing.T) {
	t.Parallel()
	h := &commitHook{}
	e := setup(t, onOneRedis, unspread, withProviders(testProviders), withCommitHook(h))
	a := as("practice-a")
	e.put("/Patient/"+racePatient, numberedPatient(nhsNumber), a...).must(t, http.StatusCreated)

	renumbered := e.renumberBefore(t, h, writesReferral)
	r := e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("RACE-OWN-TASK-1", "390893007"))),
		entry("urn:uuid:task", "Task", ownTask("urn:uuid:sr", "Patient/"+racePatient))), a...)
	if !renumbered() {
		t.Fatal("the renumbering did not run between the transaction's plan and its commit; the test proves nothing")
	}
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"Bundle.entry[1].resource.for"`) {
		t.Errorf("answered %d %.300s; want 422 at Bundle.entry[1].resource.for: the Patient the Task names has another NHS number than the referral now", r.status, r.body)
	}
	if n := e.deliveries(t, "referral"); n != 0 {
		t.Errorf("%d deliveries queued for a Task whose Patient was renumbered before its commit; want none", n)
	}
}
