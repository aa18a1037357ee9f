package main

import (
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
