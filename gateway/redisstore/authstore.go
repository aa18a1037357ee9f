package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway/auth"
)

// AuthStore keeps the authentication state every gateway instance must
// share: the jti of each accepted client assertion (so none is replayed,
// whichever instance sees it) and the access tokens issued (held under a
// digest of the token, never the token). It implements auth.ReplayCache and
// auth.TokenStore; both expire on their own.
type AuthStore struct {
	rdb  redis.UniversalClient
	keys keys
}

// AuthStore returns the authentication state kept in this store's Redis.
func (s *Store) AuthStore() *AuthStore { return &AuthStore{rdb: s.rdb, keys: s.keys} }

// Remember implements auth.ReplayCache: SET NX is atomic, so of two
// concurrent uses of one assertion exactly one is fresh.
func (a *AuthStore) Remember(ctx context.Context, clientID, jti string, until time.Time) (bool, error) {
	ok, err := a.rdb.SetArgs(ctx, a.keys.jti(clientID, jti), "1", redis.SetArgs{Mode: "NX", ExpireAt: until}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, classify(err)
	}
	return ok == "OK", nil
}

// Save implements auth.TokenStore.
func (a *AuthStore) Save(ctx context.Context, key string, g auth.Grant, ttl time.Duration) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return classify(a.rdb.Set(ctx, a.keys.token(key), b, ttl).Err())
}

// Load implements auth.TokenStore.
func (a *AuthStore) Load(ctx context.Context, key string) (*auth.Grant, error) {
	b, err := a.rdb.Get(ctx, a.keys.token(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	var g auth.Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, err
	}
	return &g, nil
}
