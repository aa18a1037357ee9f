package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/delivery"
	"github.com/signpost-health/signpost/gateway/notify"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/gateway/webhook"
	"github.com/signpost-health/signpost/gateway/worker"
)

// newWorker builds the delivery worker from the providers' delivery
// settings; getenv reads a bars provider's bearer token.
func newWorker(a *app, getenv func(string) string) (*worker.Worker, error) {
	endpoints := map[string]worker.Endpoint{}
	for _, p := range a.cfg.Providers {
		ep := worker.Endpoint{Name: p.DisplayName(), Kind: string(p.Delivery.Kind), URL: p.Delivery.URL, Full: p.Delivery.Payload == config.PayloadFull}
		if p.Delivery.Kind == config.DeliveryBars {
			ep.URL, ep.Token = endpoint(p.Delivery.URL, p.Delivery.BearerTokenEnv, getenv)
		}
		for _, s := range append([]string{p.Delivery.Secret}, p.Delivery.RotatingSecrets...) {
			if s == "" {
				continue
			}
			secret, err := webhook.ParseSecret(s)
			if err != nil {
				return nil, fmt.Errorf("providers %s: delivery secrets: %w", p.ID, err)
			}
			ep.Secrets = append(ep.Secrets, secret)
		}
		endpoints[p.ID] = ep
	}
	// A provider's lane has up to worker.DefaultPerProvider sends in
	// flight, each on a connection of its own; keeping that many idle
	// between them spares a provider the reconnections (measured: about
	// one delivery in five opened a connection with 8 kept).
	client := outbound.NewClient(outbound.Options{Allow: a.cfg.OutboundAllow, Timeout: a.cfg.DeliveryTimeout,
		IdlePerHost: worker.DefaultPerProvider})
	sender := webhook.NewSender(client, time.Now)
	sender.Permanent = func(err error) bool { return errors.Is(err, outbound.ErrForbiddenAddress) }
	q := a.store.Queues(gateway.QueueDelivery)
	return worker.New(worker.Options{
		Queue: q,
		Handler: &worker.Deliveries{Queue: q, Domain: a.uc.Delivery, Switch: a.store, Sender: sender,
			Endpoints: endpoints, Retry: a.cfg.DeliveryRetry, Log: a.log, Metrics: a.metrics, Audit: a.store},
		Consumer:    consumerName(),
		ReclaimIdle: 6 * a.cfg.DeliveryTimeout, // well above the slowest send
		Log:         a.log,
		PerProvider: worker.DeliveryLane, // DefaultPerProvider sending, as many again in Redis
	}), nil
}

// newWorkers builds every worker a process runs: deliveries to providers
// and write-backs to GP systems.
func newWorkers(a *app, getenv func(string) string) ([]*worker.Worker, error) {
	d, err := newWorker(a, getenv)
	if err != nil {
		return nil, err
	}
	return []*worker.Worker{d, newWriteBacks(a, getenv), newSubscriptionWorker(a)}, nil
}

// newSubscriptionWorker notifies subscribers (R5 Backport rest-hooks).
func newSubscriptionWorker(a *app) *worker.Worker {
	clients := make([]string, 0, len(a.cfg.Clients))
	for _, c := range a.cfg.Clients {
		clients = append(clients, c.ID)
	}
	q := a.store.Queues(gateway.QueueSubscription)
	// outbound_allow only for the origins registered for a GP system:
	// any other endpoint is the client's choice, public addresses only.
	chosen, registered := notify.SubscriberClients(outbound.Options{Allow: a.cfg.OutboundAllow, Timeout: a.cfg.DeliveryTimeout})
	return worker.New(worker.Options{
		Queue: q,
		Handler: &worker.Subscriptions{Queue: q, Domain: a.uc.Subscriptions, Store: a.store, Clients: clients,
			Client: chosen, Registered: registered,
			Retry: a.cfg.DeliveryRetry, Log: a.log, Metrics: a.metrics, Audit: a.store},
		Consumer:    consumerName(),
		ReclaimIdle: 6 * a.cfg.DeliveryTimeout,
		Log:         a.log,
		PerProvider: 1,    // one job at a time per GP system keeps each subscription's events in order,
		LaneDepth:   4096, // so a burst of changes waits in the lane rather than a second out of it
	})
}

// endpoint is a GP system's configured base, without a trailing slash, and
// the bearer token its environment variable holds ("" when none is named).
func endpoint(base, tokenEnv string, getenv func(string) string) (string, string) {
	token := ""
	if tokenEnv != "" {
		token = getenv(tokenEnv)
	}
	return strings.TrimSuffix(base, "/"), token
}

// runWorkers runs workers until ctx ends, and returns the first error.
func runWorkers(ctx context.Context, workers []*worker.Worker) error {
	errs := make(chan error, len(workers))
	for _, w := range workers {
		go func() { errs <- w.Run(ctx) }()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// newWriteBacks builds the worker that writes Task changes back to the GP
// systems that have a write-back target (clients[].notify), and answers
// BaRS senders at their endpoint (clients[].bars).
func newWriteBacks(a *app, getenv func(string) string) *worker.Worker {
	// A GP system's lane has as many write-backs in flight as a provider's
	// has deliveries (newWorker).
	client := outbound.NewClient(outbound.Options{Allow: a.cfg.OutboundAllow, Timeout: a.cfg.DeliveryTimeout,
		IdlePerHost: worker.DefaultPerProvider})
	targets := map[string]*notify.GPServer{}
	for _, c := range a.cfg.Clients {
		if c.WritesBack() {
			base, token := endpoint(c.Notify.FHIRBase, c.Notify.BearerTokenEnv, getenv)
			targets[c.ID] = &notify.GPServer{Base: base, Token: token, Client: client}
		}
	}
	// BaRS responses share the notify queue (queued with each Task change)
	// and the outbound client, so they are bound by outbound_allow too.
	answers := map[string]*notify.BarsEndpoint{}
	for _, c := range a.cfg.Clients {
		if c.Bars != nil && c.Bars.Endpoint != "" {
			base, token := endpoint(c.Bars.Endpoint, c.Bars.BearerTokenEnv, getenv)
			answers[c.ID] = &notify.BarsEndpoint{Base: base, Token: token, Client: client}
		}
	}
	q := a.store.Queues(gateway.QueueNotify)
	return worker.New(worker.Options{
		Queue: q,
		Handler: &worker.WriteBacks{Queue: q, Domain: a.uc.WriteBack, State: a.store, Targets: targets,
			Retry: a.cfg.DeliveryRetry, Log: a.log, Metrics: a.metrics, Audit: a.store,
			Answers: &worker.BarsResponses{Queue: q, Domain: a.uc.WriteBack, Targets: answers,
				Retry: a.cfg.DeliveryRetry, Log: a.log, Audit: a.store, Metrics: a.metrics}},
		Consumer:    consumerName(),
		ReclaimIdle: 6 * a.cfg.DeliveryTimeout,
		Log:         a.log,
	})
}

// consumerName names this process in the consumer groups: unique, so a
// restarted process is a new consumer and its predecessor's jobs are reclaimed.
func consumerName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), gateway.NewID()[:8])
}

// runWorker is `signpost worker`: the delivery workers alone, to scale
// apart from the API.
func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("worker", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default $SIGNPOST_CONFIG")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a, err := start(ctx, *configPath, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	scopePatients(ctx, a.store, a.log)
	workers, err := newWorkers(a, getenv)
	if err != nil {
		return err
	}
	// The workers' own metrics (jobs, attempts, lag), on metrics_listen.
	metricsSrv, err := serveMetrics(a.cfg, a.metrics, stdout, a.log)
	if err != nil {
		return err
	}
	if metricsSrv != nil {
		defer metricsSrv.Close()
	}
	fmt.Fprintf(stdout, "Signpost %s worker delivering for %d providers\n", buildVersion(), len(a.cfg.Providers))
	go watchRedisMemory(ctx, a.store.Memory, a.log, memoryEvery)
	go keepRetention(ctx, a.store, a.cfg.Retention, a.log)
	return runWorkers(ctx, workers)
}

// runDLQ is `signpost dlq list` and `signpost dlq replay ID...|-all`.
func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: signpost dlq list | signpost dlq replay ID... | signpost dlq replay -all"
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, use)
		return nil
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return usageError{use}
	}
	fs := newFlags("dlq "+args[0], stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default $SIGNPOST_CONFIG")
	all := fs.Bool("all", false, "replay: every dead letter")
	if err := fs.Parse(args[1:]); err != nil {
		return flagError(err)
	}
	a, err := start(ctx, *configPath, getenv, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	dlq := a.store.Queues(gateway.QueueDeadLetter)
	entries, err := dlq.List(ctx)
	if err != nil {
		return err
	}
	if args[0] == "list" {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFAILED\tPROVIDER\tEVENT\tTASK\tREASON")
		for _, e := range entries {
			d := queue.ReadDeadLetter(e)
			when := ""
			if !d.FailedAt.IsZero() {
				when = d.FailedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Name(), when, d.Provider, d.Event, d.TaskID, d.Reason)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d dead letters\n", len(entries))
		if len(entries) == 0 {
			sayIfNoData(ctx, a, stderr)
		}
		return nil
	}
	want := map[string]bool{}
	for _, id := range fs.Args() {
		want[id] = true
	}
	if !*all && len(want) == 0 {
		return usageError{"dlq replay: name the dead letters (IDs from dlq list) or give -all"}
	}
	replayed := 0
	for _, e := range entries {
		name := e.Name() // the entry id, after its partition's prefix when the store spreads
		if !*all && !want[name] {
			continue
		}
		delete(want, name)
		d := queue.ReadDeadLetter(e)
		if d.Event == queue.EventTaskChanged || d.Event == queue.EventBarsResponse {
			// A write-back or a BaRS response: queued again as it was, for
			// the GP system (a response carries the same message id again).
			if _, err := a.store.Queues(gateway.QueueNotify).Add(ctx, e.Place, d.Replayed()); err != nil {
				return err
			}
			if err := dlq.Remove(ctx, e); err != nil {
				return err
			}
			replayed++
			what := "write-back"
			if d.Event == queue.EventBarsResponse {
				what = "BaRS response"
			}
			fmt.Fprintf(stdout, "replayed %s (%s of task %s to %s)\n", name, what, d.TaskID, d.Client)
			continue
		}
		// A provider whose endpoint was disabled (410) is enabled again:
		// re-driving is the operator saying it is fixed.
		if err := a.store.EnableEndpoint(ctx, d.Provider); err != nil {
			return err
		}
		if err := a.uc.Delivery.Redrive(ctx, e); err != nil {
			if errors.Is(err, delivery.ErrMovedOn) || errors.Is(err, delivery.ErrAlreadyRedriven) {
				fmt.Fprintf(stdout, "not replayed %s: %v\n", name, err)
				continue
			}
			return fmt.Errorf("replaying %s: %w", name, err)
		}
		replayed++
		fmt.Fprintf(stdout, "replayed %s (task %s to %s)\n", name, d.TaskID, d.Provider)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for id := range want {
			missing = append(missing, id)
		}
		return fmt.Errorf("no dead letter with id %s", strings.Join(missing, ", "))
	}
	fmt.Fprintf(stdout, "%d replayed\n", replayed)
	return nil
}
