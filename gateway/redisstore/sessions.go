package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// startSession keeps a new session, only for an account that exists and is
// not disabled at this moment (so a sign-in racing a disable cannot win).
// KEYS[1] the account, KEYS[2] the session, KEYS[3] the account's sessions
// set. ARGV[1] digest, ARGV[2] csrf, ARGV[3] created ms, ARGV[4] idle ms,
// ARGV[5] the longest a session lives, ms, ARGV[6] the account's address.
// Returns 1, or 0 for no account.
var startSession = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'disabled') ~= '0' then return 0 end
redis.call('HSET', KEYS[2], 'email', ARGV[6], 'csrf', ARGV[2], 'created', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 1`)

// touchSession reads a session and keeps it alive for another idle period;
// a session whose account is gone or disabled is ended instead. The
// account's key is built here from the session's address (it shares the
// hash tag, so the slot): the cookie carries nothing but the token.
// KEYS[1] the session. ARGV[1] idle ms, ARGV[2] the account key prefix.
// Returns {csrf, created ms, email, provider}, or false.
var touchSession = redis.NewScript(`
local s = redis.call('HMGET', KEYS[1], 'csrf', 'created', 'email')
if not s[1] then return false end
local u = redis.call('HMGET', ARGV[2] .. s[3], 'disabled', 'provider')
if u[1] ~= '0' then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {s[1], s[2], s[3], u[2] or ''}`)

// StartSession keeps a signed-in browser's session under its token's
// digest; gateway.ErrNoSuchUser if the account is missing or disabled.
func (s *Store) StartSession(ctx context.Context, digest string, sess gateway.WebSession, idle, longest time.Duration) error {
	n, err := startSession.Run(ctx, s.rdb, []string{s.keys.user(sess.Email), s.keys.session(digest), s.keys.userSessions(sess.Email)},
		digest, sess.CSRF, sess.Created.UnixMilli(), idle.Milliseconds(), longest.Milliseconds(), sess.Email).Int()
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return gateway.ErrNoSuchUser
	}
	return nil
}

// Session reads the session of a token's digest and keeps it alive; nil
// when there is none (expired, ended, or the account disabled).
func (s *Store) Session(ctx context.Context, digest string, idle time.Duration) (*gateway.WebSession, error) {
	reply, err := touchSession.Run(ctx, s.rdb, []string{s.keys.session(digest)}, idle.Milliseconds(), s.keys.user("")).StringSlice()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	created, _ := strconv.ParseInt(reply[1], 10, 64)
	return &gateway.WebSession{CSRF: reply[0], Created: time.UnixMilli(created), Email: reply[2], ProviderID: reply[3]}, nil
}

// EndSession signs a browser out.
func (s *Store) EndSession(ctx context.Context, digest, email string) error {
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, s.keys.session(digest))
	pipe.SRem(ctx, s.keys.userSessions(email), digest)
	_, err := pipe.Exec(ctx)
	return classify(err)
}

// TrustDevice remembers, for ttl, that the browser holding a device token
// (by its digest) signed in to an account.
func (s *Store) TrustDevice(ctx context.Context, digest, email string, ttl time.Duration) error {
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.keys.device(digest), email, ttl)
	pipe.SAdd(ctx, s.keys.userDevices(email), digest)
	pipe.PExpire(ctx, s.keys.userDevices(email), ttl)
	_, err := pipe.Exec(ctx)
	return classify(err)
}

// DeviceAccount is the account a device token's digest signed in to, or "".
func (s *Store) DeviceAccount(ctx context.Context, digest string) (string, error) {
	email, err := s.rdb.Get(ctx, s.keys.device(digest)).Result()
	if err == redis.Nil {
		return "", nil
	}
	return email, classify(err)
}
