package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// usersCLI runs `signpost users` against a redis-server of its own, and
// returns the store it writes to, for the tests to look in.
func usersCLI(t *testing.T) (users func(stdin string, args ...string) (string, error), store *redisstore.Store) {
	r := redistest.Start(t)
	cfg := writeFile(t, "signpost.yaml", testConfig)
	getenv := env(map[string]string{"SIGNPOST_REDIS_URL": r.URL()})
	users = func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := runUsers(context.Background(), append(args[:1:1], append([]string{"-config", cfg}, args[1:]...)...), getenv, strings.NewReader(stdin), &out, &bytes.Buffer{})
		return out.String(), err
	}
	opt, _ := redis.ParseURL(r.URL())
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return users, redisstore.New(rdb, "signpost")
}

func TestUsersAddAndDisable(t *testing.T) {
	t.Parallel()
	users, store := usersCLI(t)
	ctx := context.Background()
	const password = "correct horse battery staple"
	out, err := users(password+"\n", "add", "walking", "Sam.Staff@Example.org")
	if err != nil || !strings.Contains(out, "sam.staff@example.org can sign in for walking") {
		t.Fatalf("users add: %q, %v", out, err)
	}

	u, err := store.User(ctx, "sam.staff@example.org")
	must(t, err)
	if u.ProviderID != "walking" || u.Disabled || !strings.HasPrefix(u.PasswordHash, "$2") || strings.Contains(u.PasswordHash, "horse") {
		t.Errorf("kept %+v; want a bcrypt hash for walking, enabled", u)
	}
	if !u.PasswordMatches(password) || u.PasswordMatches("correct horse battery stapler") {
		t.Error("the kept hash does not check the password")
	}

	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{password, []string{"add", "walking", "sam.staff@example.org"}, account.ErrUserExists.Error()},
		{password, []string{"add", "no-such-provider", "alex@example.org"}, `no provider "no-such-provider"`},
		{"short", []string{"add", "walking", "alex@example.org"}, "too short"},
		{"", []string{"add", "walking", "alex@example.org"}, "no password on standard input"},
		{password, []string{"add", "walking", "Alex <alex@example.org>"}, "not an email address"},
		{"", []string{"disable", "nobody@example.org"}, account.ErrNoSuchUser.Error()},
	} {
		if _, err := users(c.stdin, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("users %v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	if _, err := store.User(ctx, "alex@example.org"); !errors.Is(err, account.ErrNoSuchUser) {
		t.Errorf("a refused add kept an account: %v", err)
	}

	if out, err := users("", "disable", "SAM.STAFF@example.org"); err != nil || !strings.Contains(out, "can no longer sign in") {
		t.Fatalf("users disable: %q, %v", out, err)
	}
	u, err = store.User(ctx, "sam.staff@example.org")
	must(t, err)
	if !u.Disabled {
		t.Error("the account is still enabled")
	}
	if out, err := users(password, "add", "-operator", "lead@example.org"); err != nil || !strings.Contains(out, "outcomes view") {
		t.Fatalf("users add -operator: %q, %v", out, err)
	}
	if u, err := store.User(ctx, "lead@example.org"); err != nil || !u.Operator() {
		t.Errorf("kept %+v, %v; want an operator's account", u, err)
	}
	if _, err := users(password, "add", "-operator", "walking", "x@example.org"); !errors.As(err, new(usageError)) {
		t.Errorf("an operator with a provider: %v, want a usage error", err)
	}
	if _, err := users("", "remove", "x"); !errors.As(err, new(usageError)) {
		t.Errorf("an unknown users command: %v, want a usage error", err)
	}
}

// A forgotten password is replaced by an operator, which signs the account
// out everywhere; a disabled account can be let back in.
func TestUsersPasswordAndEnable(t *testing.T) {
	t.Parallel()
	users, store := usersCLI(t)
	ctx := context.Background()
	const old, replaced = "correct horse battery staple", "a new and longer passphrase"
	if _, err := users(old, "add", "walking", "sam@example.org"); err != nil {
		t.Fatal(err)
	}
	session := account.WebSession{Email: "sam@example.org", ProviderID: "walking", CSRF: "synthetic-csrf", Created: time.Now()}
	must(t, store.StartSession(ctx, "synthetic-session-digest", session, time.Hour, time.Hour))
	must(t, store.TrustDevice(ctx, "synthetic-device-digest", "sam@example.org", time.Hour))

	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{replaced, []string{"password", "nobody@example.org"}, account.ErrNoSuchUser.Error()},
		{"short", []string{"password", "sam@example.org"}, "too short"},
		{"", []string{"password", "sam@example.org"}, "no password on standard input"},
		{"", []string{"enable", "nobody@example.org"}, account.ErrNoSuchUser.Error()},
	} {
		if out, err := users(c.stdin, c.args...); err == nil || !strings.Contains(err.Error(), c.want) || out != "" {
			t.Errorf("users %v: %q, %v, want an error saying %q and nothing done", c.args, out, err, c.want)
		}
	}
	if s, err := store.Session(ctx, "synthetic-session-digest", time.Hour); err != nil || s == nil {
		t.Fatalf("a refused change ended the session: %v %v", s, err)
	}
	if acct, err := store.DeviceAccount(ctx, "synthetic-device-digest"); err != nil || acct != "sam@example.org" {
		t.Fatalf("a refused change forgot the trusted browser: %q %v", acct, err)
	}

	if out, err := users(replaced+"\n", "password", "Sam@Example.org"); err != nil || !strings.Contains(out, "sam@example.org has a new password") {
		t.Fatalf("users password: %q, %v", out, err)
	}
	u, err := store.User(ctx, "sam@example.org")
	must(t, err)
	if !u.PasswordMatches(replaced) || u.PasswordMatches(old) || u.ProviderID != "walking" {
		t.Errorf("after the change: new password %v, old password %v, provider %q", u.PasswordMatches(replaced), u.PasswordMatches(old), u.ProviderID)
	}
	if s, err := store.Session(ctx, "synthetic-session-digest", time.Hour); err != nil || s != nil {
		t.Errorf("the session signed in with the old password is still live: %v %v", s, err)
	}
	if acct, err := store.DeviceAccount(ctx, "synthetic-device-digest"); err != nil || acct != "" {
		t.Errorf("the browser trusted under the old password is still trusted for %q: %v", acct, err)
	}
	if _, err := store.User(ctx, "nobody@example.org"); !errors.Is(err, account.ErrNoSuchUser) {
		t.Errorf("a refused change made an account: %v", err)
	}

	if _, err := users("", "disable", "sam@example.org"); err != nil {
		t.Fatal(err)
	}
	if out, err := users("", "enable", "sam@example.org"); err != nil || !strings.Contains(out, "sam@example.org can sign in again") {
		t.Fatalf("users enable: %q, %v", out, err)
	}
	if u, err := store.User(ctx, "sam@example.org"); err != nil || u.Disabled {
		t.Errorf("after enable: %+v, %v", u, err)
	}
}

// An operator reviewing access sees every account, never a password hash.
func TestUsersList(t *testing.T) {
	t.Parallel()
	users, _ := usersCLI(t)
	const password = "correct horse battery staple"
	// The accounts are made on the day before the adds or the day after the
	// list: on a loaded host the adds (bcrypt under -race) take seconds, and
	// a run across midnight UTC would otherwise see yesterday's date.
	dayBefore := time.Now().UTC().Format(time.DateOnly)
	for _, args := range [][]string{{"add", "walking", "sam@example.org"}, {"add", "-operator", "lead@example.org"}, {"disable", "sam@example.org"}} {
		if _, err := users(password, args...); err != nil {
			t.Fatal(args, err)
		}
	}
	out, err := users("", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "EMAIL") {
		t.Fatalf("users list:\n%s", out)
	}
	dayAfter := time.Now().UTC().Format(time.DateOnly)
	for i, want := range [][]string{{"lead@example.org", "operator", "enabled"}, {"sam@example.org", "walking", "disabled"}} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
		if !strings.Contains(lines[i+1], dayBefore) && !strings.Contains(lines[i+1], dayAfter) {
			t.Errorf("line %d %q lacks the day it was made (%s or %s)", i+1, lines[i+1], dayBefore, dayAfter)
		}
	}
	if strings.Contains(out, "$2") {
		t.Errorf("users list shows a password hash:\n%s", out)
	}
	if _, err := users("", "list", "extra"); !errors.As(err, new(usageError)) {
		t.Errorf("users list with an argument: %v, want a usage error", err)
	}
}

// A CLI tool that finds no Signpost data where it is pointed says so on
// stderr, and names the namespace that is there: the demo's keys are
// apart from Signpost's, and the tools read them when told to.
func TestCLIToolsSayWhenNoSignpostDataIsThere(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	ctx := context.Background()
	tools := [][]string{{"users", "list"}, {"dlq", "list"}, {"audit", "tail"}}
	runTool := func(args []string, vars map[string]string) (string, string) {
		var out, errOut bytes.Buffer
		vars["SIGNPOST_REDIS_URL"] = r.URL()
		if err := run(ctx, args, env(vars), &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	for _, args := range tools {
		if _, stderr := runTool(args, map[string]string{}); !strings.Contains(stderr, "holds no Signpost data") || !strings.Contains(stderr, "Is it the Redis") {
			t.Errorf("%v on an empty Redis: stderr %q", args, stderr)
		}
	}
	// Data under the demo's namespace only.
	demo := redisstore.New(r.Client(), demoNamespace)
	u, err := account.NewPortalUser("lead@example.org", "", "correct horse battery staple", time.Now())
	must(t, err)
	must(t, demo.AddUser(ctx, u))
	for _, args := range tools {
		_, stderr := runTool(args, map[string]string{})
		if !strings.Contains(stderr, `namespace "signpost-demo"`) || !strings.Contains(stderr, "SIGNPOST_REDIS_NAMESPACE=signpost-demo") {
			t.Errorf("%v beside the demo's data: stderr %q", args, stderr)
		}
	}
	out, stderr := runTool([]string{"users", "list"}, map[string]string{"SIGNPOST_REDIS_NAMESPACE": demoNamespace})
	if !strings.Contains(out, "lead@example.org") || stderr != "" {
		t.Errorf("users list in the demo's namespace: %q, stderr %q", out, stderr)
	}
}

// The demo names its own redis-server, which the tools would not find by
// themselves, and never repeats a URL given in the environment.
func TestDemoSaysHowToolsReachItsData(t *testing.T) {
	t.Parallel()
	own := demoCLI("redis://127.0.0.1:41234/0", env(nil))
	if !strings.Contains(own, "export SIGNPOST_REDIS_URL=redis://127.0.0.1:41234/0 SIGNPOST_REDIS_NAMESPACE=signpost-demo") {
		t.Errorf("own redis-server:\n%s", own)
	}
	given := demoCLI("redis://:secret@redis.example:6379/0", env(map[string]string{"SIGNPOST_REDIS_URL": "redis://:secret@redis.example:6379/0"}))
	if strings.Contains(given, "secret") || !strings.Contains(given, "export SIGNPOST_REDIS_NAMESPACE=signpost-demo\n") {
		t.Errorf("a Redis from the environment:\n%s", given)
	}
}
