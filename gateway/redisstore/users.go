package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// addUser creates an account only where none exists, in one step, so two
// operators adding one address cannot overwrite each other.
var addUser = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'provider', ARGV[1], 'hash', ARGV[2], 'created', ARGV[3], 'disabled', '0')
return 1`)

// changeUserScript sets fields of an existing account and, when told to, ends
// every session it has, in one step; it never creates an account.
// KEYS[1] the account, KEYS[2] its sessions set; ARGV[1] the session key
// prefix, ARGV[2] '1' to end the sessions, ARGV[3..] field, value pairs.
// Returns 1, or 0 for no account.
var changeUserScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] == '1' then
  for _, digest in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('DEL', ARGV[1] .. digest)
  end
  redis.call('DEL', KEYS[2])
end
return 1`)

// changeUser runs changeUserScript; gateway.ErrNoSuchUser if there is no account.
func (s *Store) changeUser(ctx context.Context, email string, endSessions bool, fields ...string) error {
	args := []any{s.keys.sessionPrefix(), "0"}
	if endSessions {
		args[1] = "1"
	}
	for _, f := range fields {
		args = append(args, f)
	}
	n, err := changeUserScript.Run(ctx, s.rdb, []string{s.keys.user(email), s.keys.userSessions(email)}, args...).Int()
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return gateway.ErrNoSuchUser
	}
	return nil
}

// AddUser keeps a new provider staff account; gateway.ErrUserExists if the
// address has one.
func (s *Store) AddUser(ctx context.Context, u gateway.PortalUser) error {
	n, err := addUser.Run(ctx, s.rdb, []string{s.keys.user(u.Email)}, u.ProviderID, u.PasswordHash, u.Created.UnixMilli()).Int()
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return gateway.ErrUserExists
	}
	return nil
}

// DisableUser stops an account signing in and signs it out everywhere;
// gateway.ErrNoSuchUser if there is none.
func (s *Store) DisableUser(ctx context.Context, email string) error {
	return s.changeUser(ctx, email, true, "disabled", "1")
}

// EnableUser lets a disabled account sign in again; gateway.ErrNoSuchUser
// if there is none.
func (s *Store) EnableUser(ctx context.Context, email string) error {
	return s.changeUser(ctx, email, false, "disabled", "0")
}

// SetPassword gives an account a new password hash and signs it out
// everywhere (whoever knew the old one is out too); gateway.ErrNoSuchUser
// if there is none.
func (s *Store) SetPassword(ctx context.Context, email, hash string) error {
	return s.changeUser(ctx, email, true, "hash", hash)
}

// User reads an account; gateway.ErrNoSuchUser if there is none.
func (s *Store) User(ctx context.Context, email string) (*gateway.PortalUser, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.user(email)).Result()
	if err != nil {
		return nil, classify(err)
	}
	if len(h) == 0 || h["hash"] == "" {
		return nil, gateway.ErrNoSuchUser
	}
	created, _ := strconv.ParseInt(h["created"], 10, 64)
	return &gateway.PortalUser{Email: email, ProviderID: h["provider"], PasswordHash: h["hash"],
		Disabled: h["disabled"] == "1", Created: time.UnixMilli(created)}, nil
}
