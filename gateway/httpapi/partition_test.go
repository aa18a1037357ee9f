package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// partitionedID is an id a store that spreads referrals makes: the
// partition's prefix, then a UUID.
var partitionedID = regexp.MustCompile(`^p(0[0-9]|1[0-5])-[0-9a-f-]{36}$`)

// On a store that spreads referrals, a new referral's resources carry one
// partition in their ids (its Task and the Provenance of a change made
// beside its ServiceRequest), a repeat is answered with the referral held
// (its idempotency key found where the first put it), and reads, vreads
// and updates by id reach it.
func TestSpreadReferralsCarryTheirPartition(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		e := setup(t, on, spread)
		sr := e.post("/ServiceRequest", referral("R-PART-1", "390893007")).must(t, http.StatusCreated).json(t)
		id := sr["id"].(string)
		if !partitionedID.MatchString(id) {
			t.Fatalf("a spread store's referral has id %q", id)
		}
		place := id[:4]
		again := e.post("/ServiceRequest", referral("R-PART-1", "390893007")).must(t, http.StatusOK).json(t)
		if again["id"] != id {
			t.Errorf("the repeat was answered with %v, not %s", again["id"], id)
		}
		taskRef, err := e.store.Lookup(context.Background(), gateway.ReferralTaskKey(id))
		if err != nil || !strings.HasPrefix(taskRef, "Task/"+place) {
			t.Fatalf("the referral's Task %q (%v) is not in its partition %s", taskRef, err, place)
		}
		taskID := strings.TrimPrefix(taskRef, "Task/")
		walking := acceptAsWalking(t, e, taskID)
		if got := e.get("/Task/"+taskID+"/_history/2", walking...).must(t, http.StatusOK).json(t); got["status"] != "accepted" {
			t.Errorf("vread of the updated Task: %v", got["status"])
		}
		e.get("/Task/"+taskID+"/_history/1", walking...).must(t, http.StatusOK)
		e.get("/ServiceRequest/"+id, as("practice-a")...).must(t, http.StatusOK)
		// Another referral, by its own identifier, is placed by it.
		other := e.post("/ServiceRequest", referral("R-PART-2", "390893007")).must(t, http.StatusCreated).json(t)
		if !partitionedID.MatchString(other["id"].(string)) {
			t.Errorf("the second referral's id %q", other["id"])
		}
	})
}

// Referrals made before the store spread keep their ids and their place:
// once it spreads they are still read, updated and recognised when sent
// again (answered with the referral held, not made twice).
func TestReferralsMadeBeforeSpreadingStillWork(t *testing.T) {
	t.Parallel()
	e := setup(t, unspread)
	sr := e.post("/ServiceRequest", referral("R-LEGACY", "390893007")).must(t, http.StatusCreated).json(t)
	id := sr["id"].(string)
	if partitionedID.MatchString(id) {
		t.Fatalf("a store that does not spread made a partitioned id %q", id)
	}
	taskRef, err := e.store.Lookup(context.Background(), gateway.ReferralTaskKey(id))
	if err != nil || taskRef == "" {
		t.Fatalf("the referral's Task: %q %v", taskRef, err)
	}
	e.store.SpreadReferrals() // as a deployment that starts spreading
	again := e.post("/ServiceRequest", referral("R-LEGACY", "390893007")).must(t, http.StatusOK).json(t)
	if again["id"] != id {
		t.Errorf("the repeat of a referral made before spreading was answered with %v, not %s", again["id"], id)
	}
	taskID := strings.TrimPrefix(taskRef, "Task/")
	walking := acceptAsWalking(t, e, taskID)
	e.get("/Task/"+taskID+"/_history/2", walking...).must(t, http.StatusOK)
	e.get("/ServiceRequest/"+id, as("practice-a")...).must(t, http.StatusOK)
}

// Paging keeps its guarantees when the store spreads referrals over
// partitions: a search visits every partition and merges them, and Tasks
// changed between pages are still returned exactly once.
func TestPagingAcrossPartitionsNeitherLosesNorRepeats(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		testPagingNeitherLosesNorRepeatsWhileTasksChange(t, func(o *options) { on(o); spread(o) })
	})
}

// Each GP system sees its own referrals only, in every partition: its
// searches page through exactly its own, and another's referral read by
// id is not found.
func TestSpreadReferralsStayWithTheirClient(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		e := setup(t, on, spread)
		own := map[string]map[string]bool{"practice-a": {}, "practice-b": {}}
		for i := range 24 {
			client := []string{"practice-a", "practice-b"}[i%2]
			body := referral("R-ISO-"+strconv.Itoa(i), "390893007")
			body = []byte(strings.Replace(string(body), practiceODS, testCallers[client].Organization.Value, 1))
			sr := e.post("/ServiceRequest", body, as(client)...).must(t, http.StatusCreated).json(t)
			own[client][sr["id"].(string)] = true
		}
		places := map[string]bool{}
		for client, ids := range own {
			seen := map[string]int{}
			next := "/ServiceRequest?_count=5"
			for page := 0; next != ""; page++ {
				res := e.get(next, as(client)...).must(t, http.StatusOK)
				for _, m := range bundleEntries(t, res, "match") {
					seen[m["id"].(string)]++
				}
				next = nextLink(t, res)
				if page > 5 {
					t.Fatal("paging does not end")
				}
			}
			for id, n := range seen {
				if !ids[id] || n != 1 {
					t.Errorf("%s's search returned %s %d times (its own: %v)", client, id, n, ids[id])
				}
			}
			if len(seen) != len(ids) {
				t.Errorf("%s's search returned %d of its %d referrals", client, len(seen), len(ids))
			}
			for id := range ids {
				places[id[:4]] = true
				other := map[string]string{"practice-a": "practice-b", "practice-b": "practice-a"}[client]
				e.get("/ServiceRequest/"+id, as(other)...).must(t, http.StatusNotFound)
			}
		}
		if len(places) < 4 {
			t.Errorf("24 referrals fell in %d partitions", len(places))
		}
	})
}

// acceptAsWalking has the walking provider accept a referral's Task (its
// version 1, read and PUT back accepted), and returns its caller headers.
func acceptAsWalking(t *testing.T, e *env, taskID string) []string {
	t.Helper()
	walking := as("walking")
	task := e.get("/Task/"+taskID, walking...).must(t, http.StatusOK).json(t)
	task["status"] = "accepted"
	b, _ := json.Marshal(task)
	e.put("/Task/"+taskID, b, with(walking, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
	return walking
}

// testPatient is a GP system's Patient with its own id, and a referral for
// it, by reference, with business identifier ident.
func testPatient(id string) []byte {
	return []byte(`{"resourceType":"Patient","id":"` + id + `","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `"}],"name":[{"text":"Ann Testpatient"}]}`)
}

func referralFor(ident, patientID string) []byte {
	return []byte(strings.Replace(string(referral(ident, "390893007")), `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`,
		`"subject":{"reference":"Patient/`+patientID+`"}`, 1))
}

// patientWithReferral is a transaction writing a Patient (PUT, the id its
// GP system chose) and a referral for it.
func patientWithReferral(patientID, ident string) []byte {
	return transaction(`{"resource":`+string(testPatient(patientID))+`,"request":{"method":"PUT","url":"Patient/`+patientID+`"}}`,
		entry("urn:uuid:sr", "ServiceRequest", string(referralFor(ident, patientID))))
}

// transactionID is the id of the resource of type typ a transaction's
// response names.
func transactionID(t *testing.T, r *response, typ string) string {
	t.Helper()
	for _, en := range r.json(t)["entry"].([]any) {
		loc := en.(map[string]any)["response"].(map[string]any)["location"].(string)
		if rest, ok := strings.CutPrefix(loc, typ+"/"); ok {
			return strings.Split(rest, "/")[0]
		}
	}
	t.Fatalf("no %s in %s", typ, r.body)
	return ""
}

// On a store that spreads referrals, a Patient whose id its GP system
// chose is placed by its key (owner and id), and a referral for it beside
// it: a transaction writing both is one partition's, and the referral sent
// again alone is answered as the repeat it is, not made twice.
func TestSpreadPatientsAndTheirReferralsArePlacedTogether(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		e := setup(t, on, spread)
		a := as("practice-a")
		place, err := e.store.PlacePatient(context.Background(), gateway.PatientKey("practice-a", "pat-1"))
		if err != nil || place == "" {
			t.Fatalf("the Patient's place: %q %v", place, err)
		}
		// A referral first, so the store has looked at legacy and found no
		// referral there (heldInLegacy then never looks again).
		e.post("/ServiceRequest", referral("R-FIRST", "390893007"), a...).must(t, http.StatusCreated)
		r := e.post("", patientWithReferral("pat-1", "R-PAT-1"), a...).must(t, http.StatusOK)
		srID := transactionID(t, r, "ServiceRequest")
		if !strings.HasPrefix(srID, place) || !partitionedID.MatchString(srID) {
			t.Errorf("the referral written with its Patient has id %s, want it beside the Patient (%s)", srID, place)
		}
		again := e.post("/ServiceRequest", referralFor("R-PAT-1", "pat-1"), a...).must(t, http.StatusOK).json(t)
		if again["id"] != srID {
			t.Errorf("the referral sent again alone was answered with %v, not %s", again["id"], srID)
		}
		// Sent again naming another Patient, it is placed beside that one,
		// and still found to be a repeat (that differs: refused).
		e.put("/Patient/pat-2", testPatient("pat-2"), a...).must(t, http.StatusCreated)
		e.post("/ServiceRequest", referralFor("R-PAT-1", "pat-2"), a...).must(t, http.StatusConflict)
		if n := total(t, e.get("/ServiceRequest?identifier="+gpIdentSystem+"|R-PAT-1", a...)); n != 1 {
			t.Errorf("%d referrals with its identifier, want 1", n)
		}
		e.get("/Patient/pat-1", a...).must(t, http.StatusOK)
		e.put("/Patient/pat-1", testPatient("pat-1"), with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
		e.get("/Patient/pat-1/_history/1", a...).must(t, http.StatusOK)
		// Another practice's Patient of the same id is another Patient.
		e.put("/Patient/pat-1", testPatient("pat-1"), as("practice-b")...).must(t, http.StatusCreated)
		e.get("/Patient/pat-1/_history/2", as("practice-b")...).must(t, http.StatusNotFound)
	})
}

// Patients stored before the store spread stay where they were: read,
// updated and written with a new referral in one transaction as before
// (the referral then beside them, in legacy).
func TestPatientsMadeBeforeSpreadingStillWork(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		e := setup(t, on, unspread)
		a := as("practice-a")
		e.put("/Patient/old", testPatient("old"), a...).must(t, http.StatusCreated)
		e.store.SpreadReferrals() // as a deployment that starts spreading
		e.get("/Patient/old", a...).must(t, http.StatusOK)
		e.put("/Patient/old", testPatient("old"), with(a, "If-Match", `W/"1"`)...).must(t, http.StatusOK)
		e.get("/Patient/old/_history/1", a...).must(t, http.StatusOK)
		r := e.post("", patientWithReferral("old", "R-OLD-1"), a...).must(t, http.StatusOK)
		srID := transactionID(t, r, "ServiceRequest")
		if partitionedID.MatchString(srID) {
			t.Errorf("a referral written with a Patient stored before spreading has id %s, want it beside the Patient, in legacy", srID)
		}
		e.get("/ServiceRequest/"+srID, a...).must(t, http.StatusOK)
		// A new one goes to its place.
		e.put("/Patient/new", testPatient("new"), a...).must(t, http.StatusCreated)
		e.get("/Patient/new", a...).must(t, http.StatusOK)
	})
}

// A deployment moving from one Redis to a cluster copies its keys across
// with redis-cli (deploy/README.md, "Moving one Redis to a cluster"): every
// key of one Redis is under the one `{signpost}` tag, so all of them land
// in one slot, the legacy partition, and keep working there while new
// referrals spread. The referral, its Task, its GP system's Patient and the
// delivery still queued for it are all found, changed and recognised.
func TestMovingOneRedisToAClusterKeepsEverything(t *testing.T) {
	t.Parallel()
	one := setup(t, unspread, onOneRedis)
	one.put("/Patient/gp-pat-move", testPatient("gp-pat-move"), as("practice-a")...).must(t, http.StatusCreated)
	sr := one.post("/ServiceRequest", referral("R-MOVE-1", "390893007")).must(t, http.StatusCreated).json(t)
	id := sr["id"].(string)
	taskRef, err := one.store.Lookup(context.Background(), gateway.ReferralTaskKey(id))
	if err != nil || taskRef == "" {
		t.Fatalf("the referral's Task: %q %v", taskRef, err)
	}
	taskID := strings.TrimPrefix(taskRef, "Task/")

	c := redistest.StartCluster(t)
	if out, err := exec.Command("redis-cli", "--cluster", "import", c.Addrs()[0], "--cluster-from", one.redis.Addr, "--cluster-copy").CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster import: %v\n%s", err, out)
	}
	moved := setup(t, onto(c), spread)

	moved.get("/ServiceRequest/"+id, as("practice-a")...).must(t, http.StatusOK)
	if again := moved.post("/ServiceRequest", referral("R-MOVE-1", "390893007")).must(t, http.StatusOK).json(t); again["id"] != id {
		t.Errorf("the repeat of a referral made on one Redis was answered with %v, not %s", again["id"], id)
	}
	found := bundleEntries(t, moved.get("/ServiceRequest?identifier="+gpIdentSystem+"|R-MOVE-1", as("practice-a")...).must(t, http.StatusOK), "match")
	if len(found) != 1 || found[0]["id"] != id {
		t.Errorf("a search by its identifier found %v, want the referral %s", found, id)
	}
	walking := acceptAsWalking(t, moved, taskID)
	moved.get("/Task/"+taskID+"/_history/2", walking...).must(t, http.StatusOK)
	patient := moved.get("/Patient/gp-pat-move", as("practice-a")...).must(t, http.StatusOK).json(t)
	patient["name"] = []map[string]any{{"text": "Ann Moved"}}
	b, _ := json.Marshal(patient)
	moved.put("/Patient/gp-pat-move", b, with(as("practice-a"), "If-Match", `W/"1"`)...).must(t, http.StatusOK)

	// The delivery queued on one Redis is read by the cluster's workers.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jobs, err := moved.store.Queues(gateway.QueueDelivery).Read(ctx, "moved-worker", 10, 2*time.Second)
	if err != nil || len(jobs) != 1 || queue.JobTask(jobs[0]) != taskID {
		t.Errorf("the delivery queued before the move: %d jobs read (%v), want the one for Task %s", len(jobs), err, taskID)
	}
	// New referrals spread.
	if other := moved.post("/ServiceRequest", referral("R-MOVE-2", "390893007")).must(t, http.StatusCreated).json(t); !partitionedID.MatchString(other["id"].(string)) {
		t.Errorf("a new referral on the cluster has id %q, not a partition's", other["id"])
	}
}
