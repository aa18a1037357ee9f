package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestTaskUpdateKeepsWhoItIsFor(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, b, walking := as("practice-a"), as("practice-b"), as("walking")
	e.put("/Patient/victim", []byte(`{"resourceType":"Patient","id":"victim"}`), b...).must(t, http.StatusCreated)
	sr := e.post("/ServiceRequest", referral("FOR-1", "390893007"), a...).must(t, http.StatusCreated).json(t)
	task := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string), walking...), "match")[0]
	task["for"] = map[string]any{"reference": "Patient/victim"}
	body, _ := json.Marshal(task)
	e.put("/Task/"+task["id"].(string), body, with(walking, "If-Match", `W/"1"`)...).must(t, http.StatusUnprocessableEntity)
	delete(task, "for")
	delete(task, "requester")
	body, _ = json.Marshal(task)
	e.put("/Task/"+task["id"].(string), body, with(walking, "If-Match", `W/"1"`)...).must(t, http.StatusUnprocessableEntity)
	e.get("/Patient/victim", walking...).must(t, http.StatusNotFound)
	// Nor can a referral point at another practice's Patient, NHS number or not.
	other := strings.Replace(string(referral("FOR-2", "390893007")),
		`"subject":{"identifier"`, `"subject":{"reference":"Patient/victim","identifier"`, 1)
	e.post("/ServiceRequest", []byte(other), a...).must(t, http.StatusUnprocessableEntity)
	e.get("/Patient/victim", walking...).must(t, http.StatusNotFound)
}

func TestTransactionRefusesTheSameReferralTwice(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := func(url string) string {
		return `{"fullUrl":"` + url + `","resource":` + string(referral("DUP-1", "390893007")) + `,"request":{"method":"POST","url":"ServiceRequest"}}`
	}
	task := func(focus string) string {
		return `{"resource":{"resourceType":"Task","status":"requested","intent":"order","code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},"focus":{"reference":"` + focus + `"}},"request":{"method":"POST","url":"Task"}}`
	}
	patient := `{"resource":{"resourceType":"Patient","id":"twice"},"request":{"method":"PUT","url":"Patient/twice"}}`
	for name, entries := range map[string]string{
		"one identifier twice":     sr("urn:uuid:00000000-0000-4000-8000-000000000001") + "," + sr("urn:uuid:00000000-0000-4000-8000-000000000002"),
		"two Tasks for a referral": sr("urn:uuid:00000000-0000-4000-8000-000000000003") + "," + task("urn:uuid:00000000-0000-4000-8000-000000000003") + "," + task("urn:uuid:00000000-0000-4000-8000-000000000003"),
		"one Patient twice":        patient + "," + patient,
	} {
		e.post("", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+entries+`]}`)).must(t, http.StatusBadRequest)
		for _, typ := range []string{"ServiceRequest", "Task", "Patient"} {
			if n := total(t, e.get("/"+typ)); n != 0 {
				t.Errorf("%s: %d %s stored", name, n, typ)
			}
		}
	}
}

func TestClientTaskOwnerByIdentifierIsTheProviders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, walking, advice := as("practice-a"), as("walking"), as("advice")
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"fullUrl":"urn:uuid:00000000-0000-4000-8000-0000000000a1","resource":` + string(referral("OWN-1", "390893007")) + `,"request":{"method":"POST","url":"ServiceRequest"}},
	  {"resource":{"resourceType":"Task","status":"requested","intent":"order","code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},
	    "focus":{"reference":"urn:uuid:00000000-0000-4000-8000-0000000000a1"},
	    "owner":{"reference":"Organization/advice","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"X1A2B"}}},"request":{"method":"POST","url":"Task"}}]}`
	e.post("", []byte(tx), a...).must(t, http.StatusOK)
	tasks := bundleEntries(t, e.get("/Task", walking...).must(t, http.StatusOK), "match")
	if len(tasks) != 1 || tasks[0]["owner"].(map[string]any)["reference"] != "Organization/walking" {
		t.Fatalf("walking (X1A2B) sees %v", tasks)
	}
	if n := total(t, e.get("/Task", advice...)); n != 0 {
		t.Errorf("advice sees %d Tasks", n)
	}
}

func TestSearchSizeLimits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	many := strings.TrimSuffix(strings.Repeat("x,", 51), ",")
	e.get("/ServiceRequest?identifier="+many).must(t, http.StatusBadRequest)
	// 40 bare performer ids stand for 8 types each: too broad.
	forty := strings.TrimSuffix(strings.Repeat("p,", 40), ",")
	e.get("/ServiceRequest?performer="+forty).must(t, http.StatusBadRequest)
	e.get("/ServiceRequest?_offset=20000").must(t, http.StatusBadRequest)
	e.get("/ServiceRequest?identifier="+strings.TrimSuffix(strings.Repeat("x,", 50), ",")).must(t, http.StatusOK)
	if keys := e.keys(t, "{signpost*}:t:*"); len(keys) != 0 { // in any partition
		t.Errorf("scratch keys left behind: %v", keys)
	}
}

func TestTransactionUpdatingAReferralWithItsTask(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sr := e.post("/ServiceRequest", referral("UPD-1", "390893007")).must(t, http.StatusCreated).json(t)
	id := sr["id"].(string)
	existing := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+id), "match")[0]
	sr["priority"] = "urgent"
	b, _ := json.Marshal(sr)
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"fullUrl":"` + e.base + `/ServiceRequest/` + id + `","resource":` + string(b) + `,"request":{"method":"PUT","url":"ServiceRequest/` + id + `"}},
	  {"resource":{"resourceType":"Task","status":"requested","intent":"order","code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},"focus":{"reference":"ServiceRequest/` + id + `"}},"request":{"method":"POST","url":"Task"}}]}`
	res := e.post("", []byte(tx)).must(t, http.StatusOK)
	var out struct {
		Entry []struct{ Resource map[string]any }
	}
	_ = json.Unmarshal(res.body, &out)
	if len(out.Entry) != 2 || out.Entry[1].Resource["id"] != existing["id"] {
		t.Errorf("the Task entry should be answered with the existing Task: %s", res.body)
	}
	if n := total(t, e.get("/Task")); n != 1 {
		t.Errorf("%d Tasks", n)
	}
}
