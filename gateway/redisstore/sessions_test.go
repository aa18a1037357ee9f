package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway/account"
)

func addAccount(t *testing.T, s *Store, email, provider string) {
	t.Helper()
	if err := s.AddUser(context.Background(), account.PortalUser{Email: email, ProviderID: provider, PasswordHash: "synthetic-hash", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func signIn(t *testing.T, s *Store, digest, email string) {
	t.Helper()
	sess := account.WebSession{Email: email, CSRF: "synthetic-csrf", Created: time.Now()}
	if err := s.StartSession(context.Background(), digest, sess, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
}

// A session is touched under the account it names when the script runs,
// not the one it named when its address was read: one that names another
// account meanwhile is read again, and answered for that account.
func TestSessionWhoseAccountChangedIsReadAgain(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	addAccount(t, s, "a@example.org", "walking")
	addAccount(t, s, "b@example.org", "running")
	signIn(t, s, "synthetic-digest", "a@example.org")
	races := 0
	s.afterRead = func() {
		if races++; races == 1 {
			s.rdb.HSet(ctx, s.keys.session("synthetic-digest"), "email", "b@example.org")
		}
	}
	got, err := s.Session(ctx, "synthetic-digest", time.Hour)
	if err != nil || got == nil {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	if got.Email != "b@example.org" || got.ProviderID != "running" {
		t.Errorf("session answered for %s (%s), want b@example.org (running)", got.Email, got.ProviderID)
	}
	if races != 2 {
		t.Errorf("%d reads, want 2 (the first found changed)", races)
	}

	// Now the account it comes to name is disabled: the session is ended,
	// though the account read first is not.
	if err := s.DisableUser(ctx, "b@example.org"); err != nil {
		t.Fatal(err)
	}
	signIn(t, s, "synthetic-digest-2", "a@example.org")
	races = 0
	s.afterRead = func() {
		if races++; races == 1 {
			s.rdb.HSet(ctx, s.keys.session("synthetic-digest-2"), "email", "b@example.org")
		}
	}
	if got, err := s.Session(ctx, "synthetic-digest-2", time.Hour); err != nil || got != nil {
		t.Errorf("Session = %+v, %v, want none: it names a disabled account", got, err)
	}
	if n := s.rdb.Exists(ctx, s.keys.session("synthetic-digest-2")).Val(); n != 0 {
		t.Error("the session of a disabled account was kept")
	}
}

// A session that keeps naming another account is refused after a bounded
// number of reads, with nothing changed.
func TestSessionThatKeepsChangingIsRefused(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	addAccount(t, s, "a@example.org", "walking")
	addAccount(t, s, "b@example.org", "walking")
	signIn(t, s, "synthetic-digest", "a@example.org")
	key := s.keys.session("synthetic-digest")
	s.rdb.PExpire(ctx, key, time.Minute)
	races := 0
	s.afterRead = func() {
		races++
		next := "a@example.org"
		if s.rdb.HGet(ctx, key, "email").Val() == next {
			next = "b@example.org"
		}
		s.rdb.HSet(ctx, key, "email", next)
	}
	got, err := s.Session(ctx, "synthetic-digest", time.Hour)
	if !errors.Is(err, ErrKeptChanging) || got != nil {
		t.Fatalf("Session = %+v, %v, want ErrKeptChanging", got, err)
	}
	if races != maxRereads {
		t.Errorf("%d reads, want %d", races, maxRereads)
	}
	if ttl := s.rdb.PTTL(ctx, key).Val(); ttl > time.Minute {
		t.Errorf("a refused read kept the session alive (%v)", ttl)
	}
}

// Signing an account out ends the sessions its set holds when the script
// runs: one started after the set was read makes the change read it again,
// and ends that one too.
func TestSignOutReadsAgainWhenASessionStartsMeanwhile(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	addAccount(t, s, "a@example.org", "walking")
	signIn(t, s, "synthetic-digest-1", "a@example.org")
	if err := s.TrustDevice(ctx, "synthetic-device-1", "a@example.org", time.Hour); err != nil {
		t.Fatal(err)
	}
	races := 0
	s.afterRead = func() {
		if races++; races == 1 {
			signIn(t, s, "synthetic-digest-2", "a@example.org")
			if err := s.TrustDevice(ctx, "synthetic-device-2", "a@example.org", time.Hour); err != nil {
				t.Error(err)
			}
		}
	}
	if err := s.DisableUser(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if races != 2 {
		t.Errorf("%d reads, want 2 (the first found a new session)", races)
	}
	for _, k := range []string{s.keys.session("synthetic-digest-1"), s.keys.session("synthetic-digest-2"),
		s.keys.device("synthetic-device-1"), s.keys.device("synthetic-device-2"),
		s.keys.userSessions("a@example.org"), s.keys.userDevices("a@example.org")} {
		if s.rdb.Exists(ctx, k).Val() != 0 {
			t.Errorf("%s outlived the sign-out", k)
		}
	}
	if u, err := s.User(ctx, "a@example.org"); err != nil || !u.Disabled {
		t.Errorf("User = %+v, %v, want disabled", u, err)
	}
}

// A sign-out whose account keeps gaining sessions is refused after a
// bounded number of reads, with nothing written.
func TestSignOutThatKeepsChangingIsRefused(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	addAccount(t, s, "a@example.org", "walking")
	signIn(t, s, "synthetic-digest-0", "a@example.org")
	races := 0
	s.afterRead = func() {
		races++
		signIn(t, s, "synthetic-digest-"+itoa(races), "a@example.org")
	}
	if err := s.SetPassword(ctx, "a@example.org", "another-synthetic-hash"); !errors.Is(err, ErrKeptChanging) {
		t.Fatalf("SetPassword = %v, want ErrKeptChanging", err)
	}
	if races != maxRereads {
		t.Errorf("%d reads, want %d", races, maxRereads)
	}
	if u, _ := s.User(ctx, "a@example.org"); u == nil || u.PasswordHash != "synthetic-hash" {
		t.Errorf("a refused change wrote the account: %+v", u)
	}
	for i := 0; i <= maxRereads; i++ {
		if s.rdb.Exists(ctx, s.keys.session("synthetic-digest-"+itoa(i))).Val() != 1 {
			t.Errorf("a refused sign-out ended session %d", i)
		}
	}
	// Without races it goes through.
	s.afterRead = nil
	if err := s.SetPassword(ctx, "a@example.org", "another-synthetic-hash"); err != nil {
		t.Fatal(err)
	}
	if n := s.rdb.SCard(ctx, s.keys.userSessions("a@example.org")).Val(); n != 0 {
		t.Errorf("%d sessions left after the sign-out", n)
	}
}

// Enabling an account signs nothing out and reads no sets.
func TestEnableUserKeepsSessions(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	addAccount(t, s, "a@example.org", "walking")
	signIn(t, s, "synthetic-digest", "a@example.org")
	if err := s.EnableUser(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Session(ctx, "synthetic-digest", time.Hour); err != nil || got == nil {
		t.Errorf("Session = %+v, %v after enabling", got, err)
	}
	if err := s.EnableUser(ctx, "nobody@example.org"); !errors.Is(err, account.ErrNoSuchUser) {
		t.Errorf("EnableUser of no account = %v", err)
	}
}
