package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/signpost-health/signpost/gateway/account"
)

// changeUser runs changeUserScript; account.ErrNoSuchUser if there is no
// account. Signing out, it reads the account's sessions and devices first
// and the script checks the sets still hold exactly those, reading again
// if not (a sign-in may add one meanwhile).
func (s *Store) changeUser(ctx context.Context, email string, signOut bool, fields ...string) error {
	sessions, devices := s.keys.userSessions(email), s.keys.userDevices(email)
	for attempt := 0; attempt < maxRereads; attempt++ {
		keys := []string{s.keys.user(email), sessions, devices}
		args := []any{"0", len(fields) / 2}
		if signOut {
			args[0] = "1"
		}
		for _, f := range fields {
			args = append(args, f)
		}
		var sess, dev []string
		if signOut {
			pipe := s.rdb.Pipeline()
			sc, dc := pipe.SMembers(ctx, sessions), pipe.SMembers(ctx, devices)
			if _, err := pipe.Exec(ctx); err != nil {
				return classify(err)
			}
			sess, dev = sc.Val(), dc.Val()
		}
		args = append(args, len(sess))
		for _, d := range sess {
			keys, args = append(keys, s.keys.session(d)), append(args, d)
		}
		args = append(args, len(dev))
		for _, d := range dev {
			keys, args = append(keys, s.keys.device(d)), append(args, d)
		}
		s.raced()
		out, err := changeUserScript.Run(ctx, s.rdb, keys, args...).Text()
		if err != nil {
			return classify(err)
		}
		switch out {
		case "ok":
			return nil
		case "absent":
			return account.ErrNoSuchUser
		case "changed":
			continue
		default:
			return fmt.Errorf("user_change.lua: unexpected reply %v", out)
		}
	}
	return fmt.Errorf("changing an account: %w", ErrKeptChanging)
}

// AddUser keeps a new provider staff account; account.ErrUserExists if the
// address has one.
func (s *Store) AddUser(ctx context.Context, u account.PortalUser) error {
	n, err := addUser.Run(ctx, s.rdb, []string{s.keys.user(u.Email)}, u.ProviderID, u.PasswordHash, u.Created.UnixMilli()).Int()
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return account.ErrUserExists
	}
	return nil
}

// DisableUser stops an account signing in, signs it out everywhere and
// forgets the browsers trusted for it; account.ErrNoSuchUser if there is none.
func (s *Store) DisableUser(ctx context.Context, email string) error {
	return s.changeUser(ctx, email, true, "disabled", "1")
}

// EnableUser lets a disabled account sign in again; account.ErrNoSuchUser
// if there is none.
func (s *Store) EnableUser(ctx context.Context, email string) error {
	return s.changeUser(ctx, email, false, "disabled", "0")
}

// SetPassword gives an account a new password hash, signs it out
// everywhere and forgets the browsers trusted for it (whoever knew the old
// one is out too); account.ErrNoSuchUser if there is none.
func (s *Store) SetPassword(ctx context.Context, email, hash string) error {
	return s.changeUser(ctx, email, true, "hash", hash)
}

// User reads an account; account.ErrNoSuchUser if there is none.
func (s *Store) User(ctx context.Context, email string) (*account.PortalUser, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.user(email)).Result()
	if err != nil {
		return nil, classify(err)
	}
	u := portalUser(email, h)
	if u == nil {
		return nil, account.ErrNoSuchUser
	}
	return u, nil
}

// portalUser reads an account's hash; nil when it holds no account.
func portalUser(email string, h map[string]string) *account.PortalUser {
	if len(h) == 0 || h["hash"] == "" {
		return nil
	}
	created, _ := strconv.ParseInt(h["created"], 10, 64)
	return &account.PortalUser{Email: email, ProviderID: h["provider"], PasswordHash: h["hash"],
		Disabled: h["disabled"] == "1", Created: time.UnixMilli(created)}
}

// AccountSummary is one account as an operator reviews access: never its
// password hash.
type AccountSummary struct {
	Email      string
	ProviderID string // "" for an operator
	Disabled   bool
	Created    time.Time
}

// Accounts lists every account, by address. It walks the keyspace (SCAN),
// which is fine for an operator's occasional review and needs no index
// that accounts made by earlier versions would be missing from.
func (s *Store) Accounts(ctx context.Context) ([]AccountSummary, error) {
	prefix := s.keys.user("")
	var mu sync.Mutex
	var emails []string
	err := eachPrimary(ctx, s.rdb, func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			emails = append(emails, strings.TrimPrefix(iter.Val(), prefix))
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		return nil, classify(err)
	}
	if len(emails) == 0 {
		return nil, nil
	}
	slices.Sort(emails)
	pipe := s.rdb.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, len(emails))
	for i, e := range emails {
		hashes[i] = pipe.HGetAll(ctx, s.keys.user(e))
	}
	if _, err := pipe.Exec(ctx); err != nil { // HGETALL of no key is empty, not an error
		return nil, classify(err)
	}
	out := make([]AccountSummary, 0, len(emails))
	for i, e := range emails {
		if u := portalUser(e, hashes[i].Val()); u != nil {
			out = append(out, AccountSummary{Email: u.Email, ProviderID: u.ProviderID, Disabled: u.Disabled, Created: u.Created})
		}
	}
	return out, nil
}
