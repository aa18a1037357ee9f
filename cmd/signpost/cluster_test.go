package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/config"
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
	// A cluster spreads referrals over the store's partitions (once
	// config.SpreadOnRedisCluster is on): the id carries its partition.
	if id := referralID(loc); partitionedID.MatchString(id) != config.SpreadOnRedisCluster {
		t.Errorf("a referral made on a Redis Cluster has id %q; spreading switched on: %v", id, config.SpreadOnRedisCluster)
	}
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
	// serve's workers read the referral's partition: its delivery (to the
	// portal) is recorded on its Task.
	taskSearch := s.base + "/fhir/Task?focus=ServiceRequest/" + referralID(loc)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := http.Get(taskSearch)
		must(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(body), "delivered to Walking for Health") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery was not recorded on the referral's Task: %s", body)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
}

// partitionedID is the id of a resource a spreading store made: its
// partition's prefix, then a UUID.
var partitionedID = regexp.MustCompile(`^p(0[0-9]|1[0-5])-[0-9a-f-]{36}$`)

// referralID is the id in a Location (…/ServiceRequest/{id}/_history/1).
func referralID(location string) string {
	_, after, _ := strings.Cut(location, "/ServiceRequest/")
	id, _, _ := strings.Cut(after, "/")
	return id
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

// serve runs over a Redis Cluster that asks for a password and speaks TLS
// only, as a managed one does: with SIGNPOST_REDIS_PASSWORD, redis_tls and
// the cluster's CA in redis_tls_ca, a referral is accepted and read back;
// without the password /readyz is not ready and the log says which
// variable to set, never showing a password.
func TestServeOnRedisClusterWithPasswordAndTLS(t *testing.T) {
	t.Parallel()
	const password = "synthetic-cluster-pass"
	c := redistest.StartCluster(t, redistest.ClusterPassword(password), redistest.ClusterTLS())
	cfg := writeFile(t, "signpost.yaml", testConfig+"redis_tls: true\nredis_tls_ca: "+c.CAFile+"\n")
	nodes := strings.Join(c.Addrs(), ",")

	s := startSignpost(t, []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_CLUSTER": nodes, "SIGNPOST_REDIS_PASSWORD": password}))
	res, err := http.Post(s.base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("CLUSTER-TLS-1", "390893007")))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create on the cluster with a password and TLS: %d", res.StatusCode)
	}
	for _, path := range []string{"/readyz", strings.TrimPrefix(res.Header.Get("Location"), "http://127.0.0.1:8080")} {
		res, err := http.Get(s.base + path)
		must(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, res.StatusCode, body)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}

	for _, tt := range []struct {
		name     string
		password string
		hint     string
	}{
		{"no password", "", "SIGNPOST_REDIS_PASSWORD"},
		{"a wrong password", "wrong-synthetic-pass", "SIGNPOST_REDIS_PASSWORD"},
	} {
		vars := map[string]string{"SIGNPOST_REDIS_CLUSTER": nodes}
		if tt.password != "" {
			vars["SIGNPOST_REDIS_PASSWORD"] = tt.password
		}
		s := startSignpost(t, []string{"serve", "-config", cfg}, env(vars))
		res, err := http.Get(s.base + "/readyz")
		must(t, err)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: readyz = %d", tt.name, res.StatusCode)
		}
		res, err = http.Post(s.base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("CLUSTER-TLS-2", "390893007")))
		must(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		// Refused credentials are an outage to the sender, which retries.
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s: POST %d, Retry-After %q; want 503 with Retry-After", tt.name, res.StatusCode, res.Header.Get("Retry-After"))
		}
		_ = s.stop()
		var all strings.Builder
		for len(s.stderr.lines) > 0 {
			all.WriteString(<-s.stderr.lines)
		}
		out := all.String() + string(body)
		if !strings.Contains(out, tt.hint) {
			t.Errorf("%s: the log does not say to set %s:\n%s", tt.name, tt.hint, out)
		}
		if strings.Contains(out, password) || strings.Contains(out, "wrong-synthetic-pass") {
			t.Errorf("%s: a password shows:\n%s", tt.name, out)
		}
	}
}

// One Redis speaking TLS with a certificate from a private CA: a rediss://
// redis_url and the CA in redis_tls_ca, and serve stores a referral;
// without redis_tls_ca the certificate is not trusted and /readyz is not
// ready.
func TestServeOnRedisWithPrivateCA(t *testing.T) {
	t.Parallel()
	r := redistest.StartTLS(t)
	withCA := writeFile(t, "signpost.yaml", testConfig+"redis_tls_ca: "+r.CAFile()+"\n")
	s := startSignpost(t, []string{"serve", "-config", withCA}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}))
	res, err := http.Post(s.base+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(referralJSON("TLS-1", "390893007")))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Errorf("create over rediss:// with redis_tls_ca: %d", res.StatusCode)
	}
	_ = s.stop()

	s = startSignpost(t, []string{"serve", "-config", writeFile(t, "signpost.yaml", testConfig)}, env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()}))
	res, err = http.Get(s.base + "/readyz")
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d over rediss:// without the CA, want 503", res.StatusCode)
	}
}

// A redis_tls_ca that cannot be read, or holds no certificate, stops serve
// at once, naming the setting: it is not taken for an outage to wait out.
func TestRedisTLSCAUnreadableStopsServe(t *testing.T) {
	t.Parallel()
	notPEM := writeFile(t, "ca.pem", "not a certificate\n")
	for _, ca := range []string{filepath.Join(t.TempDir(), "missing.pem"), notPEM} {
		cfg := writeFile(t, "signpost.yaml", testConfig+"redis_tls: true\nredis_tls_ca: "+ca+"\n")
		err := run(context.Background(), []string{"serve", "-config", cfg}, env(map[string]string{"SIGNPOST_REDIS_CLUSTER": "127.0.0.1:1"}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "redis_tls_ca") {
			t.Errorf("serve with redis_tls_ca %s: %v, want an error naming redis_tls_ca", filepath.Base(ca), err)
		}
	}
}
