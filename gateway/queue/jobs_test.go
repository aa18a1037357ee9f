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
	for _, j := range NotifyJobs(task, gateway.TaskAccepted) {
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
		j := queued(NotifyJobs(task, gateway.TaskAccepted)[0])
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
