package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// -h asks a command for its usage, and that is success: exit 0 on every
// command, before anything connects or starts.
func TestHelpExitsZeroEverywhere(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--help"}, {"serve", "-h"}, {"worker", "-h"}, {"demo", "-h"}, {"users", "-h"}, {"users", "add", "-h"},
		{"users", "list", "-h"}, {"users", "password", "-h"}, {"dlq", "-h"}, {"dlq", "list", "-h"}, {"dlq", "replay", "-h"},
		{"audit", "-h"}, {"audit", "tail", "-h"}, {"mappings", "-h"}, {"mappings", "check", "-h"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, env(nil), &out, &errOut)
		if err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if out.Len()+errOut.Len() == 0 {
			t.Errorf("%v printed no usage", args)
		}
	}
	// mappings check -h is the usage, not a file named -h.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"mappings", "check", "-h"}, env(nil), &out, &out); err != nil || !strings.Contains(out.String(), "usage") {
		t.Errorf("mappings check -h: %v %q", err, out.String())
	}
}

// --version names the build: the revision it was built from, not "dev".
func TestVersionNamesTheBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, env(nil), &out, &out); err != nil || !strings.HasPrefix(out.String(), "signpost ") {
		t.Errorf("--version: %v %q", err, out.String())
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git: the build records no revision")
	}
	// Built as go install or go build do by default (a machine may turn it
	// off with GOFLAGS=-buildvcs=false; this one asks for it).
	bin := filepath.Join(t.TempDir(), "signpost")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if info, err := exec.Command("go", "version", "-m", bin).Output(); err != nil || !bytes.Contains(info, []byte("vcs.revision")) {
		t.Skip("the build recorded no revision (a checkout git cannot describe, such as a linked worktree)")
	}
	got, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) == "signpost dev" || !strings.HasPrefix(string(got), "signpost ") {
		t.Errorf("a built binary's --version: %v %q", err, got)
	}
}

// users add without any configuration says that is why no provider is
// known, rather than that the one named is missing from a file.
func TestUsersAddWithoutConfigurationSaysSo(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})
	var out bytes.Buffer
	err := run(context.Background(), []string{"users", "add", "walking", "sam@example.org"}, getenv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "no configuration given") || !strings.Contains(err.Error(), "SIGNPOST_CONFIG") {
		t.Errorf("users add without -config: %v", err)
	}
}

// The version names what is known of the build, and dev only when nothing is.
func TestDescribeBuild(t *testing.T) {
	t.Parallel()
	const rev = "7dae4dc4cb3de2d9f13850547e8527ed79ea5253"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-03T06:05:40Z"}, {Key: "vcs.modified", Value: modified}}
	}
	for _, c := range []struct {
		name, linked string
		info         *debug.BuildInfo
		want         string
	}{
		{"nothing known", "dev", nil, "dev"},
		{"go run", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"set at link time", "1.4.0", &debug.BuildInfo{Settings: vcs("false")}, "1.4.0"},
		{"git checkout", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203060540-7dae4dc4cb3d"}, Settings: vcs("false")},
			"7dae4dc4cb3d (2026-12-03T06:05:40Z)"},
		{"uncommitted changes", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203060540-7dae4dc4cb3d+dirty"}, Settings: vcs("true")},
			"7dae4dc4cb3d-dirty (2026-12-03T06:05:40Z)"},
		{"tagged checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: vcs("false")},
			"v1.2.0 7dae4dc4cb3d (2026-12-03T06:05:40Z)"},
		{"go install @version", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0"},
	} {
		if got := describeBuild(c.linked, c.info); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
