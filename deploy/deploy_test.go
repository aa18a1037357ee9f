// Package deploy holds Signpost's deployment files. Its tests check what can
// be checked without a container engine: the image's build step, and that
// the configuration files mean what the deployment relies on.
package deploy

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/mappings"
)

func TestImageBuildStepMakesAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	out := filepath.Join(t.TempDir(), "signpost")
	if b, err := exec.Command("sh", "build.sh", out, "test-1").CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked; distroless/static needs a static one")
		}
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || !strings.Contains(string(v), "test-1") {
		t.Errorf("version = %q, %v", v, err)
	}
	// The Dockerfile must build with that script and run as non-root.
	df, _ := os.ReadFile("Dockerfile")
	for _, want := range []string{"deploy/build.sh", "USER nonroot", "distroless/static"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestRedisSettingsKeepEverything(t *testing.T) {
	t.Parallel()
	f, err := os.Open("redis.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		got[k] = v
	}
	for k, want := range map[string]string{"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

func TestSignpostConfigIsValid(t *testing.T) {
	t.Parallel()
	if _, err := config.Load("signpost.yaml", func(string) string { return "" }, mappings.IsCategory); err != nil {
		t.Fatal(err)
	}
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string
			Build       map[string]string
			Command     []string
			Volumes     []string
			NetworkMode string                       `yaml:"network_mode"`
			DependsOn   map[string]map[string]string `yaml:"depends_on"`
		}
		Volumes map[string]any
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	redis, sp := c.Services["redis"], c.Services["signpost"]
	if !strings.Contains(strings.Join(redis.Volumes, " "), "./redis.conf:") || !strings.Contains(strings.Join(redis.Command, " "), "redis.conf") {
		t.Error("redis does not run with deploy/redis.conf")
	}
	if !strings.Contains(strings.Join(redis.Volumes, " "), "redis-data:/data") || c.Volumes["redis-data"] == nil {
		t.Error("redis data is not on a named volume")
	}
	if sp.Build["dockerfile"] != "deploy/Dockerfile" || sp.DependsOn["redis"]["condition"] != "service_healthy" {
		t.Errorf("signpost service: %+v", sp)
	}
	if _, err := os.Stat(filepath.Join("..", sp.Build["dockerfile"])); err != nil {
		t.Errorf("build context does not hold the Dockerfile: %v", err)
	}
}
