package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"slices"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/gateway/auditevent"
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
	a, err := start(ctx, *configPath, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	cfg, store := a.cfg, a.store
	entries, err := store.AuditTail(ctx, *n)
	if err != nil {
		return fmt.Errorf("reading the audit stream from %s: %w", cfg.RedisTarget(), err)
	}
	if len(entries) == 0 {
		sayIfNoData(ctx, a, stderr)
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

// sayIfNoData says on stderr, for an operator's tool that found nothing,
// when the Redis it reads holds no Signpost data under its namespace at
// all, and which namespaces it does hold: otherwise a tool pointed at the
// wrong Redis or namespace (signpost demo's, say) prints nothing, as if
// there were nothing to print.
func sayIfNoData(ctx context.Context, a *app, stderr io.Writer) {
	found, err := a.store.Namespaces(ctx)
	ns := a.store.Namespace()
	if err != nil || slices.Contains(found, ns) {
		return
	}
	fmt.Fprintf(stderr, "signpost: the Redis at %s holds no Signpost data under the namespace %q", a.cfg.RedisTarget(), ns)
	switch {
	case len(found) == 1:
		fmt.Fprintf(stderr, "; it holds the namespace %q: set %s=%s (or redis_namespace in the configuration) to read it.\n",
			found[0], config.EnvRedisNamespace, found[0])
	case len(found) > 1:
		fmt.Fprintf(stderr, "; it holds the namespaces %q: set %s (or redis_namespace in the configuration) to read one.\n",
			found, config.EnvRedisNamespace)
	default:
		fmt.Fprintf(stderr, ". Is it the Redis your Signpost uses? Name that one with -config FILE or %s; signpost demo prints how to reach its data.\n",
			config.EnvRedisURL)
	}
}
