package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/gateway/auditevent"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/mappings"
)

// runAudit is `signpost audit tail [-n N] [-f]`: the operator's view of the
// audit trail, one AuditEvent (JSON) a line, oldest first.
func runAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: signpost audit tail [-config FILE] [-n N] [-f]"
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, use)
		return nil
	}
	if len(args) == 0 || args[0] != "tail" {
		return usageError{use}
	}
	fs := newFlags("audit tail", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default $SIGNPOST_CONFIG")
	n := fs.Int64("n", 20, "how many of the latest events to print")
	follow := fs.Bool("f", false, "keep printing new events as they are kept, until interrupted")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath, getenv, mappings.IsCategory)
	if err != nil {
		return err
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("redis_url %s: %w", cfg.RedisURLRedacted(), err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	store := redisstore.New(rdb, "signpost")
	entries, err := store.AuditTail(ctx, *n)
	if err != nil {
		return fmt.Errorf("reading the audit stream from %s: %w", cfg.RedisURLRedacted(), err)
	}
	last := "$"
	for _, e := range entries {
		fmt.Fprintf(stdout, "%s\n", auditevent.Render(e.Record, cfg.FHIRBase()))
		last = e.ID
	}
	for *follow {
		more, err := store.AuditFollow(ctx, last)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		for _, e := range more {
			fmt.Fprintf(stdout, "%s\n", auditevent.Render(e.Record, cfg.FHIRBase()))
			last = e.ID
		}
	}
	return nil
}
