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

// disableUser marks an existing account disabled and ends every session it
// has, in one step; it never creates an account.
// KEYS[1] the account, KEYS[2] its sessions set; ARGV[1] the session key prefix.
var disableUser = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'disabled', '1')
for _, digest in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', ARGV[1] .. digest)
end
redis.call('DEL', KEYS[2])
return 1`)

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
	n, err := disableUser.Run(ctx, s.rdb, []string{s.keys.user(email), s.keys.userSessions(email)}, s.keys.sessionPrefix()).Int()
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return gateway.ErrNoSuchUser
	}
	return nil
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
