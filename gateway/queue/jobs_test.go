package queue

import (
	"github.com/signpost-health/signpost/gateway"

	"strings"
	"testing"
	"time"
)

// queued is a job as a worker reads it back from its queue.
func queued(j gateway.Job) gateway.QueuedJob {
	f := make(map[string]string, len(j.Fields)/2)
	for i := 0; i+1 < len(j.Fields); i += 2 {
		f[j.Fields[i]] = j.Fields[i+1]
	}
	return gateway.QueuedJob{Queue: j.Queue, ID: "1-0", Fields: f}
}

func TestJobsReadBackWhatWasQueued(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 10, 0, 0, 123e6, time.UTC)
	task := &gateway.Resource{Type: gateway.TypeTask, ID: "task-1", Version: 3, LastUpdated: at, Owner: "practice-a"}
	for _, j := range NotifyJobs(gateway.NewCore(gateway.Options{}), task, gateway.TaskRequested, gateway.TaskAccepted) {
		if JobEvent(queued(j)) == EventBarsResponse {
			continue // read by its own codec, below
		}
		got, err := ReadTaskChanged(queued(j))
		want := TaskChanged{TaskID: "task-1", Version: 3, Status: gateway.TaskAccepted, Client: "practice-a", At: at}
		if err != nil || got != want {
			t.Errorf("%s: read %+v, %v; want %+v", j.Queue, got, err, want)
		}
		if lane := JobLane(queued(j)); lane != "practice-a" {
			t.Errorf("%s: lane %q, want the client", j.Queue, lane)
		}
	}
	hs, err := ReadHandshake(queued(Handshake{SubscriptionID: "sub-1", Client: "practice-a", Version: 2}.Job()))
	if err != nil || hs != (Handshake{SubscriptionID: "sub-1", Client: "practice-a", Version: 2}) {
		t.Errorf("handshake read %+v, %v", hs, err)
	}
	if id, err := ReadSend(queued(SendJob("sub-1", "practice-a"))); err != nil || id != "sub-1" {
		t.Errorf("send read %q, %v", id, err)
	}
	d, err := ReadDelivery(queued(DeliveryJob(EventReferral, "task-1", "sr-1", &gateway.Routing{Category: "loneliness", Provider: &gateway.Provider{ID: "walking"}}, at)))
	if err != nil || d.TaskID != "task-1" || d.ServiceRequestID != "sr-1" || d.ProviderID != "walking" || d.Attempt != 0 || d.ID != "msg_task-1_referral" {
		t.Errorf("delivery read %+v, %v", d, err)
	}
	dead := ReadDeadLetter(queued(d.DeadLetterJob("410 Gone", at)))
	if dead.Reason != "410 Gone" || !dead.FailedAt.Equal(at.Truncate(time.Millisecond)) || dead.Provider != "walking" || dead.TaskID != "task-1" {
		t.Errorf("dead letter read %+v", dead)
	}
	if again := dead.Replayed(); again["attempt"] != "0" || again["reason"] != "" || again["failed_at"] != "" || again["task"] != "task-1" {
		t.Errorf("replayed fields %v", again)
	}
}

// A Task change queues a write-back only for a client that takes
// write-back; its subscriptions' job and a BaRS answer are queued for
// every client, whose subscriptions and BaRS referrals are not known here.
func TestNotifyJobsWriteBackOnlyForClientsThatTakeIt(t *testing.T) {
	t.Parallel()
	core := gateway.NewCore(gateway.Options{WriteBackClients: []string{"practice-a"}})
	queues := func(owner string) []string {
		task := &gateway.Resource{Type: gateway.TypeTask, ID: "task-1", Version: 2, Owner: owner}
		var out []string
		for _, j := range NotifyJobs(core, task, gateway.TaskRequested, gateway.TaskAccepted) {
			out = append(out, j.Queue+" "+JobEvent(queued(j)))
		}
		return out
	}
	if got, want := strings.Join(queues("practice-a"), ", "), "notify task-changed, subscription task-changed, notify bars-response"; got != want {
		t.Errorf("client with write-back: jobs %s, want %s", got, want)
	}
	if got, want := strings.Join(queues("practice-b"), ", "), "subscription task-changed, notify bars-response"; got != want {
		t.Errorf("client without write-back: jobs %s, want %s", got, want)
	}
}

// A field that cannot be read is an error, never a silent zero: a job
// that says attempt "x" or version "-1" is a bug or tampering.
func TestJobsRefuseUnreadableFields(t *testing.T) {
	t.Parallel()
	task := &gateway.Resource{Type: gateway.TypeTask, ID: "task-1", Version: 3, LastUpdated: time.Now(), Owner: "practice-a"}
	for name, spoil := range map[string]func(map[string]string){
		"version not a number": func(f map[string]string) { f["version"] = "three" },
		"negative version":     func(f map[string]string) { f["version"] = "-1" },
		"time not a number":    func(f map[string]string) { f["at"] = "yesterday" },
		"no client":            func(f map[string]string) { delete(f, "client") },
		"bad task id":          func(f map[string]string) { f["task"] = "../x" },
		"another event":        func(f map[string]string) { f["event"] = EventHandshake },
	} {
		j := queued(NotifyJobs(gateway.NewCore(gateway.Options{}), task, gateway.TaskRequested, gateway.TaskAccepted)[0])
		spoil(j.Fields)
		if _, err := ReadTaskChanged(j); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	j := queued(DeliveryJob(EventReferral, "task-1", "sr-1", &gateway.Routing{Provider: &gateway.Provider{ID: "walking"}}, time.Now()))
	j.Fields["attempt"] = "x"
	if _, err := ReadDelivery(j); err == nil || !strings.Contains(err.Error(), "attempt") {
		t.Errorf("a delivery with attempt x: %v, want an error naming attempt", err)
	}
	if _, err := ReadSend(queued(Handshake{SubscriptionID: "sub-1", Client: "c"}.Job())); err == nil {
		t.Error("a handshake read as a send job")
	}
}

// TestBarsResponseJob: an answered status queues the BaRS response with the
// Task change, read back as queued, with an id that is the same for every
// attempt at one version and differs between versions.
func TestBarsResponseJob(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	task := &gateway.Resource{Type: gateway.TypeTask, ID: "task-1", Version: 3, LastUpdated: at, Owner: "practice-a"}
	var found []gateway.QueuedJob
	for _, j := range NotifyJobs(gateway.NewCore(gateway.Options{}), task, gateway.TaskRequested, gateway.TaskRejected) {
		if JobEvent(queued(j)) == EventBarsResponse {
			found = append(found, queued(j))
		}
	}
	if len(found) != 1 || found[0].Queue != gateway.QueueNotify {
		t.Fatalf("bars-response jobs = %+v, want one on the notify queue", found)
	}
	got, err := ReadBarsResponse(found[0])
	want := TaskChanged{TaskID: "task-1", Version: 3, Status: gateway.TaskRejected, Client: "practice-a", At: at}
	if err != nil || got.TaskChanged != want || got.Attempt != 0 {
		t.Fatalf("read %+v, %v; want %+v", got, err, want)
	}
	if lane := JobLane(found[0]); lane != "practice-a" {
		t.Errorf("lane %q, want the client", lane)
	}
	next := found[0]
	next.Fields = NextAttempt(found[0])
	again, err := ReadBarsResponse(next)
	if err != nil || again.Attempt != 1 || again.MessageID() != got.MessageID() {
		t.Errorf("second attempt %+v (id %s), %v; want attempt 1 and id %s", again, again.MessageID(), err, got.MessageID())
	}
	other := got
	other.Version = 4
	if other.MessageID() == got.MessageID() {
		t.Error("two versions share a response id")
	}
	for _, c := range [][2]gateway.TaskStatus{{gateway.TaskAccepted, gateway.TaskInProgress}, {gateway.TaskInProgress, gateway.TaskOnHold},
		{gateway.TaskAccepted, gateway.TaskAccepted}} { // the last: a note or business status, the status kept
		for _, j := range NotifyJobs(gateway.NewCore(gateway.Options{}), task, c[0], c[1]) {
			if JobEvent(queued(j)) == EventBarsResponse {
				t.Errorf("%s -> %s queued a BaRS response", c[0], c[1])
			}
		}
	}
	if _, err := ReadBarsResponse(queued(NotifyJobs(gateway.NewCore(gateway.Options{}), task, gateway.TaskRequested, gateway.TaskAccepted)[0])); err == nil {
		t.Error("a task-changed job read as a bars-response")
	}
}
