package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/gateway/worker"
)

// A synthetic patient with one recognisable value per element a share
// profile decides on (its narrative repeats the date of birth, as real
// narratives do).
const sharePatient = `{"resourceType":"Patient","id":"pat-share",` +
	`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Born 1961-03-14</div>"},` +
	`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}],` +
	`"name":[{"given":["Sam"],"family":"Sharename"}],"telecom":[{"system":"phone","value":"07700 900123"}],` +
	`"gender":"female","birthDate":"1961-03-14","address":[{"line":["1 Sentinel Street"],"city":"Leeds"}]}`

// shareReferral is a referral for that patient with a reason, a clinical
// note and the GP's business identifier.
func shareReferral(ident, code string) []byte {
	return []byte(`{"resourceType":"ServiceRequest",` +
		`"identifier":[{"system":"` + gpIdentSystem + `","value":"` + ident + `"}],` +
		`"status":"active","intent":"order","priority":"routine",` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]},` +
		`"subject":{"reference":"Patient/pat-share"},` +
		`"requester":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"` + practiceODS + `"}},` +
		`"authoredOn":"2026-11-20T09:30:00Z",` +
		`"reasonCode":[{"text":"ReasonSentinel: lives alone"}],"note":[{"text":"NoteSentinel: on warfarin"}]}`)
}

// shareSentinels are the values of each element, as the element a profile names.
var shareSentinels = map[string]string{
	"Patient.name":              "Sharename",
	"Patient.telecom":           "07700 900123",
	"Patient.birthDate":         "1961-03-14",
	"Patient.address":           "1 Sentinel Street",
	"Patient.identifier":        nhsNumber,
	"ServiceRequest.reasonCode": "ReasonSentinel",
	"ServiceRequest.note":       "NoteSentinel",
	"ServiceRequest.identifier": "SHARE-",
}

// Each share profile: what the provider reads over the API, sees in its
// inbox, and is sent as a full webhook and as a BaRS message holds the
// profile's elements and none of the others — each checked by scanning for
// the value of every element that must not be there — and stays valid R4.
func TestShareProfilesCutEveryPath(t *testing.T) {
	t.Parallel()
	profiles := []struct {
		name     string
		elements []string // nil: no profile, everything is shared
		shared   []string // elements of shareSentinels that must be there
	}{
		{"minimal", []string{"name", "telecom", "reasonCode", "note"},
			[]string{"Patient.name", "Patient.telecom", "ServiceRequest.reasonCode", "ServiceRequest.note"}},
		{"contact", []string{"name", "telecom", "address", "Patient.identifier"},
			[]string{"Patient.name", "Patient.telecom", "Patient.address", "Patient.identifier"}},
		{"everything", nil, []string{"Patient.name", "Patient.telecom", "Patient.birthDate", "Patient.address", "Patient.identifier",
			"ServiceRequest.reasonCode", "ServiceRequest.note", "ServiceRequest.identifier"}},
	}
	for _, pr := range profiles {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			ps := make([]gateway.Provider, len(testProviders))
			copy(ps, testProviders)
			ps[1].Categories = []string{"money-debt-benefits", "housing"}
			ps[1].Services = []string{"http://fhir.nhs.uk/Id/dos-service-id|999999999"}
			if pr.elements != nil {
				profile := gateway.NewShareProfile(pr.name, pr.elements)
				ps[0].Share, ps[1].Share = profile, profile
			}
			e := setup(t, withProviders(ps))
			rc := newReceiver(t)
			bp := newBarsProvider(t, nil)
			e.startDeliveries(map[string]worker.Endpoint{
				"walking": {Name: "Walking for Health", Kind: "webhook", URL: rc.srv.URL, Secrets: webhookSecret, Full: true},
				"advice":  {Name: "Money Advice", Kind: "bars", URL: bp.srv.URL + "/fhir"},
				"link":    {Name: "Link Workers", Kind: "portal"}})
			a := as("practice-a")
			e.put("/Patient/pat-share", []byte(sharePatient), a...).must(t, http.StatusCreated)
			srWalk := e.post("/ServiceRequest", shareReferral("SHARE-1", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			srAdvice := e.post("/ServiceRequest", shareReferral("SHARE-2", "710911006"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
			taskWalk := e.referralTask(t, srWalk)["id"].(string)
			taskAdvice := e.referralTask(t, srAdvice)["id"].(string)

			seen := map[string][]byte{}
			for _, c := range []struct{ provider, task, sr string }{{"walking", taskWalk, srWalk}, {"advice", taskAdvice, srAdvice}} {
				var api []byte
				for _, path := range []string{"/Patient/pat-share", "/ServiceRequest/" + c.sr, "/Task/" + c.task} {
					r := e.get(path, callerHeader, c.provider).must(t, http.StatusOK)
					checkR4(t, c.provider+" "+path, r.body)
					api = append(api, r.body...)
				}
				r := e.get("/Task?_id="+c.task+"&_include=Task:focus&_include=Task:patient", callerHeader, c.provider).must(t, http.StatusOK)
				checkR4(t, c.provider+" search", r.body)
				if n := len(bundleEntries(t, r, "")); n != 3 {
					t.Errorf("%s: the search with includes has %d entries, want the Task, its referral and the Patient", c.provider, n)
				}
				seen[c.provider+" API"] = append(api, r.body...)
				detail, err := e.svc.Portal.Referral(context.Background(), testCallers[c.provider], c.task)
				if err != nil {
					t.Fatal(err)
				}
				seen[c.provider+" inbox"], _ = json.Marshal(detail)
			}
			eventually(t, "the webhook", func() bool { return len(rc.received()) == 1 })
			eventually(t, "the BaRS message", func() bool { return len(bp.received()) == 1 })
			seen["webhook (full)"] = rc.received()[0]
			checkR4(t, "webhook", seen["webhook (full)"])
			sentMessage(t, bp.received()[0]) // valid R4, a message
			seen["BaRS message"] = bp.received()[0].body

			for path, body := range seen {
				for el, value := range shareSentinels {
					inbox := strings.HasSuffix(path, "inbox")
					if inbox && (el == "ServiceRequest.identifier" || el == "ServiceRequest.reasonCode") {
						continue // the inbox never shows these
					}
					has := strings.Contains(string(body), value)
					switch want := contains(pr.shared, el); {
					case want && !has:
						t.Errorf("%s: %s is missing though the profile shares it", path, el)
					case !want && has:
						t.Errorf("%s: %s (%q) is there though the profile withholds it", path, el, value)
					}
				}
			}
			// The GP keeps the whole record.
			full := e.get("/Patient/pat-share", a...).must(t, http.StatusOK).body
			for _, el := range []string{"Patient.birthDate", "Patient.address", "Patient.identifier"} {
				if !strings.Contains(string(full), shareSentinels[el]) {
					t.Errorf("the GP's own Patient lost %s", el)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkR4 fails the test for what is not valid FHIR R4.
func checkR4(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, is := range structure.Validate(body).Issues {
		t.Errorf("%s is not valid R4: %s %v: %s", what, is.Code, is.Expression, is.Diagnostics)
	}
}

// A provider shown a Task cut to its profile (the patient's NHS number
// withheld from Task.for) moves it on by sending back what it was shown,
// over the API or in the inbox: nothing it never saw changes, and the GP's
// Task keeps the identifier and no SUBSETTED tag.
func TestShareProfileProviderUpdatesWhatItWasShown(t *testing.T) {
	t.Parallel()
	ps := make([]gateway.Provider, len(testProviders))
	copy(ps, testProviders)
	ps[0].Share = gateway.NewShareProfile("minimal", []string{"name", "telecom", "reasonCode", "note"})
	e := setup(t, withProviders(ps))
	a := as("practice-a")
	srID := e.post("/ServiceRequest", referral("SHARE-UPD-1", "390893007"), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	taskID := e.referralTask(t, srID)["id"].(string)
	shown := e.get("/Task/"+taskID, callerHeader, "walking").must(t, http.StatusOK)
	if strings.Contains(string(shown.body), nhsNumber) || !strings.Contains(string(shown.body), "SUBSETTED") {
		t.Fatalf("the provider's Task is not cut: %s", shown.body)
	}
	accepted := strings.Replace(string(shown.body), `"status":"requested"`, `"status":"accepted"`, 1)
	e.put("/Task/"+taskID, []byte(accepted), callerHeader, "walking", "If-Match", shown.header.Get("ETag")).must(t, http.StatusOK)
	gp := e.get("/Task/"+taskID, a...).must(t, http.StatusOK)
	if !strings.Contains(string(gp.body), nhsNumber) || strings.Contains(string(gp.body), "SUBSETTED") || !strings.Contains(string(gp.body), `"status":"accepted"`) {
		t.Errorf("the GP's Task after the provider's update: %s", gp.body)
	}
	// The inbox's step, from the cut Task, goes through too.
	version := gp.json(t)["meta"].(map[string]any)["versionId"].(string)
	v, _ := strconv.Atoi(version)
	if _, err := e.svc.Portal.Progress(context.Background(), testCallers["walking"], taskID, portal.Step{Action: portal.ActionContact, Version: v}, nil); err != nil {
		t.Errorf("the inbox's step on a cut Task: %v", err)
	}
	if got := e.get("/Task/"+taskID, a...).must(t, http.StatusOK).body; !strings.Contains(string(got), nhsNumber) {
		t.Errorf("the inbox's step lost the identifier: %s", got)
	}
}

// A profile that withholds the patient's name withholds it from the
// references too: a referral naming its patient in subject.display is read
// by the provider (ServiceRequest, and the Task's for) without it.
func TestShareProfileWithholdsTheNameInReferences(t *testing.T) {
	t.Parallel()
	ps := make([]gateway.Provider, len(testProviders))
	copy(ps, testProviders)
	ps[0].Share = gateway.NewShareProfile("nonames", []string{"telecom", "reasonCode"})
	e := setup(t, withProviders(ps))
	a := as("practice-a")
	e.put("/Patient/pat-share", []byte(sharePatient), a...).must(t, http.StatusCreated)
	body := strings.Replace(string(shareReferral("SHARE-N", "390893007")), `"subject":{"reference":"Patient/pat-share"}`,
		`"subject":{"reference":"Patient/pat-share","display":"Sam Sharename"}`, 1)
	srID := e.post("/ServiceRequest", []byte(body), a...).must(t, http.StatusCreated).json(t)["id"].(string)
	task := e.referralTask(t, srID)
	if !strings.Contains(string(mustJSON(task)), "Sharename") {
		t.Fatalf("the Task does not name the patient; the test proves nothing: %s", mustJSON(task))
	}
	for _, path := range []string{"/ServiceRequest/" + srID, "/Task/" + task["id"].(string)} {
		r := e.get(path, callerHeader, "walking").must(t, http.StatusOK)
		checkR4(t, path, r.body)
		if strings.Contains(string(r.body), "Sharename") {
			t.Errorf("%s shows the name the profile withholds: %s", path, r.body)
		}
	}
	if !strings.Contains(string(e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK).body), "Sharename") {
		t.Error("the GP's own ServiceRequest lost its subject's display")
	}
}
