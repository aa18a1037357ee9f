package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// serve runs over a Redis Cluster named by SIGNPOST_REDIS_CLUSTER, with
// every change acknowledged only once a replica has it: a referral is
// accepted, read back, and found by search, and /readyz is ready.
func TestServeOnRedisCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	cfg := writeFile(t, "signpost.yaml", testConfig+"redis_wait_replicas: 1\nredis_wait_timeout: 2s\n")
	s := startSignpost(t, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_CLUSTER": strings.Join(c.Addrs(), ",")}))

	res, err := http.Post(s.base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("CLUSTER-1", "390893007")))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create on the cluster: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	for _, path := range []string{"/readyz", strings.TrimPrefix(loc, "http://127.0.0.1:8080"), "/fhir/Task?focus=" + strings.TrimPrefix(strings.Split(loc, "/_history")[0], "http://127.0.0.1:8080/fhir/")} {
		res, err := http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, res.StatusCode, body)
		}
		if strings.HasPrefix(path, "/fhir/Task") && !strings.Contains(string(body), `"total":1`) {
			t.Errorf("the referral's Task is not found on the cluster: %s", body)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
}

// A Redis Cluster none of whose nodes answers at start is handled as one
// Redis is: serve runs, /readyz is not ready, requests get 503 with
// Retry-After, and the log says once, naming the nodes, what to do.
func TestRedisClusterUnreachableAtStartIsExplained(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "signpost.yaml", testConfig)
	s := startSignpost(t, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_CLUSTER": "127.0.0.1:1,127.0.0.1:2"}))
	res, err := http.Get(s.base + "/readyz")
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d with the cluster down", res.StatusCode)
	}
	for i := range 3 {
		res, err = http.Post(s.base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON(fmt.Sprintf("UC-%d", i), "390893007")))
		must(t, err)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("POST with the cluster down: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	_ = s.stop()
	var all strings.Builder
	for len(s.stderr.lines) > 0 {
		all.WriteString(<-s.stderr.lines)
	}
	out := all.String()
	if !strings.Contains(out, "127.0.0.1:1,127.0.0.1:2") || !strings.Contains(out, "SIGNPOST_REDIS_CLUSTER") {
		t.Errorf("the log does not name the nodes tried and what to do:\n%s", out)
	}
	if warnings := redisWarnings(t, out); warnings != 1 {
		t.Errorf("%d warnings about Redis for one outage, want 1:\n%s", warnings, out)
	}
}
