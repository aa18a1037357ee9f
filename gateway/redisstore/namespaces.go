package redisstore

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// eachPrimary runs fn on the Redis itself, or on every primary of a Redis
// Cluster at once: what walks the keyspace (SCAN) sees one node's keys
// only.
func eachPrimary(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, redis.Cmdable) error) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return fn(ctx, node) })
	}
	return fn(ctx, rdb)
}

// scanBudget bounds how many keys Namespaces looks at: enough for any
// Redis a person points a CLI tool at by mistake, and quick.
const scanBudget = 200_000

// Namespaces are the namespaces whose keys the Redis holds (the hash tags
// of Signpost's keys, {signpost}:… and the like), sorted, as far as the
// first scanBudget keys show; for an operator's tool that found nothing,
// to say where Signpost's data is. Only the tags are read, never a value.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	var mu sync.Mutex
	seen := map[string]bool{}
	err := eachPrimary(ctx, s.rdb, func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for looked := 0; looked < scanBudget; {
			keys, next, err := node.Scan(ctx, cursor, "*{*}*", 1000).Result()
			if err != nil {
				return err
			}
			looked += 1000
			mu.Lock()
			for _, k := range keys {
				if ns, ok := hashTag(k); ok {
					seen[ns] = true
				}
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out, nil
}

// Namespace is the store's namespace.
func (s *Store) Namespace() string { return strings.Trim(s.keys.ns, "{}") }

// hashTag is a key's hash tag as Signpost writes it: {namespace}: at the
// start, or after redis_rate's "rate:".
func hashTag(key string) (string, bool) {
	key = strings.TrimPrefix(key, "rate:")
	if !strings.HasPrefix(key, "{") {
		return "", false
	}
	end := strings.Index(key, "}:")
	if end < 2 {
		return "", false
	}
	return key[1:end], true
}
