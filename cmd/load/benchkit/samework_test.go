package benchkit

import (
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// The load generator's referral makes 21 writes: 15 index entries (7 terms
// and the all-ids set for the ServiceRequest, 6 and the all-ids set for the
// Task), the two bodies, the two unique keys, the job and the audit record,
// in commit.lua's order. (gateway/httpapi's TestSameWorkFloorWritesWhatACommitWrites
// holds it to what Signpost's commit writes, on a real Redis.)
func TestSameWorkSetOfTheLoadReferral(t *testing.T) {
	body := NewBodies("t").Append(nil, 1)
	sr, err := models.UnmarshalServiceRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	ids := SameWorkIDs{ServiceRequest: "sr-1", Task: "task-1", Token: "tok", Now: time.UnixMilli(1_800_000_000_000)}
	ws := SameWorkSet(&sr, body, ids)
	var names []string
	for _, c := range ws.Commands {
		names = append(names, c[0].(string)+" "+strings.TrimPrefix(c[1].(string), sameNS+":"))
	}
	got := strings.Join(names, "\n")
	for _, w := range []string{
		"zadd i:ServiceRequest:status=active",
		"zadd i:ServiceRequest:identifier=" + IdentSystem + "|PERF-t-",
		"zadd i:ServiceRequest:subject:identifier=https://fhir.nhs.uk/Id/nhs-number|" + NHSNumber,
		"zadd i:ServiceRequest:requester:identifier=https://fhir.nhs.uk/Id/ods-organization-code|" + PracticeODS,
		"zadd i:ServiceRequest:code=http://snomed.info/sct|" + ReferralCode,
		"zadd i:ServiceRequest:_client=practice-a",
		"zadd i:ServiceRequest:_provider=leeds-walking",
		"zadd a:ServiceRequest",
		"hset r:ServiceRequest:sr-1",
		"zadd i:Task:status=requested",
		"zadd i:Task:focus=ServiceRequest/sr-1",
		"zadd i:Task:owner=Organization/leeds-walking",
		"zadd i:Task:_client=practice-a",
		"zadd a:Task",
		"hset r:Task:task-1",
		"set u:referral-task|sr-1",
		"xadd q:delivery",
		"xadd audit",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("no %q in\n%s", w, got)
		}
	}
	count := map[string]int{}
	for _, c := range ws.Commands {
		count[c[0].(string)]++
	}
	if len(ws.Commands) != 21 || count["zadd"] != 15 || count["hset"] != 2 || count["set"] != 2 || count["xadd"] != 2 {
		t.Errorf("%d commands %v, want 21: 15 zadd, 2 hset, 2 set, 2 xadd", len(ws.Commands), count)
	}
	if !strings.HasPrefix(string(ws.Body), `{"id":"sr-1","resourceType":"ServiceRequest"`) {
		t.Errorf("stored body starts %.60s", ws.Body)
	}
	for _, c := range ws.Commands {
		if c[0] == "hset" && strings.Contains(c[1].(string), ":r:Task:") {
			// v 1 c token o owner x terms 1 body t1 ms
			if task := c[11].([]byte); len(task) < 1000 || len(task) > 1400 {
				t.Errorf("Task body of %d bytes; Signpost's is about 1,200", len(task))
			}
		}
	}
}
