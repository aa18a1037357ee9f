package redisstore

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Memory is what Redis says of its memory (INFO memory).
type Memory struct {
	// Used is used_memory: what Redis's allocator holds for data and
	// overhead, in bytes.
	Used int64
	// Max is maxmemory: the limit Redis evicts or refuses writes at
	// (Signpost's Redis must refuse: maxmemory-policy noeviction); 0 when
	// none is set, which leaves the machine's memory as the limit.
	Max int64
}

// Share is Used as a fraction of Max (0 when no limit is set).
func (m Memory) Share() float64 {
	if m.Max <= 0 {
		return 0
	}
	return float64(m.Used) / float64(m.Max)
}

// Memory reads INFO memory. On a Redis Cluster it is the fullest
// primary's (the largest share of its maxmemory, or the most used where
// none has a limit): the first to refuse writes refuses the referrals
// whose keys it holds, so it is the one to watch.
//
// Not a sum over primaries, although a store that spreads referrals keeps
// them on every primary: what reads it are the memory gauges
// (signpost_redis_memory_used_bytes and _limit_bytes, one pair) and the
// warning at 80 % of the limit, and a sum (used over summed limits) would
// stay low while one primary refuses writes for every partition it holds.
// How much a cluster holds in all is the sum of its primaries' INFO; how
// much a referral takes is measured on one Redis (BENCHMARKS.md).
func (s *Store) Memory(ctx context.Context) (Memory, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		info, err := s.rdb.Info(ctx, "memory").Result()
		if err != nil {
			return Memory{}, classify(err)
		}
		return parseMemory(info), nil
	}
	var mu sync.Mutex
	var fullest Memory
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		info, err := node.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		m := parseMemory(info)
		mu.Lock()
		defer mu.Unlock()
		if m.Share() > fullest.Share() || (m.Share() == fullest.Share() && m.Used > fullest.Used) {
			fullest = m
		}
		return nil
	})
	if err != nil {
		return Memory{}, classify(err)
	}
	return fullest, nil
}

func parseMemory(info string) Memory {
	var m Memory
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "used_memory":
			m.Used = n
		case "maxmemory":
			m.Max = n
		}
	}
	return m
}
