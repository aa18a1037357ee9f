package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"

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

var (
	//go:embed scripts/writeback.lua
	writeBackLua    string
	writeBackScript = redis.NewScript(writeBackLua)
)
