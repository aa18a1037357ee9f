package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// DisableEndpoint marks a provider's endpoint as gone (it answered 410), for
// every worker: deliveries to it are dead-lettered until an operator
// re-drives them, which enables it again.
func (s *Store) DisableEndpoint(ctx context.Context, providerID, reason string) error {
	return classify(s.rdb.HSet(ctx, s.keys.disabled(), providerID, reason).Err())
}

// EndpointDisabled returns why a provider's endpoint is disabled, or "".
func (s *Store) EndpointDisabled(ctx context.Context, providerID string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.keys.disabled(), providerID).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, classify(err)
}

// EnableEndpoint clears a provider's disabled mark.
func (s *Store) EnableEndpoint(ctx context.Context, providerID string) error {
	return classify(s.rdb.HDel(ctx, s.keys.disabled(), providerID).Err())
}
