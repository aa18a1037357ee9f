package redisstore

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every script is loaded where the argument convention is written, is
// documented in its header, and takes no argument as JSON to decode.
func TestScriptsFollowTheConvention(t *testing.T) {
	t.Parallel()
	loader, err := os.ReadFile("scripts.go")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("scripts", "*.lua"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	// ARGV read through cjson, whole or by position (ARGV[i], or a local
	// alias such as commit.lua's and search.lua's `a`).
	decodesArgs := regexp.MustCompile(`cjson\.decode\(\s*(ARGV|a)\s*\[`)
	for _, f := range files {
		name := filepath.Base(f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		if !strings.Contains(string(loader), "//go:embed scripts/"+name+"\n") {
			t.Errorf("%s is not loaded in scripts.go", name)
		}
		if !strings.HasPrefix(src, "-- "+name+" — ") {
			t.Errorf("%s does not open with its header (-- %s — what it does)", name, name)
		}
		if name == "lib.lua" || name == "window.lua" {
			continue // functions, prepended to the scripts that use them
		}
		var header strings.Builder // its leading comment lines
		for _, line := range strings.Split(src, "\n") {
			if !strings.HasPrefix(line, "--") {
				break
			}
			header.WriteString(line + "\n")
		}
		for _, want := range []string{"KEYS", "ARGV", "Returns"} {
			if !strings.Contains(header.String(), want) {
				t.Errorf("%s: its header does not document %s", name, want)
			}
		}
		if decodesArgs.MatchString(src) {
			t.Errorf("%s decodes an argument as JSON", name)
		}
	}
}
