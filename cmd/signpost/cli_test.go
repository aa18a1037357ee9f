package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
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
