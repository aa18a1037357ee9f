package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/config"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signpost.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// redis_cluster is read from the file or from SIGNPOST_REDIS_CLUSTER
// (which wins, as every variable does), and is instead of redis_url.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	nodes := []string{"10.0.0.5:6379", "10.0.0.6:6379", "redis-2.internal:7000"}

	cfg, err := config.Load(writeConfig(t, "redis_cluster: [\"10.0.0.5:6379\", \"10.0.0.6:6379\", \"redis-2.internal:7000\"]\n"), noEnv, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !slices.Equal(cfg.RedisCluster, nodes) || !strings.Contains(cfg.RedisTarget(), "10.0.0.6:6379") {
		t.Errorf("from the file: %q (%s)", cfg.RedisCluster, cfg.RedisTarget())
	}

	// The variable wins over the file's redis_url, spaces after commas allowed.
	env := envOf(map[string]string{"SIGNPOST_REDIS_CLUSTER": "10.0.0.5:6379, 10.0.0.6:6379,redis-2.internal:7000"})
	cfg, err = config.Load(validFile, env, nil)
	if err != nil {
		t.Fatalf("SIGNPOST_REDIS_CLUSTER over a file with redis_url: %v", err)
	}
	if !slices.Equal(cfg.RedisCluster, nodes) {
		t.Errorf("from the environment: %q", cfg.RedisCluster)
	}

	// SIGNPOST_REDIS_URL wins over the file's redis_cluster: one Redis.
	cfg, err = config.Load(writeConfig(t, "redis_cluster: [\"10.0.0.5:6379\"]\n"), envOf(map[string]string{"SIGNPOST_REDIS_URL": "redis://10.0.0.9:6379/0"}), nil)
	if err != nil || len(cfg.RedisCluster) != 0 || cfg.RedisURL != "redis://10.0.0.9:6379/0" {
		t.Errorf("SIGNPOST_REDIS_URL over a file with redis_cluster: %q %q %v", cfg.RedisCluster, cfg.RedisURL, err)
	}

	// Without either, one Redis at the default URL, as before.
	cfg, err = config.Load("", noEnv, nil)
	if err != nil || len(cfg.RedisCluster) != 0 || cfg.RedisTarget() != cfg.RedisURLRedacted() {
		t.Errorf("defaults: %q %v", cfg.RedisCluster, err)
	}
}

func TestRedisClusterRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		file       string
		env        map[string]string
		field, why string
		fromEnv    string
	}{
		{"both in the file", "redis_url: \"redis://10.0.0.9:6379/0\"\nredis_cluster: [\"10.0.0.5:6379\"]\n", nil, "redis_cluster", "instead of redis_url", ""},
		{"both in the environment", "", map[string]string{"SIGNPOST_REDIS_URL": "redis://10.0.0.9:6379/0", "SIGNPOST_REDIS_CLUSTER": "10.0.0.5:6379"}, "redis_cluster", "instead of redis_url", "SIGNPOST_REDIS_CLUSTER"},
		{"no port", "redis_cluster: [\"10.0.0.5:6379\", \"10.0.0.6\"]\n", nil, "redis_cluster[1]", "not a host:port", ""},
		{"port 0", "redis_cluster: [\"10.0.0.5:0\"]\n", nil, "redis_cluster[0]", "not a host:port", ""},
		{"a URL", "redis_cluster: [\"redis://10.0.0.5:6379\"]\n", nil, "redis_cluster[0]", "give a node's host:port", ""},
		{"a password", "redis_cluster: [\"redis://:hunter2@10.0.0.5:6379\"]\n", nil, "redis_cluster[0]", "holds credentials", ""},
		{"a password in the environment", "", map[string]string{"SIGNPOST_REDIS_CLUSTER": "default:hunter2@10.0.0.5:6379"}, "redis_cluster[0]", "holds credentials", "SIGNPOST_REDIS_CLUSTER"},
		{"twice", "redis_cluster: [\"10.0.0.5:6379\", \"10.0.0.5:6379\"]\n", nil, "redis_cluster[1]", "listed twice", ""},
		{"bad in the environment", "", map[string]string{"SIGNPOST_REDIS_CLUSTER": "10.0.0.5:6379,,"}, "redis_cluster[1]", "not a host:port", "SIGNPOST_REDIS_CLUSTER"},
		{"a password for one Redis", "", map[string]string{"SIGNPOST_REDIS_PASSWORD": "hunter2"}, "redis_password", "redis://:PASSWORD@", "SIGNPOST_REDIS_PASSWORD"},
		{"a user without a password", "", map[string]string{"SIGNPOST_REDIS_CLUSTER": "10.0.0.5:6379", "SIGNPOST_REDIS_USERNAME": "signpost"}, "redis_username", "needs SIGNPOST_REDIS_PASSWORD", "SIGNPOST_REDIS_USERNAME"},
		{"TLS for one Redis", "redis_tls: true\n", nil, "redis_tls", "rediss://", ""},
		{"a CA without TLS", "redis_cluster: [\"10.0.0.5:6379\"]\nredis_tls_ca: ca.pem\n", nil, "redis_tls_ca", "only with TLS", ""},
		{"a CA for one Redis without TLS", "redis_url: \"redis://10.0.0.5:6379/0\"\nredis_tls_ca: ca.pem\n", nil, "redis_tls_ca", "only with TLS", ""},
		{"a server name without TLS", "redis_cluster: [\"10.0.0.5:6379\"]\nredis_tls_server_name: redis.example.net\n", nil, "redis_tls_server_name", "only with TLS", ""},
		{"a server name that is not one", "redis_cluster: [\"10.0.0.5:6379\"]\nredis_tls: true\nredis_tls_server_name: \"redis.example.net:6380\"\n", nil, "redis_tls_server_name", "not a host name", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
			}
			_, err := config.Load(path, envOf(tt.env), nil)
			ps := problemsOf(t, err)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
			for _, p := range ps {
				if p.Field == tt.field && strings.Contains(p.Reason, tt.why) {
					if p.Env != tt.fromEnv {
						t.Errorf("%s: named variable %q, want %q", p.Field, p.Env, tt.fromEnv)
					}
					return
				}
			}
			t.Errorf("no problem %s %q in %#v", tt.field, tt.why, ps)
		})
	}
}

// A Redis Cluster's password and user come from the environment only, its
// TLS from the file; a relative CA file is next to the file; the password
// shows nowhere.
func TestRedisClusterPasswordAndTLS(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "redis_cluster: [\"10.0.0.5:6379\"]\nredis_tls: true\nredis_tls_ca: certs/ca.pem\nredis_tls_server_name: redis.example.net\n")
	env := envOf(map[string]string{"SIGNPOST_REDIS_USERNAME": "signpost", "SIGNPOST_REDIS_PASSWORD": "hunter2"})
	cfg, err := config.Load(path, env, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.RedisUsername != "signpost" || cfg.RedisPassword != "hunter2" || !cfg.RedisTLS || cfg.RedisTLSServerName != "redis.example.net" {
		t.Errorf("user %q, TLS %v, server name %q", cfg.RedisUsername, cfg.RedisTLS, cfg.RedisTLSServerName)
	}
	if want := filepath.Join(filepath.Dir(path), "certs", "ca.pem"); cfg.RedisTLSCA != want {
		t.Errorf("redis_tls_ca %q, want %q (beside the file)", cfg.RedisTLSCA, want)
	}
	if target := cfg.RedisTarget(); strings.Contains(target, "hunter2") || !strings.Contains(target, "TLS") {
		t.Errorf("RedisTarget %q: shows the password, or not that it is TLS", target)
	}

	// One Redis keeps its TLS in the URL, with a private CA if need be.
	cfg, err = config.Load(writeConfig(t, "redis_url: \"rediss://:hunter2@10.0.0.5:6380/0\"\nredis_tls_ca: /etc/signpost/ca.pem\n"), noEnv, nil)
	if err != nil || cfg.RedisTLSCA != "/etc/signpost/ca.pem" {
		t.Errorf("rediss:// with redis_tls_ca: %q %v", cfg.RedisTLSCA, err)
	}
}

// A Redis Cluster spreads referrals over the store's partitions, so that
// its primaries share them (once config.SpreadOnRedisCluster is on); one
// Redis, the default, never does, nor does a cluster's file overridden by
// SIGNPOST_REDIS_URL.
func TestRedisClusterSpreadsReferrals(t *testing.T) {
	t.Parallel()
	cluster := config.SpreadOnRedisCluster
	clusterFile := writeConfig(t, "redis_cluster: [\"10.0.0.5:6379\", \"10.0.0.6:6379\"]\n")
	for _, tt := range []struct {
		name   string
		file   string
		env    map[string]string
		spread bool
	}{
		{"redis_cluster in the file", clusterFile, nil, cluster},
		{"SIGNPOST_REDIS_CLUSTER", validFile, map[string]string{"SIGNPOST_REDIS_CLUSTER": "10.0.0.5:6379,10.0.0.6:6379"}, cluster},
		{"the default Redis", "", nil, false},
		{"redis_url in the file", validFile, nil, false},
		{"SIGNPOST_REDIS_URL over a file's redis_cluster", clusterFile, map[string]string{"SIGNPOST_REDIS_URL": "redis://10.0.0.9:6379/0"}, false},
	} {
		cfg, err := config.Load(tt.file, envOf(tt.env), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := cfg.SpreadReferrals(); got != tt.spread {
			t.Errorf("%s: SpreadReferrals() = %v, want %v", tt.name, got, tt.spread)
		}
	}
}
