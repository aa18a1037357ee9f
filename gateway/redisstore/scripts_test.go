package redisstore

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
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

// lib.lua's bytes_before orders members as sorted sets and Go do (byte
// order), under a Redis whose locale collates otherwise (en_US.UTF-8,
// where Lua's own < puts "a" before "B" and "ab" before "a-c"): for every
// pair of ids, it answers as Go's <, and table.sort with it gives Go's
// sort.Strings order.
func TestScriptsOrderMembersInByteOrderUnderAnyLocale(t *testing.T) {
	t.Parallel()
	c := redistest.StartCollating(t).Client()
	ids := []string{"b", "B", "a", "A", "ab", "aB", "Ab", "a-c", "a.c", "a-b", "Z9", "z", "0", "9-x", "x.y.z", "X-1", "a", "ab-", "ab."}
	pairs := `local out = {}
for i = 1, #ARGV do
  for j = 1, #ARGV do out[#out + 1] = bytes_before(ARGV[i], ARGV[j]) and 1 or 0 end
end
return out`
	got, err := c.Eval(context.Background(), libLua+pairs, nil, toAny(ids)...).Int64Slice()
	if err != nil || len(got) != len(ids)*len(ids) {
		t.Fatalf("%v %v", got, err)
	}
	for i, x := range ids {
		for j, y := range ids {
			if before := got[i*len(ids)+j] == 1; before != (x < y) {
				t.Errorf("bytes_before(%q, %q) = %v, Go's %q < %q is %v", x, y, before, x, y, x < y)
			}
		}
	}
	sorted := `local m = {}
for i, v in ipairs(ARGV) do m[i] = v end
table.sort(m, bytes_before)
return m`
	order, err := c.Eval(context.Background(), libLua+sorted, nil, toAny(ids)...).StringSlice()
	want := slices.Clone(ids)
	sort.Strings(want)
	if err != nil || !slices.Equal(order, want) {
		t.Errorf("sorted by bytes_before: %q %v, want %q", order, err, want)
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
