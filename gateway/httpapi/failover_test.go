//go:build unix

package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A primary of the Redis Cluster is killed (SIGKILL) while GP systems send
// referrals, with every change acknowledged only once a replica has it.
// Its replica is made to fall behind first (paused, as a hung machine), so
// the primary holds changes the replica has not: acknowledging those would
// lose them in the failover, which is what the test would catch.
// Each sender does what a GP system does with a 503: sends the same
// referral again after Retry-After. Every answer is a 201, a 200 for a
// repeat of what was stored, or a 503 with Retry-After — never another
// answer — and once the replica has taken over (and the old primary is
// back, as its replica) every acknowledged referral is there, once. A
// reader reading acknowledged referrals all along gets each, or a 503.
func TestFailoverLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	e := setup(t, onCluster)
	primary := e.cluster.PrimaryFor("{signpost}:ready")
	replica := e.cluster.ReplicaOf(primary)

	const senders = 6
	var (
		mu       sync.Mutex
		acked    = map[string]string{} // identifier -> id
		bad      []string
		answered atomic.Int64
		refused  atomic.Int64 // 503s
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for s := range senders {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				ident := fmt.Sprintf("FAILOVER-%d-%d", s, n)
				for {
					r := e.post("/ServiceRequest", referral(ident, "390893007"))
					if r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "" {
						refused.Add(1)
						time.Sleep(50 * time.Millisecond) // Retry-After, shortened for the test
						continue
					}
					var sr struct{ ID string }
					_ = json.Unmarshal(r.body, &sr)
					mu.Lock()
					if (r.status == http.StatusCreated || r.status == http.StatusOK) && sr.ID != "" {
						acked[ident] = sr.ID
					} else {
						bad = append(bad, fmt.Sprintf("%s: %d %s", ident, r.status, r.body))
					}
					mu.Unlock()
					answered.Add(1)
					break
				}
			}
		})
	}
	// A reader reads back what was acknowledged, all along: a 200, or a
	// 503 with Retry-After while the primary is away — never a 404.
	var reads, readRefused atomic.Int64
	wg.Go(func() {
		for !stop.Load() {
			mu.Lock()
			var id string
			for _, v := range acked {
				id = v
				break
			}
			mu.Unlock()
			if id == "" {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			r := e.get("/ServiceRequest/" + id)
			switch {
			case r.status == http.StatusOK:
				reads.Add(1)
			case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "":
				readRefused.Add(1)
				time.Sleep(50 * time.Millisecond)
			default:
				mu.Lock()
				bad = append(bad, fmt.Sprintf("GET %s: %d %s", id, r.status, r.body))
				mu.Unlock()
			}
		}
	})
	// Before the cluster and the server stop (cleanups run last first).
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	waitFor := func(what string, n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for answered.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d referrals answered in 30s", what, answered.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("before the failover", 30)
	// The replica stops taking changes; senders go on for a while; then the
	// primary dies, the replica comes back and takes over.
	replica.Pause()
	time.Sleep(1500 * time.Millisecond)
	primary.Kill()
	replica.Resume()
	killedAt := answered.Load()
	e.cluster.WaitPromoted(replica, 30*time.Second)
	// The old primary comes back as the new primary's replica, so changes
	// can be acknowledged again.
	primary.Restart()
	e.cluster.WaitServing(30 * time.Second)
	waitFor("after the failover", answered.Load()+30)
	stop.Store(true)
	wg.Wait()
	// Signpost's client learns a slot's new primary when it next meets it
	// (a redirection, or the lost node) or at its periodic reread. A store
	// that spreads referrals has a slot per partition, some perhaps not met
	// since the failover, so a search (which visits every partition) may
	// still be answered 503 with Retry-After once; reading back starts when
	// one is answered, as a GP system's retry would be.
	eventually(t, "a search answered after the failover", func() bool {
		return e.get("/ServiceRequest?_count=1").status == http.StatusOK
	})

	if len(bad) > 0 {
		t.Fatalf("%d answers neither acknowledged nor 503 with Retry-After, the first: %s", len(bad), bad[0])
	}
	t.Logf("%d referrals acknowledged, %d while the primary was down or after; %d answers 503; %d reads, %d answered 503", len(acked), int64(len(acked))-killedAt, refused.Load(), reads.Load(), readRefused.Load())
	ids := map[string]bool{}
	for ident, id := range acked {
		if ids[id] {
			t.Errorf("two identifiers acknowledged as the same referral %s", id)
		}
		ids[id] = true
		e.get("/ServiceRequest/"+id).must(t, http.StatusOK)
		if n := total(t, e.get("/ServiceRequest?identifier="+gpIdentSystem+"|"+ident)); n != 1 {
			t.Errorf("%s is stored %d times, want once", ident, n)
		}
	}
	if n := total(t, e.get("/ServiceRequest?_count=1")); n != len(acked) {
		t.Errorf("%d ServiceRequests stored, %d acknowledged", n, len(acked))
	}
	if n := total(t, e.get("/Task?_count=1")); n != len(acked) {
		t.Errorf("%d Tasks stored, %d referrals acknowledged", n, len(acked))
	}
}
