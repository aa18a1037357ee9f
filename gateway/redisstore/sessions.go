package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/signpost-health/signpost/gateway/account"
)

// StartSession keeps a signed-in browser's session under its token's
// digest; account.ErrNoSuchUser if the account is missing or disabled.
func (s *Store) StartSession(ctx context.Context, digest string, sess account.WebSession, idle, longest time.Duration) error {
	n, err := startSession.Run(ctx, s.rdb, []string{s.keys.user(sess.Email), s.keys.session(digest), s.keys.userSessions(sess.Email)},
		digest, sess.CSRF, sess.Created.UnixMilli(), idle.Milliseconds(), longest.Milliseconds(), sess.Email).Int()
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		return account.ErrNoSuchUser
	}
	return nil
}

// Session reads the session of a token's digest and keeps it alive; nil
// when there is none (expired, ended, or the account disabled). The session
// names its account, so the address is read first and the script checks
// the session still names it (session_touch.lua), reading again if not.
func (s *Store) Session(ctx context.Context, digest string, idle time.Duration) (*account.WebSession, error) {
	key := s.keys.session(digest)
	for attempt := 0; attempt < maxRereads; attempt++ {
		email, err := s.rdb.HGet(ctx, key, "email").Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, classify(err)
		}
		s.raced()
		reply, err := touchSession.Run(ctx, s.rdb, []string{key, s.keys.user(email)}, idle.Milliseconds(), email).StringSlice()
		if err != nil {
			return nil, classify(err)
		}
		switch reply[0] {
		case "ok":
			created, _ := strconv.ParseInt(reply[2], 10, 64)
			return &account.WebSession{CSRF: reply[1], Created: time.UnixMilli(created), Email: reply[3], ProviderID: reply[4]}, nil
		case "none":
			return nil, nil
		case "changed":
			continue
		default:
			return nil, fmt.Errorf("session_touch.lua: unexpected reply %v", reply[0])
		}
	}
	return nil, fmt.Errorf("reading a session: %w", ErrKeptChanging)
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
