package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// WriteBackState reads the state of one Task's write-back to one client.
func (s *Store) WriteBackState(ctx context.Context, client, taskID string) (gateway.WriteBackState, error) {
	var st gateway.WriteBackState
	b, err := s.rdb.HGet(ctx, s.keys.writeBack(client), taskID).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, nil
	}
	if err != nil {
		return st, classify(err)
	}
	return st, json.Unmarshal(b, &st)
}

// SetWriteBackState stores the state alone (the GP copy's id, as soon as it
// is known), leaving the job in hand.
func (s *Store) SetWriteBackState(ctx context.Context, client, taskID string, st gateway.WriteBackState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return classify(s.rdb.HSet(ctx, s.keys.writeBack(client), taskID, b).Err())
}

// SaveWriteBack stores the state and finishes the notify job together
// (writeback.lua), if the job is still this consumer's.
func (s *Store) SaveWriteBack(ctx context.Context, client, taskID string, st gateway.WriteBackState, job gateway.QueuedJob) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return classify(writeBackScript.Run(ctx, s.rdb, []string{s.keys.writeBack(client), s.keys.queue(gateway.QueueNotify)},
		taskID, b, gateway.WorkerGroup, job.Consumer, job.ID).Err())
}

// LockWriteBack takes the lease of one Task's write-back to one client, so
// two workers (or two lanes) never write the same Task at once: two writers
// could put an older status after a newer one. The lease expires on its
// own should the worker die.
func (s *Store) LockWriteBack(ctx context.Context, client, taskID, token string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.writeBackLock(client, taskID), token, ttl).Result()
	return ok, classify(err)
}

// UnlockWriteBack gives the lease back, if it is still this token's.
func (s *Store) UnlockWriteBack(ctx context.Context, client, taskID, token string) error {
	return classify(unlockScript.Run(ctx, s.rdb, []string{s.keys.writeBackLock(client, taskID)}, token).Err())
}
