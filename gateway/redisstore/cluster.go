package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// clusterReload is how often a cluster client rereads which node serves
// which slot while it is in use. go-redis's default is a minute, during
// which, after a failover, every command for the failed primary's slots
// would go on failing against a node that is gone. One CLUSTER SLOTS every
// two seconds is nothing to a cluster; and the client rereads at once on
// the first sign of a lost node (reloadOnLoss).
const clusterReload = 2 * time.Second

// workerReaders is the most connections one process's workers hold in
// blocking stream reads on a spreading store: a reader per partition,
// legacy too, for each queue the workers read (gateway.WorkerQueues).
// Each holds its connection for the whole of its wait, and
// on a cluster one node can serve a third of them or more, so every
// node's pool gets room for all of them on top of go-redis's default (10
// a CPU). Without it, 18 waiting readers left a 20-connection pool two
// for everything else, and /readyz timed out waiting for one.
const workerReaders = (partitions + 1) * len(gateway.WorkerQueues)

// NewClusterClient returns a client of a Redis Cluster set up for failover:
// it rereads the cluster's slots every clusterReload and as soon as a
// command meets a lost node or a cluster that is failing over, so that
// what fails during a failover (answered 503 with Retry-After, see
// classify) is only what was under way while it happened. watch, when not
// nil, is called with every node's client as it is made (the ClientLog's
// dial hook sees each node's outage and return).
func NewClusterClient(opt *redis.ClusterOptions, watch func(*redis.Client)) *redis.ClusterClient {
	if opt.ClusterStateReloadInterval == 0 {
		opt.ClusterStateReloadInterval = clusterReload
	}
	if opt.PoolSize == 0 {
		opt.PoolSize = 10*runtime.GOMAXPROCS(0) + workerReaders
	}
	if watch != nil {
		opt.NewClient = func(o *redis.Options) *redis.Client {
			c := redis.NewClient(o)
			watch(c)
			return c
		}
	}
	cc := redis.NewClusterClient(opt)
	cc.AddHook(reloadOnLoss{cc})
	return cc
}

// reloadOnLoss asks the cluster client to reread the slots when a command
// or pipeline fails in a way a failover causes.
type reloadOnLoss struct{ cc *redis.ClusterClient }

func (h reloadOnLoss) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnLoss) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if nodeLost(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnLoss) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if nodeLost(c.Err()) {
				h.cc.ReloadState(ctx)
				break
			}
		}
		if nodeLost(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

// nodeLost reports whether err is what a node that died or a cluster that
// is failing over answers: no connection, or the cluster's own refusals
// while it reassigns slots.
func nodeLost(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || redis.HasErrorPrefix(err, "CLUSTERDOWN") ||
		redis.HasErrorPrefix(err, "TRYAGAIN") || redis.HasErrorPrefix(err, "MOVED") ||
		redis.HasErrorPrefix(err, "READONLY")
}
