package redisstore

import (
	"context"
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

// SaveWriteBack stores the state and finishes the notify job together.
func (s *Store) SaveWriteBack(ctx context.Context, client, taskID string, st gateway.WriteBackState, job string) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	stream := s.keys.queue(gateway.QueueNotify)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.keys.writeBack(client), taskID, b)
	pipe.XAck(ctx, stream, gateway.WorkerGroup, job)
	pipe.XDel(ctx, stream, job)
	_, err = pipe.Exec(ctx)
	return classify(err)
}
