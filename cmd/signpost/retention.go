package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/retention"
)

// Retention runs in serve and worker every retentionEvery, pausing
// retentionPause between batches so intake keeps Redis to itself most of
// the time; `signpost retention` runs it once, now.
const (
	retentionEvery = 5 * time.Minute
	retentionPause = 200 * time.Millisecond
	// retentionShare is the most of the time the timer's runs work: a
	// fifth, which still removes tens of referrals a second (measured:
	// BenchmarkIntakeLatencyWhileRetentionRuns), far beyond the rate they
	// close.
	retentionShare = 0.2
)

func retentionRunner(store *redisstore.Store, cfg config.Retention) *retention.Runner {
	return &retention.Runner{Store: store, Policy: retention.Policy{ClosedAfter: cfg.ClosedAfter, AuditAfter: cfg.AuditAfter},
		Pause: retentionPause, Share: retentionShare}
}

// keepRetention applies the retention policy on a timer until ctx ends;
// nothing when none is configured.
func keepRetention(ctx context.Context, store *redisstore.Store, cfg config.Retention, log *slog.Logger) {
	if cfg.ClosedAfter == 0 && cfg.AuditAfter == 0 {
		return
	}
	runner := retentionRunner(store, cfg)
	every(ctx, retentionEvery, func() bool {
		r, err := runner.Run(ctx, false)
		if r.SetAside > 0 {
			// A count only: the records name Patients.
			log.WarnContext(ctx, "retention set aside removals it cannot finish; look at each partition's leftovers set aside (HGETALL <tag>:left:aside)",
				"set_aside", r.SetAside)
		}
		switch {
		case err != nil:
			log.WarnContext(ctx, "retention run failed; the next one tries again", "err", err)
		case r.Removed > 0 || r.AuditTrimmed > 0:
			log.InfoContext(ctx, "retention", "referrals_removed", r.Removed, "bytes", r.Bytes, "held", r.Held,
				"queued", r.Queued, "changed", r.Changed, "audit_trimmed", r.AuditTrimmed)
		}
		return false
	})
}

// runRetention is `signpost retention [-dry-run]`.
func runRetention(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("retention", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default $SIGNPOST_CONFIG")
	dry := fs.Bool("dry-run", false, "say what would be removed and the Redis memory it holds; remove nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a, err := start(ctx, *configPath, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	if a.cfg.Retention.ClosedAfter == 0 && a.cfg.Retention.AuditAfter == 0 {
		fmt.Fprintln(stdout, "no retention configured (retention.closed_after, retention.audit_after): everything is kept")
		return nil
	}
	run := retentionRunner(a.store, a.cfg.Retention)
	run.Pause, run.Share = 0, 0 // asked for now: as fast as it goes
	r, err := run.Run(ctx, *dry)
	if err != nil {
		return err
	}
	verb := "removed"
	if *dry {
		verb = "would remove"
	}
	fmt.Fprintf(stdout, "%s %d referrals (about %d bytes of Redis memory); kept: %d on legal hold, %d with jobs waiting, %d changed meanwhile, %d with more supporting resources than a removal takes\n",
		verb, r.Removed, r.Bytes, r.Held, r.Queued, r.Changed, r.TooLarge)
	if r.Finished > 0 {
		fmt.Fprintf(stdout, "finished %d removals an earlier run left half done\n", r.Finished)
	}
	if r.SetAside > 0 {
		fmt.Fprintf(stdout, "set aside %d removals an earlier run left half done that cannot be finished (each partition's <tag>:left:aside)\n", r.SetAside)
	}
	if !*dry && r.AuditTrimmed > 0 {
		fmt.Fprintf(stdout, "trimmed %d audit records\n", r.AuditTrimmed)
	}
	return nil
}
