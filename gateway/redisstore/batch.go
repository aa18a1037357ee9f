package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signpost-health/signpost/gateway"
)

// tracer is the store's tracer from the tracer provider installed now (not
// kept: a tracer taken before any provider is installed stays tied to the
// first one ever installed, even after it is shut down).
func tracer() trace.Tracer {
	return otel.Tracer("github.com/signpost-health/signpost/gateway/redisstore")
}

// batcher sends the writes of concurrent requests to Redis together, in
// one pipeline: group commit. Each caller still waits for its own reply, so
// nothing is answered before Redis has applied it, but under load one round
// trip — one write and one read on each side, one wake-up of Redis's event
// loop — carries many requests' commits and audit records instead of one.
// The profile of intake showed those per-round-trip costs (system calls on
// both sides, go-redis's per-command connection handling) as a large share
// of the work once the commit itself was lean.
//
// At most maxFlushers pipelines are in flight at once. The first waiting
// command starts a flusher; while it waits on Redis, later commands queue
// and leave together with the next one. With no load a command goes out at
// once, alone, as it would without the batcher.
type batcher struct {
	rdb redis.UniversalClient
	// replicas, above 0, is how many replicas must have each batch before
	// its callers are answered (WAIT, on the batch's own connection, so it
	// covers exactly the batch's writes), within replicaWait.
	replicas    int
	replicaWait time.Duration

	mu       sync.Mutex
	waiting  []*batched
	flushers int
	// loads loads a script Redis answered NOSCRIPT for (the store's, shared).
	loads *scriptLoader
}

type batched struct {
	ctx  context.Context
	cmd  redis.Cmder
	done chan struct{}
}

const (
	// maxFlushers lets one batch be built and sent while another is in
	// Redis; more would split the load into smaller batches for no gain on
	// a Redis that runs commands on one thread.
	maxFlushers = 2
	// maxBatch bounds one pipeline, so a burst is not one huge reply.
	maxBatch = 256
)

// do runs cmd in the next pipeline and waits for its reply. A caller whose
// context ends first gets its error; if its command was already sent, it
// may still apply, exactly as when a reply is lost on the way back (which
// is why every write carries an idempotency key or a commit token).
func (b *batcher) do(ctx context.Context, cmd redis.Cmder) (err error) {
	// The request's trace shows its own wait for Redis; the shared pipeline
	// is traced (by the client's hooks) under the first caller in it.
	ctx, span := tracer().Start(ctx, cmd.Name(), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "redis"), attribute.String("db.operation", cmd.Name())))
	defer func() {
		if err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
			span.SetStatus(codes.Error, "redis command failed")
		}
		span.End()
	}()
	w := &batched{ctx: ctx, cmd: cmd, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, w)
	if b.flushers < maxFlushers {
		b.flushers++
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-w.done:
		return cmd.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runScript runs script in the next pipeline. A Redis that has lost its
// script cache (a restart, SCRIPT FLUSH) answers NOSCRIPT without running
// anything; the script is then loaded (once for all the callers that met
// it together: scriptLoader) and sent again, in a batch like any other, so
// that waiting for replicas holds for it too. On an error the command is
// not to be read: a caller whose context ended may leave it in flight.
func (b *batcher) runScript(ctx context.Context, script *redis.Script, keys []string, args []any) (*redis.Cmd, error) {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	sent := time.Now()
	err := b.do(ctx, cmd)
	// Twice at most: the second time (the cache flushed again after a
	// load this caller counted on) the script is loaded whatever others did.
	for again := 0; again < 2 && redis.HasErrorPrefix(err, "NOSCRIPT"); again++ {
		if err := b.loads.loadAfter(ctx, b.rdb, script, sent); err != nil {
			return nil, classify(err)
		}
		cmd = redis.NewCmd(ctx, cmdArgs...)
		sent = time.Now()
		err = b.do(ctx, cmd)
	}
	return cmd, err
}

// scriptLoader loads the scripts Redis answered NOSCRIPT for (a restart,
// SCRIPT FLUSH), once for all the callers answered together rather than
// once each: after a restart at full load, every caller of a pipeline
// meets it at once.
type scriptLoader struct {
	mu sync.Mutex
	// began says when each script's last load began.
	began map[string]time.Time
}

// loadAfter loads script (through rdb: on a cluster, on every primary)
// unless a load of it began after sent, when its caller's command that was
// answered NOSCRIPT was sent: Redis ran that load after the command, so the
// script is there now.
func (l *scriptLoader) loadAfter(ctx context.Context, rdb redis.Scripter, script *redis.Script, sent time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.began[script.Hash()].After(sent) {
		return nil
	}
	began := time.Now()
	if err := script.Load(ctx, rdb).Err(); err != nil {
		return err // the next caller tries again
	}
	if l.began == nil {
		l.began = map[string]time.Time{}
	}
	l.began[script.Hash()] = began
	return nil
}

// flush sends what is waiting, then what queued meanwhile, until nothing is.
func (b *batcher) flush() {
	for {
		b.mu.Lock()
		n := min(len(b.waiting), maxBatch)
		if n == 0 {
			b.flushers--
			b.mu.Unlock()
			return
		}
		batch := make([]*batched, n)
		copy(batch, b.waiting)
		b.waiting = append(b.waiting[:0], b.waiting[n:]...)
		b.mu.Unlock()
		b.send(batch)
	}
}

func (b *batcher) send(batch []*batched) {
	// A command whose caller has gone is not sent at all.
	live := make([]*batched, 0, len(batch))
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.cmd.SetErr(err)
			close(w.done)
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	// The pipeline is the callers' shared work, so no caller's going may
	// cancel it (the client's read and write timeouts bound it); it keeps
	// the first caller's values, so that its trace holds the pipeline.
	ctx := context.WithoutCancel(live[0].ctx)
	if cc, ok := b.rdb.(*redis.ClusterClient); ok && b.replicas > 0 {
		b.sendPerNode(ctx, cc, live)
	} else {
		b.sendPipeline(ctx, b.rdb, live)
	}
	for _, w := range live {
		close(w.done)
	}
}

// sendPerNode sends a batch to a Redis Cluster when changes must reach
// replicas. WAIT counts the replicas that have the writes of its own
// connection on its own node, and has no key a cluster client could route
// it by (go-redis would send it to any node); so the batch is split by the
// primary serving each command's slot, and each part is one pipeline, on
// one connection to that primary, ending with its own WAIT. A command whose
// slot has just moved is refused there (MOVED) without running, and its
// caller is answered unavailable, to send again once the client has
// reread the slots; so is every command of a part whose primary is lost.
func (b *batcher) sendPerNode(ctx context.Context, cc *redis.ClusterClient, live []*batched) {
	parts := map[*redis.Client][]*batched{}
	for _, w := range live {
		node, err := cc.MasterForKey(ctx, firstKey(w.cmd))
		if err != nil {
			w.cmd.SetErr(err)
			continue
		}
		parts[node] = append(parts[node], w)
	}
	var sent sync.WaitGroup
	for node, part := range parts {
		sent.Go(func() { b.sendPipeline(ctx, node, part) })
	}
	sent.Wait()
	for _, w := range live {
		if nodeLost(w.cmd.Err()) {
			cc.ReloadState(ctx)
			return
		}
	}
}

// firstKey is the key a batched command (a script with keys, XADD) is
// routed by.
func firstKey(cmd redis.Cmder) string {
	args := cmd.Args()
	i := 1
	if name := cmd.Name(); name == "evalsha" || name == "eval" {
		i = 3
	}
	if i >= len(args) {
		return ""
	}
	k, _ := args[i].(string)
	return k
}

// sendPipeline sends commands in one pipeline of rdb, followed, when
// changes must reach replicas, by WAIT.
func (b *batcher) sendPipeline(ctx context.Context, rdb redis.Cmdable, live []*batched) {
	pipe := rdb.Pipeline()
	for _, w := range live {
		_ = pipe.Process(ctx, w.cmd)
	}
	var wait *redis.Cmd
	if b.replicas > 0 {
		wait = pipe.Do(ctx, "wait", b.replicas, b.replicaWait.Milliseconds())
	}
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	if wait != nil {
		if got, err := wait.Int64(); err != nil || got < int64(b.replicas) {
			// Applied on the primary but not yet on enough replicas: not
			// acknowledged, so a failover now cannot lose what a caller was
			// told is stored. The caller retries; its idempotency key makes
			// the retry find what this batch wrote.
			notYet := fmt.Errorf("%w: the change reached %d of the %d replicas redis_wait_replicas asks for within %s", gateway.ErrUnavailable, got, b.replicas, b.replicaWait)
			for _, w := range live {
				if w.cmd.Err() == nil {
					w.cmd.SetErr(notYet)
				}
			}
		}
	}
}
