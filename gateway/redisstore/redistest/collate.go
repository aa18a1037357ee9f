package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// collatingLocale is a locale whose collation is not byte order: "B" sorts
// after "a", and "-" and "." weigh nothing at first ("ab" before "a-c").
const collatingLocale = "en_US.UTF-8"

// StartCollating is Start with redis-server running under a locale whose
// collation is not byte order (en_US.UTF-8), as a deployment's Redis may
// run: Redis sets LC_COLLATE from its environment at start-up, and Lua's
// string comparison (< and >) follows it, so a script ordering members
// with it orders them unlike a sorted set (byte order) and Go. The locale
// is the machine's when it has one; else it is built for the test from
// the sources of Debian's locales package (localedef, into the test's
// temporary directory; no root needed). Without those the test is
// skipped, and under CI, which installs them, it fails. The server is
// checked to collate so before it is returned.
func StartCollating(t testing.TB) *Server {
	t.Helper()
	needRedisServer(t)
	s := &Server{t: t, dir: t.TempDir(), env: collatingEnv(t)}
	s.startOnFreePorts(func() { s.Addr = "127.0.0.1:" + strconv.Itoa(freePort(t)) })
	t.Cleanup(func() { s.Kill() })
	c := s.Client()
	byBytes, err := c.Eval(context.Background(), "return 'B' < 'a' and 1 or 0", nil).Int()
	if err != nil || byBytes != 0 {
		t.Fatalf("redis-server under %s still compares strings in byte order in Lua (%d, %v)", collatingLocale, byBytes, err)
	}
	return s
}

// collatingEnv is the environment redis-server needs to run under
// collatingLocale: the locale, and where it was built when the machine
// does not have it.
func collatingEnv(t testing.TB) []string {
	t.Helper()
	env := []string{"LC_ALL=" + collatingLocale}
	if out, err := exec.Command("locale", "-a").Output(); err == nil {
		for _, l := range strings.Fields(string(out)) {
			if strings.EqualFold(strings.ReplaceAll(l, "-", ""), strings.ReplaceAll(collatingLocale, "-", "")) {
				return env
			}
		}
	}
	unavailable := func(why string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s locale for redis-server: %s", collatingLocale, why)
		}
		t.Skipf("no %s locale for redis-server: %s (apt-get install locales)", collatingLocale, why)
	}
	if _, err := exec.LookPath("localedef"); err != nil {
		unavailable("localedef is not installed")
	}
	dir := t.TempDir()
	name, charmap, _ := strings.Cut(collatingLocale, ".")
	out, err := exec.Command("localedef", "-i", name, "-f", charmap, filepath.Join(dir, collatingLocale)).CombinedOutput()
	// localedef exits non-zero on warnings too, having built the locale.
	if _, built := os.Stat(filepath.Join(dir, collatingLocale, "LC_COLLATE")); built != nil {
		unavailable("localedef: " + strings.TrimSpace(string(out)) + " " + fmt.Sprint(err))
	}
	return append(env, "LOCPATH="+dir)
}
