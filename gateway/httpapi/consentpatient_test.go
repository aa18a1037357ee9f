package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
)

// otherPatient names the second synthetic patient by NHS number.
const otherPatient = `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}}`

// withPatient gives a Consent body (as consentFor makes it, or as read)
// another patient element.
func withPatient(t *testing.T, body []byte, patient string) []byte {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	var p any
	if err := json.Unmarshal([]byte(patient), &p); err != nil {
		t.Fatal(err)
	}
	c["patient"] = p
	return mustJSON(c)
}

// mustRefuseMove checks the answer to an update moving a Consent to
// another patient: 422, a business rule about the Consent's patient (at
// expr), saying how to consent for someone else, echoing no patient data.
func mustRefuseMove(t *testing.T, r *response, expr string) {
	t.Helper()
	r.must(t, http.StatusUnprocessableEntity)
	var oo struct {
		ResourceType string
		Issue        []struct {
			Code, Diagnostics string
			Expression        []string
		}
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("want an OperationOutcome with one issue: %s", r.body)
	}
	is := oo.Issue[0]
	if is.Code != "business-rule" || !slices.Equal(is.Expression, []string{expr}) || !strings.Contains(is.Diagnostics, "inactive") || !strings.Contains(is.Diagnostics, "nothing was written") {
		t.Errorf("issue %+v; want business-rule at %s saying to withdraw it (inactive) and send a new one", is, expr)
	}
	noPatientData(t, r.body)
}

// A Consent's patient cannot be moved to another patient by an update:
// the referrals sent on it are its patient's, and were found again only
// by the patient it names now, so the old patient's would stay with the
// provider with no Consent of theirs permitting it. The update is refused
// (nothing written, the referral as it was); the GP system withdraws the
// Consent, which withdraws what went out on it, and sends a new one.
// Before, the PUT was answered 200 and the old patient's referral stayed
// delivered and visible to the provider.
func TestConsentPatientCannotMoveByUpdate(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, append(on, withProviders(consentProviders()))...)
			a := as("practice-a")
			id := e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			srID := e.post("/ServiceRequest", referral("CONSENT-MOVE-1", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			task := e.referralTask(t, srID)
			taskID := task["id"].(string)
			if task["status"] != "requested" {
				t.Fatalf("the referral is %v; the test needs it sent on the Consent", task["status"])
			}

			before := storeKeys(t, e)
			for _, status := range []string{"active", "inactive"} {
				moved := withPatient(t, withConsentID(consentFor("walking", status), id), otherPatient)
				mustRefuseMove(t, e.put("/Consent/"+id, moved, a...), "Consent.patient")
			}
			if after := storeKeys(t, e); !slices.Equal(before, after) {
				t.Errorf("a refused update changed the store's keys:\nbefore %v\nafter  %v", before, after)
			}
			c := e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t)
			if v := c["meta"].(map[string]any)["versionId"]; v != "1" || !strings.Contains(string(mustJSON(c["patient"])), nhsNumber) {
				t.Errorf("the Consent is version %v naming %s; want version 1 naming its patient", v, mustJSON(c["patient"]))
			}
			if got := e.referralTask(t, srID); got["status"] != "requested" {
				t.Errorf("the referral is %v after a refused update; want requested", got["status"])
			}
			e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK)

			// What the refusal says to do: withdraw it, then consent anew.
			e.put("/Consent/"+id, withConsentID(consentFor("walking", "inactive"), id), a...).must(t, http.StatusOK)
			if got := e.referralTask(t, srID); got["status"] != "cancelled" || reasonCode(got) != gateway.ReasonConsentWithdrawn {
				t.Errorf("after the withdrawal: Task %v reason %q; want cancelled consent-withdrawn", got["status"], reasonCode(got))
			}
			e.providerSeesNothing(t, "walking", taskID, srID)
			e.post("/Consent", withPatient(t, consentFor("walking", "active"), otherPatient), a...).must(t, http.StatusCreated)
			if sent, told := e.deliveries(t, "referral"), e.deliveries(t, "withdrawn"); sent != 1 || told != 1 {
				t.Errorf("%d referral deliveries queued, %d delete notices; want 1 and 1", sent, told)
			}
		})
	}
}

// The same patient named alike is not a move: a reference relative or
// absolute (at this server's base), or to a version, is filed under the
// same terms. Naming them by NHS number instead is: a referral naming the
// Patient by reference is found by the reference only, so it would no
// longer be decided with this Consent.
func TestConsentPatientNamedAlikeIsNotAMove(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, append(on, withProviders(consentProviders()))...)
			a := as("practice-a")
			e.put("/Patient/alike-1", []byte(`{"resourceType":"Patient","id":"alike-1","name":[{"text":"Alike Person"}]}`), a...).must(t, http.StatusCreated)
			byRef := `{"reference":"Patient/alike-1"}`
			consent := withPatient(t, consentFor("walking", "active"), byRef)
			id := e.post("/Consent", consent, a...).must(t, http.StatusCreated).json(t)["id"].(string)
			byNHSNumber := `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
			body := strings.Replace(string(referral("CONSENT-ALIKE-1", "390893007")), byNHSNumber, `"subject":`+byRef, 1)
			srID := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			taskID := e.referralTask(t, srID)["id"].(string)
			if got := e.referralTask(t, srID); got["status"] != "requested" {
				t.Fatalf("the referral is %v; the test needs it sent on the Consent", got["status"])
			}

			for _, alike := range []string{`{"reference":"` + e.base + `/Patient/alike-1"}`, `{"reference":"Patient/alike-1/_history/1"}`} {
				e.put("/Consent/"+id, withPatient(t, withConsentID(consentFor("walking", "active"), id), alike), a...).must(t, http.StatusOK)
			}
			mustRefuseMove(t, e.put("/Consent/"+id, withPatient(t, withConsentID(consentFor("walking", "active"), id), otherPatient), a...), "Consent.patient")
			byIdentifier := `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
			mustRefuseMove(t, e.put("/Consent/"+id, withPatient(t, withConsentID(consentFor("walking", "inactive"), id), byIdentifier), a...), "Consent.patient")
			if got := e.referralTask(t, srID); got["status"] != "requested" {
				t.Errorf("the referral is %v after refused updates; want requested", got["status"])
			}

			// Withdrawn naming the Patient by absolute reference: its
			// referral is withdrawn.
			withdrawn := withPatient(t, withConsentID(consentFor("walking", "inactive"), id), `{"reference":"`+e.base+`/Patient/alike-1"}`)
			e.put("/Consent/"+id, withdrawn, a...).must(t, http.StatusOK)
			if got := e.referralTask(t, srID); got["status"] != "cancelled" || reasonCode(got) != gateway.ReasonConsentWithdrawn {
				t.Errorf("after the withdrawal: Task %v reason %q; want cancelled consent-withdrawn", got["status"], reasonCode(got))
			}
			e.providerSeesNothing(t, "walking", taskID, srID)
		})
	}
}

// A BaRS message's Consent is held to the same rule, whether an update
// message or its GP system's PUT changes it: its referral was sent on it
// and is decided with it, and with another patient named it would no
// longer count for that referral, which would stay with the provider.
// Before, both were answered 200 and the referral stayed delivered.
func TestBaRSConsentPatientCannotMoveByUpdate(t *testing.T) {
	t.Parallel()
	for name, on := range map[string][]func(*options){"store": nil, "spread": {spread}} {
		for _, by := range []string{"put", "message"} {
			t.Run(name+" "+by, func(t *testing.T) {
				t.Parallel()
				e := setup(t, append(on, withProviders(barsConsentProviders()), withWarnNHS)...)
				a := as("practice-a")
				_, sr, task := readBaRSAnswer(t, e.post("/$process-message", barsExample(t), a...).must(t, http.StatusOK))
				srID, taskID := sr["id"].(string), task["id"].(string)
				if task["status"] != "requested" {
					t.Fatalf("the message's referral is %v; the test needs it sent on its Consent", task["status"])
				}
				id := e.messageConsent(t)
				before := storeKeys(t, e)

				if by == "put" {
					c := e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t)
					mustRefuseMove(t, e.put("/Consent/"+id, withPatient(t, namingWalking(c, "active"), otherPatient), a...), "Consent.patient")
				} else {
					at := ""
					moved := barsMutant(t, func(b map[string]any, entries []any) {
						b["id"] = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
						entryResource(entries, 0)["reason"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "update"
						for i := range entries {
							if r := entryResource(entries, i); r["resourceType"] == "Consent" {
								var p any
								_ = json.Unmarshal([]byte(otherPatient), &p)
								r["patient"] = p
								at = "Bundle.entry[" + strconv.Itoa(i) + "].resource.patient"
							}
						}
					})
					mustRefuseMove(t, e.post("/$process-message", moved, a...), at)
				}
				if after := storeKeys(t, e); !slices.Equal(before, after) {
					t.Errorf("a refused update changed the store's keys:\nbefore %v\nafter  %v", before, after)
				}
				c := e.get("/Consent/"+id, a...).must(t, http.StatusOK).json(t)
				if v := c["meta"].(map[string]any)["versionId"]; v != "1" {
					t.Errorf("the Consent is version %v; want 1", v)
				}
				if got := e.referralTask(t, srID); got["status"] != "requested" {
					t.Errorf("the referral is %v after a refused update; want requested", got["status"])
				}
				e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK)
				if told := e.deliveries(t, "withdrawn"); told != 0 {
					t.Errorf("%d delete notices after a refused update", told)
				}
			})
		}
	}
}

// byBoth names a patient by reference and by NHS number, as a FHIR
// Reference.
func byBoth(ref, nhs string) string {
	return `{"reference":"` + ref + `","identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}}`
}

// A Consent that names one patient by reference and another by NHS number
// consents for neither: which of the two gave it cannot be told, so it
// sends neither one's held referral to the provider, though each is found
// by one of its names. Where the Patient its reference points at is kept
// here, the contradiction is seen at the door: 422, nothing written.
// Before, the Consent was taken and released both patients' referrals.
func TestConsentNamingTwoPatientsSendsNeithersReferral(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		a := as("practice-a")
		byNHSNumber := `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
		refer := func(ident, subject string) string {
			body := strings.Replace(string(referral(ident, "390893007")), `"subject":`+byNHSNumber, `"subject":`+subject, 1)
			srID := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			if task := e.referralTask(t, srID); task["status"] != "on-hold" {
				t.Fatalf("referral %s is %v; the test needs it held awaiting consent", ident, task["status"])
			}
			return srID
		}
		// Patients sent without their NHS numbers, which the referrals and
		// the Consents give: nothing here to compare a Consent with.
		for _, id := range []string{"unnumbered-1", "unnumbered-2"} {
			e.put("/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","name":[{"text":"Unnumbered Person"}]}`), a...).must(t, http.StatusCreated)
		}
		first := refer("TWO-PATIENTS-1", byBoth("Patient/unnumbered-1", nhsNumber))
		second := refer("TWO-PATIENTS-2", byBoth("Patient/unnumbered-2", nhsNumber2))

		mixed := withPatient(t, consentFor("walking", "active"), byBoth("Patient/unnumbered-1", nhsNumber2))
		mixedID := e.post("/Consent", mixed, a...).must(t, http.StatusCreated).json(t)["id"].(string)
		// Referrals naming either patient by one name only are not sent on
		// it either: nothing here shows its two names are one person.
		refer("TWO-PATIENTS-3", `{"reference":"Patient/unnumbered-1"}`)
		refer("TWO-PATIENTS-4", `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber2+`"}}`)
		for _, srID := range []string{first, second} {
			if task := e.referralTask(t, srID); task["status"] != "on-hold" || reasonCode(task) != gateway.ReasonAwaitingConsent {
				t.Errorf("after a Consent naming two patients, a referral is %v (%q); want on-hold awaiting-consent", task["status"], reasonCode(task))
			}
		}
		if n := e.deliveries(t, "referral"); n != 0 {
			t.Errorf("%d deliveries queued on a Consent naming two patients; want none", n)
		}

		// The first patient's own Consent sends theirs, and only theirs.
		e.post("/Consent", withPatient(t, consentFor("walking", "active"), byBoth("Patient/unnumbered-1", nhsNumber)), a...).must(t, http.StatusCreated)
		if task := e.referralTask(t, first); task["status"] != "requested" {
			t.Errorf("the first patient's referral is %v after their Consent; want requested", task["status"])
		}
		if task := e.referralTask(t, second); task["status"] != "on-hold" {
			t.Errorf("the second patient's referral is %v after the first's Consent; want on-hold", task["status"])
		}
		if n := e.deliveries(t, "referral"); n != 1 {
			t.Errorf("%d deliveries queued; want the first patient's only", n)
		}

		// A Patient kept here is compared at the door.
		e.put("/Patient/kept-3", []byte(`{"resourceType":"Patient","id":"kept-3","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+
			nhsNumber2+`"}],"name":[{"text":"Kept Person"}]}`), a...).must(t, http.StatusCreated)
		before := storeKeys(t, e)
		r := e.post("/Consent", withPatient(t, consentFor("walking", "active"), byBoth("Patient/kept-3", nhsNumber)), a...)
		r.must(t, http.StatusUnprocessableEntity)
		var oo struct {
			Issue []struct {
				Code, Diagnostics string
				Expression        []string
			}
		}
		if err := json.Unmarshal(r.body, &oo); err != nil || len(oo.Issue) != 1 || oo.Issue[0].Code != "business-rule" ||
			!slices.Equal(oo.Issue[0].Expression, []string{"Consent.patient.identifier.value"}) || !strings.Contains(oo.Issue[0].Diagnostics, "patient.reference") {
			t.Errorf("want one business-rule issue at Consent.patient.identifier.value naming the reference it disagrees with: %s", r.body)
		}
		noPatientData(t, r.body, nhsNumber, nhsNumber2)
		if after := storeKeys(t, e); !slices.Equal(before, after) {
			t.Errorf("a refused Consent changed the store's keys:\nbefore %v\nafter  %v", before, after)
		}
		// Named alike by both, it is taken, and sends the second patient's
		// referral only if it is theirs: Patient/kept-3 is not the patient
		// that referral names by reference, so it stays held.
		e.post("/Consent", withPatient(t, consentFor("walking", "active"), byBoth("Patient/kept-3", nhsNumber2)), a...).must(t, http.StatusCreated)
		if task := e.referralTask(t, second); task["status"] != "on-hold" {
			t.Errorf("the second referral is %v after a Consent for another Patient with its NHS number; want on-hold", task["status"])
		}

		// The Patient gains its NHS number, which the door would now refuse
		// the Consent naming two people for: its withdrawal is still taken.
		e.put("/Patient/unnumbered-1", []byte(`{"resourceType":"Patient","id":"unnumbered-1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+
			nhsNumber+`"}],"name":[{"text":"Unnumbered Person"}]}`), a...).must(t, http.StatusOK)
		e.put("/Consent/"+mixedID, withPatient(t, withConsentID(consentFor("walking", "inactive"), mixedID), byBoth("Patient/unnumbered-1", nhsNumber2)), a...).must(t, http.StatusOK)
	})
}

// A referral whose subject is a Patient it contains is for the person that
// Patient's identifier names. Its Task names the patient so (a "#pt" there
// would name nothing, which R4 forbids: ref-1, and which no Consent could
// find): a Consent by that identifier sends it and the Consent's withdrawal
// stops it, while another patient's Consent sends nothing. A contained
// Patient giving no identifier names no one: 422, nothing stored. A
// Consent naming only a contained Patient is refused too.
// Before, the Task's for was "#pt", and such a referral was held for ever.
func TestConsentNamingAContainedPatientSendsNoOthersReferral(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	a := as("practice-a")
	byNHSNumber := `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
	contained := func(identifiers string) string {
		return `"contained":[{"resourceType":"Patient","id":"pt"` + identifiers + `,"name":[{"text":"Contained Person"}]}],`
	}
	numbered := func(nhs string) string {
		return `,"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}]`
	}
	containing := func(ident, identifiers, subject string) []byte {
		body := strings.Replace(string(referral(ident, "390893007")), `"subject":`+byNHSNumber, `"subject":`+subject, 1)
		return []byte(strings.Replace(body, `{"resourceType":"ServiceRequest",`, `{"resourceType":"ServiceRequest",`+contained(identifiers), 1))
	}
	refer := func(ident, identifiers, subject, nhs string) string {
		srID := e.post("/ServiceRequest", containing(ident, identifiers, subject), a...).must(t, http.StatusCreated).json(t)["id"].(string)
		task := e.referralTask(t, srID)
		if task["status"] != "on-hold" {
			t.Fatalf("referral %s is %v; the test needs it held awaiting consent", ident, task["status"])
		}
		forRef, _ := task["for"].(map[string]any)
		id, _ := forRef["identifier"].(map[string]any)
		if _, local := forRef["reference"]; local || id["value"] != nhs {
			t.Errorf("referral %s's Task is for %v; want the contained Patient's NHS number %s, and no reference", ident, task["for"], nhs)
		}
		for _, is := range structure.Validate(mustJSON(task)).Issues {
			t.Errorf("referral %s's Task is not valid R4: %v %s", ident, is.Expression, is.Diagnostics)
		}
		return srID
	}
	first := refer("CONTAINED-1", numbered(nhsNumber), `{"reference":"#pt"}`, nhsNumber)
	other := refer("CONTAINED-2", numbered(nhsNumber2), `{"reference":"#pt"}`, nhsNumber2)
	both := refer("CONTAINED-3", numbered(nhsNumber), `{"reference":"#pt",`+byNHSNumber[1:], nhsNumber)
	unnumbered := refer("CONTAINED-4", "", `{"reference":"#pt",`+byNHSNumber[1:], nhsNumber)

	// Named by its contained Patient alone, a Consent would find no one: it
	// is refused, so that a refusal so named is not taken and ignored.
	consent := strings.Replace(string(consentFor("walking", "active")), `{"resourceType":"Consent",`, `{"resourceType":"Consent",`+contained(numbered(nhsNumber)), 1)
	r := e.post("/Consent", withPatient(t, []byte(consent), `{"reference":"#pt"}`), a...)
	r.must(t, http.StatusBadRequest)
	if !strings.Contains(string(r.body), "Consent.patient.identifier") {
		t.Errorf("the refusal does not point at patient.identifier: %s", r.body)
	}
	if n := e.deliveries(t, "referral"); n != 0 {
		t.Fatalf("%d deliveries queued after a refused Consent; want none", n)
	}

	// The first patient's Consent sends that patient's referrals only, and
	// its withdrawal stops each of them.
	consentID := e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	for srID, want := range map[string]string{first: "requested", both: "requested", unnumbered: "requested", other: "on-hold"} {
		if task := e.referralTask(t, srID); task["status"] != want {
			t.Errorf("a contained-subject referral is %v after the first patient's Consent; want %s", task["status"], want)
		}
	}
	if n := e.deliveries(t, "referral"); n != 3 {
		t.Errorf("%d deliveries queued; want the first patient's three", n)
	}
	// The provider's page shows the person the referral contains.
	walking := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	detail, err := e.svc.Portal.Referral(context.Background(), walking, e.referralTask(t, first)["id"].(string))
	if err != nil || detail.Person.Name != "Contained Person" || detail.Person.NHSNumber != nhsNumber {
		t.Errorf("the referral page of a contained-subject referral: %v %+v", err, detail)
	}
	e.put("/Consent/"+consentID, withConsentID(consentFor("walking", "inactive"), consentID), a...).must(t, http.StatusOK)
	for _, srID := range []string{first, both, unnumbered} {
		if task := e.referralTask(t, srID); task["status"] != "cancelled" || reasonCode(task) != gateway.ReasonConsentWithdrawn {
			t.Errorf("after the withdrawal a referral sent on it is %v (%q); want cancelled consent-withdrawn", task["status"], reasonCode(task))
		}
	}
	if task := e.referralTask(t, other); task["status"] != "on-hold" {
		t.Errorf("the other patient's referral is %v; want on-hold", task["status"])
	}

	// An identifier beside the reference of a system the contained Patient
	// gives another value of names someone else: refused. One of a system it
	// does not give stands beside its NHS number, which the Task names.
	const local = `"https://example-gp.nhs.uk/patient-id"`
	bySystem := func(value string) string {
		return `{"reference":"#pt","identifier":{"system":` + local + `,"value":"` + value + `"}}`
	}
	localAndNHS := `,"identifier":[{"system":` + local + `,"value":"L-222"},{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}]`
	r = e.post("/ServiceRequest", containing("CONTAINED-LOCAL-1", localAndNHS, bySystem("L-111")), a...)
	r.must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), "ServiceRequest.subject.identifier.value") || strings.Contains(string(r.body), "L-111") {
		t.Errorf("the refusal does not point at subject.identifier.value, or echoes it: %s", r.body)
	}
	refer("CONTAINED-LOCAL-2", numbered(nhsNumber2), bySystem("L-111"), nhsNumber2)

	// A contained Patient with no identifier, and none beside the
	// reference, names no one: refused, nothing stored.
	r = e.post("/ServiceRequest", containing("CONTAINED-NONE", "", `{"reference":"#pt"}`), a...)
	r.must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), "ServiceRequest.subject.identifier") || strings.Contains(string(r.body), "Contained Person") {
		t.Errorf("the refusal does not point at subject.identifier, or echoes the patient: %s", r.body)
	}
	if got := bundleEntries(t, e.get("/ServiceRequest?identifier="+gpIdentSystem+"|CONTAINED-NONE", a...).must(t, http.StatusOK), "match"); len(got) != 0 {
		t.Errorf("%d referrals stored from a refused request", len(got))
	}
}

// A referral naming its patient by a kept Patient and an NHS number the
// Patient does not show (it keeps none) may be for either person: another
// person's Consent by that NHS number does not send it (the provider would
// read the kept Patient through its Task).
func TestReferralNamingTwoPatientsIsNotSentOnEithersConsent(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	a := as("practice-a")
	e.put("/Patient/unnumbered-a", []byte(`{"resourceType":"Patient","id":"unnumbered-a","name":[{"text":"Unnumbered Person"}]}`), a...).must(t, http.StatusCreated)
	byNHSNumber := `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
	body := strings.Replace(string(referral("TWO-NAMES-1", "390893007")), `"subject":`+byNHSNumber, `"subject":`+byBoth("Patient/unnumbered-a", nhsNumber2), 1)
	srID := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	e.post("/Consent", withPatient(t, consentFor("walking", "active"), otherPatient), a...).must(t, http.StatusCreated)
	if task := e.referralTask(t, srID); task["status"] != "on-hold" {
		t.Errorf("a referral naming two people is %v after one's Consent by NHS number; want on-hold", task["status"])
	}
	if n := e.deliveries(t, "referral"); n != 0 {
		t.Errorf("%d deliveries queued; want none", n)
	}
	// Its Consent naming it alike sends it.
	e.post("/Consent", withPatient(t, consentFor("walking", "active"), byBoth("Patient/unnumbered-a", nhsNumber2)), a...).must(t, http.StatusCreated)
	if task := e.referralTask(t, srID); task["status"] != "requested" {
		t.Errorf("the referral is %v after a Consent naming its patient alike; want requested", task["status"])
	}
}

// A referral is decided on the patient its Task names, the name a
// Consent's withdrawal finds the Task by. A GP system's own Task may name
// the patient by a Patient reference where its ServiceRequest gives the NHS
// number alone; a Consent by that NHS number used to send the referral,
// and then its withdrawal did not find the Task: the provider kept a
// referral the patient had withdrawn consent for.
func TestOwnTaskNamingThePatientOtherwiseIsDecidedOnItsOwnName(t *testing.T) {
	t.Parallel()
	onOneRedisAndSpreadOnCluster(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withProviders(consentProviders()))...)
		a := as("practice-a")
		patient := `{"resourceType":"Patient","id":"pat-a-own","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}],"name":[{"text":"Synthetic Person"}]}`
		e.put("/Patient/pat-a-own", []byte(patient), a...).must(t, http.StatusCreated)
		e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated) // by NHS number
		res := e.post("", transaction(entry("urn:uuid:sr", "ServiceRequest", string(referral("OWN-NAME-1", "390893007"))),
			entry("urn:uuid:task", "Task", ownTask("urn:uuid:sr", "Patient/pat-a-own"))), a...)
		res.must(t, http.StatusOK)
		srID := transactionID(t, res, "ServiceRequest")
		if task := e.referralTask(t, srID); task["status"] != "on-hold" {
			t.Fatalf("a referral whose Task names Patient/pat-a-own is %v on a Consent by NHS number alone, which its withdrawal could not find it by; want on-hold", task["status"])
		}
		if n := e.deliveries(t, "referral"); n != 0 {
			t.Fatalf("%d deliveries queued; want none", n)
		}
		// A Consent naming the patient as the Task does sends it, and its
		// withdrawal reaches it.
		consentID := e.post("/Consent", withPatient(t, consentFor("walking", "active"), `{"reference":"Patient/pat-a-own"}`), a...).
			must(t, http.StatusCreated).json(t)["id"].(string)
		if task := e.referralTask(t, srID); task["status"] != "requested" {
			t.Fatalf("the referral is %v after a Consent naming its Task's patient; want requested", task["status"])
		}
		withdrawn := withPatient(t, withConsentID(consentFor("walking", "inactive"), consentID), `{"reference":"Patient/pat-a-own"}`)
		e.put("/Consent/"+consentID, withdrawn, a...).must(t, http.StatusOK)
		if task := e.referralTask(t, srID); task["status"] != "cancelled" || reasonCode(task) != gateway.ReasonConsentWithdrawn {
			t.Errorf("after the withdrawal the referral is %v (%q); want cancelled consent-withdrawn", task["status"], reasonCode(task))
		}
	})
}

// A referral's patient cannot change once its Task is made: the Task, and
// the consent it is sent on, stay the first patient's. An update naming
// another patient used to be taken, and the referral then went to the
// provider on the first patient's Consent, out of reach of the second's
// refusal. The same patient named otherwise (a Patient this client holds
// with the NHS number) is taken.
func TestReferralUpdateCannotMoveItToAnotherPatient(t *testing.T) {
	t.Parallel()
	e := setup(t, withProviders(consentProviders()))
	a := as("practice-a")
	srID := e.post("/ServiceRequest", referral("MOVE-1", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	if task := e.referralTask(t, srID); task["status"] != "on-hold" {
		t.Fatalf("the referral is %v; the test needs it held awaiting consent", task["status"])
	}
	cur := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t)
	var other any
	if err := json.Unmarshal([]byte(otherPatient), &other); err != nil {
		t.Fatal(err)
	}
	cur["subject"] = other
	r := e.put("/ServiceRequest/"+srID, mustJSON(cur), with(a, "If-Match", `W/"1"`)...)
	r.must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), `"ServiceRequest.subject"`) || strings.Contains(string(r.body), nhsNumber2) {
		t.Errorf("the refusal does not point at the subject, or echoes it: %s", r.body)
	}
	e.post("/Consent", withPatient(t, consentFor("walking", "active"), otherPatient), a...).must(t, http.StatusCreated)
	e.post("/Consent", consentFor("walking", "active"), a...).must(t, http.StatusCreated)
	got := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t)
	if id, _ := got["subject"].(map[string]any)["identifier"].(map[string]any); id["value"] != nhsNumber {
		t.Errorf("the referral's subject is %v after a refused update; want the first patient", got["subject"])
	}
	if task := e.referralTask(t, srID); task["status"] != "requested" {
		t.Errorf("the first patient's referral is %v after their Consent; want requested", task["status"])
	}
	// The same patient, named by a Patient this client holds.
	e.put("/Patient/pat-a-move", []byte(`{"resourceType":"Patient","id":"pat-a-move","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}`), a...).
		must(t, http.StatusCreated)
	got["subject"] = map[string]any{"reference": "Patient/pat-a-move"}
	version := got["meta"].(map[string]any)["versionId"].(string)
	moved := e.put("/ServiceRequest/"+srID, mustJSON(got), with(a, "If-Match", `W/"`+version+`"`)...).must(t, http.StatusOK).json(t)
	// Nor can the Patient it now names become someone else: a kept
	// Patient's NHS number does not change (nor is it dropped).
	for name, identifiers := range map[string]string{
		"another NHS number": `[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}]`,
		"a second":           `[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"},{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber2 + `"}]`,
		"none":               `[{"system":"https://example-gp.nhs.uk/patient-id","value":"L-1"}]`,
	} {
		r := e.put("/Patient/pat-a-move", []byte(`{"resourceType":"Patient","id":"pat-a-move","identifier":`+identifiers+`}`), a...)
		r.must(t, http.StatusUnprocessableEntity)
		if !strings.Contains(string(r.body), `"Patient.identifier"`) || strings.Contains(string(r.body), nhsNumber) || strings.Contains(string(r.body), nhsNumber2) {
			t.Errorf("%s: the refusal does not point at Patient.identifier, or echoes a number: %s", name, r.body)
		}
	}
	// Its NHS number kept, the Patient may change otherwise.
	e.put("/Patient/pat-a-move", []byte(`{"resourceType":"Patient","id":"pat-a-move","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"},{"system":"https://example-gp.nhs.uk/patient-id","value":"L-1"}]}`), a...).
		must(t, http.StatusOK)
	// A version of the Patient names the same person.
	moved["subject"] = map[string]any{"reference": "Patient/pat-a-move/_history/1"}
	version = moved["meta"].(map[string]any)["versionId"].(string)
	e.put("/ServiceRequest/"+srID, mustJSON(moved), with(a, "If-Match", `W/"`+version+`"`)...).must(t, http.StatusOK)
}

// A referral whose Task was made before Tasks named a contained subject by
// identifier (its for "#pt") can still be revoked, and is held to the
// patient its contained Patient names.
func TestOlderContainedSubjectReferralIsHeldToItsPatient(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	body := strings.Replace(string(referral("OLDER-1", "390893007")), `"status":"active"`, `"status":"draft"`, 1)
	body = strings.Replace(body, `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`, `"subject":{"reference":"#pt"}`, 1)
	body = strings.Replace(body, `{"resourceType":"ServiceRequest",`, `{"resourceType":"ServiceRequest","contained":[{"resourceType":"Patient","id":"pt","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}],`, 1)
	sr := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)
	srID := sr["id"].(string)
	// Its Task as stored then.
	now := time.Now().UTC().Truncate(time.Millisecond)
	taskID := e.store.PlaceOf(srID) + "older-task-1" // beside its referral, as a spreading store keeps them
	task := `{"resourceType":"Task","id":"` + taskID + `","meta":{"versionId":"1","lastUpdated":"` + gateway.Instant(now) + `"},"status":"requested","intent":"order",` +
		`"code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},"focus":{"reference":"ServiceRequest/` + srID + `"},` +
		`"for":{"reference":"#pt"},"authoredOn":"` + gateway.Instant(now) + `","owner":{"reference":"Organization/walking"},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"` + practiceODS + `"}}}`
	res, err := e.store.Commit(context.Background(), &gateway.Commit{Writes: []gateway.Write{{
		Resource: &gateway.Resource{Type: gateway.TypeTask, ID: taskID, Version: 1, LastUpdated: now, Body: []byte(task), Owner: "practice-a"},
		Terms:    []string{"status=requested", "focus=ServiceRequest/" + srID, "owner=Organization/walking", "_client=practice-a"},
	}}, Unique: []gateway.UniqueKey{{Key: gateway.ReferralTaskKey(srID), Value: gateway.TypeTask + "/" + taskID}}})
	if err != nil || !res.OK() {
		t.Fatalf("storing the older Task: %v %+v", err, res)
	}
	// Moved to another patient: refused.
	moved := e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).json(t)
	moved["status"] = "active"
	moved["contained"].([]any)[0].(map[string]any)["identifier"].([]any)[0].(map[string]any)["value"] = nhsNumber2
	e.put("/ServiceRequest/"+srID, mustJSON(moved), with(a, "If-Match", `W/"1"`)...).must(t, http.StatusUnprocessableEntity)
	// Revoked as it is: taken, and its Task cancelled.
	sr["status"] = "revoked"
	e.put("/ServiceRequest/"+srID, mustJSON(sr), with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	if got := e.get("/Task/"+taskID, a...).must(t, http.StatusOK).json(t); got["status"] != "cancelled" {
		t.Errorf("the older referral's Task is %v after its revocation; want cancelled", got["status"])
	}
}

// A Patient kept without an NHS number, named by a referral beside one,
// may gain that number and no other: its referral was decided, and sent,
// for the person behind both. A Patient nothing names may be corrected
// freely. The Patient a referral contains keeps its NHS numbers too.
func TestPatientNamedByAReferralGainsOnlyItsNumber(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	e.put("/Patient/pat-a-gain", []byte(`{"resourceType":"Patient","id":"pat-a-gain","name":[{"text":"Unnumbered Person"}]}`), a...).must(t, http.StatusCreated)
	byNHSNumber := `{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}}`
	body := strings.Replace(string(referral("GAIN-1", "390893007")), `"subject":`+byNHSNumber, `"subject":`+byBoth("Patient/pat-a-gain", nhsNumber), 1)
	srID := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	if task := e.referralTask(t, srID); task["status"] != "requested" {
		t.Fatalf("the referral is %v; the test needs it sent", task["status"])
	}
	numbered := func(nhs string) []byte {
		return []byte(`{"resourceType":"Patient","id":"pat-a-gain","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}]}`)
	}
	r := e.put("/Patient/pat-a-gain", numbered(nhsNumber2), a...)
	r.must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), `"Patient.identifier"`) || strings.Contains(string(r.body), nhsNumber2) {
		t.Errorf("the refusal does not point at Patient.identifier, or echoes the number: %s", r.body)
	}
	e.put("/Patient/pat-a-gain", numbered(nhsNumber), a...).must(t, http.StatusOK)

	// Nothing names this one: a mistyped number may be corrected.
	e.put("/Patient/pat-a-free", []byte(strings.Replace(string(numbered(nhsNumber2)), "pat-a-gain", "pat-a-free", 1)), a...).must(t, http.StatusCreated)
	e.put("/Patient/pat-a-free", []byte(strings.Replace(string(numbered(nhsNumber)), "pat-a-gain", "pat-a-free", 1)), a...).must(t, http.StatusOK)

	// A contained Patient gaining a second NHS number under its referral.
	contained := strings.Replace(string(referral("GAIN-2", "390893007")), `"subject":`+byNHSNumber, `"subject":{"reference":"#pt"}`, 1)
	contained = strings.Replace(contained, `{"resourceType":"ServiceRequest",`, `{"resourceType":"ServiceRequest","contained":[{"resourceType":"Patient","id":"pt","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}]}],`, 1)
	sr := e.post("/ServiceRequest", []byte(contained), a...).must(t, http.StatusCreated).json(t)
	pt := sr["contained"].([]any)[0].(map[string]any)
	pt["identifier"] = append(pt["identifier"].([]any), map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhsNumber2})
	r = e.put("/ServiceRequest/"+sr["id"].(string), mustJSON(sr), with(a, "If-Match", `W/"1"`)...)
	r.must(t, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), `"ServiceRequest.contained"`) || strings.Contains(string(r.body), nhsNumber2) {
		t.Errorf("the refusal does not point at ServiceRequest.contained, or echoes the number: %s", r.body)
	}
}
