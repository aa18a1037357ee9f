package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// writeBackOf is the hash of what was written back to client, among which
// the Task's state is kept: the one in the Task's partition, beside the
// notify jobs of the Task's changes, so that recording a write-back and
// finishing its job stay one step (writeback.lua) on a Redis Cluster too,
// and a referral removed whole takes its write-back state with it. (A
// store that does not spread keeps every Task, and so every state, in
// legacy: under the plain tag, as before partitions.)
func (s *Store) writeBackOf(client, taskID string) string {
	return s.in(s.partitionOf(taskID)).writeBack(client)
}

// WriteBackState reads the state of one Task's write-back to one client.
func (s *Store) WriteBackState(ctx context.Context, client, taskID string) (gateway.WriteBackState, error) {
	var st gateway.WriteBackState
	b, err := s.rdb.HGet(ctx, s.writeBackOf(client, taskID), taskID).Bytes()
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
	return classify(s.rdb.HSet(ctx, s.writeBackOf(client, taskID), taskID, b).Err())
}

// SaveWriteBack stores the state and finishes the notify job together
// (writeback.lua), if the job is still this consumer's. The job is queued
// by the commit of the Task's change, in the Task's partition, where the
// state is kept (writeBackOf): one script, one slot. A job re-driven to
// another partition (never so today) is finished in two steps, the state
// first: a crash between them leaves the job pending, and its retry finds
// the state recorded, so it writes nothing to the GP system again.
func (s *Store) SaveWriteBack(ctx context.Context, client, taskID string, st gateway.WriteBackState, job gateway.QueuedJob) error {
	state := s.writeBackOf(client, taskID)
	jobs := s.queueIn(partitionOfPlace(job.Place), gateway.QueueNotify)
	if !sameSlot(state, jobs.stream) {
		if err := s.SetWriteBackState(ctx, client, taskID, st); err != nil {
			return err
		}
		return jobs.Ack(ctx, job)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return classify(writeBackScript.Run(ctx, s.rdb, []string{state, jobs.stream},
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
