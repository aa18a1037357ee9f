package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/webhook"
)

// binary is signpost built once for the tests that run it as a process.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func signpostBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "signpost-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "signpost")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// gatewayProcess is signpost serve running as a separate process, so a test
// can kill it with SIGKILL as a crash would.
type gatewayProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	env  []string
}

func startGateway(t *testing.T, redisURL string) *gatewayProcess {
	t.Helper()
	return startGatewayWith(t, redisURL, testConfig)
}

func startGatewayWith(t *testing.T, redisURL, config string) *gatewayProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	cfg := writeFile(t, "signpost.yaml", config)
	g := &gatewayProcess{t: t, addr: addr, env: append(os.Environ(),
		"SIGNPOST_CONFIG="+cfg, "SIGNPOST_LISTEN="+addr, "SIGNPOST_PUBLIC_URL=http://"+addr, "SIGNPOST_REDIS_URL="+redisURL)}
	g.start()
	t.Cleanup(g.kill)
	return g
}

func (g *gatewayProcess) start() {
	g.t.Helper()
	g.cmd = exec.Command(signpostBinary(g.t), "serve")
	g.cmd.Env = g.env
	stdout, err := g.cmd.StdoutPipe()
	must(g.t, err)
	g.cmd.Stderr = io.Discard
	must(g.t, g.cmd.Start())
	lines := make(chan string, 10)
	go scanLines(stdout, lines)
	waitListening(g.t, lines)
}

func (g *gatewayProcess) kill() {
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Kill()
		_ = g.cmd.Wait()
		g.cmd = nil
	}
}

// burst sends referrals with the given identifiers from 16 workers, retrying
// each until it is acknowledged (2xx) or the deadline passes, as a GP
// system's sender would. onAck is called after each first acknowledgement.
func burst(t *testing.T, base func() string, idents []string, onAck func(n int64)) map[string]string {
	t.Helper()
	var acked atomic.Int64
	var mu sync.Mutex
	ids := map[string]string{}
	work := make(chan string)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ident := range work {
				for time.Now().Before(deadline) {
					res, err := client.Post(base()+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON(ident, "390893007")))
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					var sr struct{ ID string }
					_ = json.NewDecoder(res.Body).Decode(&sr)
					res.Body.Close()
					if res.StatusCode == http.StatusCreated || res.StatusCode == http.StatusOK {
						mu.Lock()
						ids[ident] = sr.ID
						mu.Unlock()
						onAck(acked.Add(1))
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for _, id := range idents {
		work <- id
	}
	close(work)
	wg.Wait()
	return ids
}

func countAll(t *testing.T, base, query string) int {
	t.Helper()
	res, err := http.Get(base + "/fhir/" + query)
	must(t, err)
	defer res.Body.Close()
	var b struct{ Total int }
	must(t, json.NewDecoder(res.Body).Decode(&b))
	return b.Total
}

// checkExactlyOnce verifies every identifier is one referral with one Task,
// that acknowledged ids were kept, and — once the workers have drained the
// delivery queue — that each Task was delivered exactly once: version 1 as
// created, version 2 as delivered; a duplicated job would make a version 3.
func checkExactlyOnce(t *testing.T, base string, r *redistest.Server, idents []string, acked map[string]string) {
	t.Helper()
	if got := countAll(t, base, "ServiceRequest?_count=0"); got != len(idents) {
		t.Errorf("%d ServiceRequests, want %d", got, len(idents))
	}
	if got := countAll(t, base, "Task?_count=0"); got != len(idents) {
		t.Errorf("%d Tasks, want %d", got, len(idents))
	}
	for ident, id := range acked {
		res, err := http.Get(base + "/fhir/ServiceRequest/" + id)
		must(t, err)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("acknowledged referral %s (%s) is gone: %d", ident, id, res.StatusCode)
		}
	}
	ctx := context.Background()
	// Each stored referral has exactly one 201 create record in the audit
	// trail, whatever the crash interrupted: it was committed with the
	// referral, in the same step.
	entries, err := r.Client().XRange(ctx, "{signpost}:audit", "-", "+").Result()
	must(t, err)
	created := map[string]int{}
	for _, e := range entries {
		if e.Values["i"] == "create" && e.Values["s"] == "201" {
			w, _ := e.Values["w"].(string)
			created[w]++
		}
	}
	for ident, id := range acked {
		if n := created["ServiceRequest/"+id]; n != 1 {
			t.Errorf("referral %s (%s): %d create records in the audit trail, want 1", ident, id, n)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Read both in one transaction: a job moving from the delayed set
		// back to the stream between two reads would look drained.
		pipe := r.Client().TxPipeline()
		q, d := pipe.XLen(ctx, "{signpost}:q:delivery"), pipe.ZCard(ctx, "{signpost}:d:delivery")
		_, _ = pipe.Exec(ctx)
		queued, delayed := q.Val(), d.Val()
		if queued == 0 && delayed == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not drained: %d queued, %d delayed", queued, delayed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := http.Get(base + "/fhir/Task?_count=500")
	must(t, err)
	defer res.Body.Close()
	var b struct {
		Entry []struct {
			Resource struct {
				ID   string
				Meta struct{ VersionID string }
			}
		}
	}
	must(t, json.NewDecoder(res.Body).Decode(&b))
	for _, e := range b.Entry {
		if e.Resource.Meta.VersionID != "2" {
			t.Errorf("Task %s is at version %s: want 2 (created, then delivered once)", e.Resource.ID, e.Resource.Meta.VersionID)
		}
	}
}

func TestGatewayKilledMidBurstLosesAndDuplicatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills processes")
	}
	t.Parallel()
	r := redistest.Start(t)
	g := startGateway(t, r.URL())
	base := "http://" + g.addr
	idents := make([]string, 200)
	for i := range idents {
		idents[i] = "K-" + strconv.Itoa(i)
	}
	var once sync.Once
	var mu sync.RWMutex
	baseFn := func() string { mu.RLock(); defer mu.RUnlock(); return base }
	acked := burst(t, baseFn, idents, func(n int64) {
		if n == 60 {
			once.Do(func() {
				// Crash the gateway with requests in flight, then bring it back.
				go func() { g.kill(); g.start() }()
			})
		}
	})
	if len(acked) != len(idents) {
		t.Fatalf("only %d of %d referrals acknowledged", len(acked), len(idents))
	}
	// Senders re-send everything once more (they cannot know what landed).
	again := burst(t, baseFn, idents, func(int64) {})
	for ident, id := range acked {
		if again[ident] != id {
			t.Errorf("%s: re-sent referral got id %s, first %s", ident, again[ident], id)
		}
	}
	checkExactlyOnce(t, base, r, idents, acked)
}

func TestRedisKilledMidBurstLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	t.Parallel()
	r := redistest.Start(t)
	g := startGateway(t, r.URL())
	base := "http://" + g.addr
	idents := make([]string, 200)
	for i := range idents {
		idents[i] = "R-" + strconv.Itoa(i)
	}
	var once sync.Once
	acked := burst(t, func() string { return base }, idents, func(n int64) {
		if n == 60 {
			once.Do(func() {
				// Redis dies and comes back from its append-only file; the
				// gateway answers 503 meanwhile and is not restarted.
				go r.Restart()
			})
		}
	})
	if len(acked) != len(idents) {
		t.Fatalf("only %d of %d referrals acknowledged", len(acked), len(idents))
	}
	checkExactlyOnce(t, base, r, idents, acked)
}

// The gateway is killed (SIGKILL) while it delivers referrals to a webhook
// provider, then started again: every referral reaches the provider, and any
// delivered twice carries the same webhook-id both times, so the provider
// can recognise the repeat.
func TestGatewayKilledMidDeliveryDeliversEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills processes")
	}
	t.Parallel()
	r := redistest.Start(t)
	var mu sync.Mutex
	seen := map[string]int{}
	var hits atomic.Int64
	secret := "whsec_" + "c3ludGhldGljLXNlY3JldC1mb3ItdGhlLWNyYXNoLXRlc3Q="
	key, _ := webhook.ParseSecret(secret)
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			// The gateway was killed while sending: the body is cut short
			// (its Content-Length unmet), nothing was delivered, and it is
			// sent again whole after the restart.
			return
		}
		if err := webhook.Verify(req.Header, body, [][]byte{key}, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("badly signed delivery: %v", err)
		}
		hits.Add(1)
		time.Sleep(5 * time.Millisecond) // deliveries in flight when the kill comes
		mu.Lock()
		seen[req.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(stub.Close)
	cfg := strings.NewReplacer("delivery: { kind: portal }\n  - id: link", "delivery: { kind: webhook, url: \""+stub.URL+"\", secret: \""+secret+"\" }\n  - id: link").Replace(testConfig) +
		"outbound_allow: [\"127.0.0.0/8\"]\ndelivery_retry: [\"100ms\", \"200ms\", \"400ms\", \"800ms\"]\n"
	g := startGatewayWith(t, r.URL(), cfg)
	base := "http://" + g.addr
	idents := make([]string, 100)
	for i := range idents {
		idents[i] = "W-" + strconv.Itoa(i)
	}
	acked := burst(t, func() string { return base }, idents, func(int64) {})
	if len(acked) != len(idents) {
		t.Fatalf("%d of %d acknowledged", len(acked), len(idents))
	}
	deadline := time.Now().Add(20 * time.Second)
	for hits.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	g.kill() // mid-delivery
	g.start()
	checkExactlyOnce(t, base, r, idents, acked)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(idents) {
		t.Errorf("the provider received %d distinct deliveries, want %d", len(seen), len(idents))
	}
	dups := 0
	for id, n := range seen {
		if !strings.HasPrefix(id, "msg_") || !strings.HasSuffix(id, "_referral") {
			t.Errorf("webhook-id %q", id)
		}
		dups += n - 1
	}
	t.Logf("%d deliveries, %d repeated after the kill (same webhook-id)", hits.Load(), dups)
}
