package redisstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// SaveJob stores an export job's state and when it may be swept (the
// export use case's JobStore).
func (s *Store) SaveJob(ctx context.Context, id string, state []byte, expires time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.keys.exportJob(id), state, 0)
		p.ZAdd(ctx, s.keys.exportExpiry(), redis.Z{Score: float64(expires.UnixMilli()), Member: id})
		return nil
	})
	return classify(err)
}

// UpdateJob stores an export job's new state only if the job is still
// held, and reports whether it was: a job cancelled (or swept) while it
// ran is not brought back by its runner's next heartbeat.
func (s *Store) UpdateJob(ctx context.Context, id string, state []byte, expires time.Time) (bool, error) {
	key := s.keys.exportJob(id)
	held := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, key).Result()
		if err != nil || n == 0 {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, state, 0)
			p.ZAdd(ctx, s.keys.exportExpiry(), redis.Z{Score: float64(expires.UnixMilli()), Member: id})
			return nil
		})
		held = err == nil
		return err
	}, key)
	if errors.Is(err, redis.TxFailedErr) {
		// Changed meanwhile: by a cancel (deleted) or a status request
		// that found the job stale (marked failed). Either way it is no
		// longer the runner's to write.
		return false, nil
	}
	return held, classify(err)
}

// LoadJob returns an export job's state, or gateway.ErrNotFound.
func (s *Store) LoadJob(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.keys.exportJob(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, gateway.ErrNotFound
	}
	return b, classify(err)
}

// DeleteJob forgets an export job.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.keys.exportJob(id))
		p.ZRem(ctx, s.keys.exportExpiry(), id)
		return nil
	})
	return classify(err)
}

// ExpiredJobs returns up to n export jobs whose sweep time has come.
func (s *Store) ExpiredJobs(ctx context.Context, now time.Time, n int) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.keys.exportExpiry(), &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(now.UnixMilli(), 10), Count: int64(n)}).Result()
	return ids, classify(err)
}
