package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/disclosures"
	"github.com/signpost-health/signpost/gateway/export"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/gateway/outbound"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/telemetry"
	"github.com/signpost-health/signpost/gateway/usecases"
	"github.com/signpost-health/signpost/gateway/web"
	"github.com/signpost-health/signpost/mappings"
)

// shutdownBudget is how long in-flight requests get to finish on SIGTERM.
const shutdownBudget = 10 * time.Second

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default $SIGNPOST_CONFIG, else built-in defaults")
	withWorkers := fs.Bool("workers", true, "also run the delivery workers (false: the API alone, with signpost worker run apart)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	app, err := start(ctx, *configPath, getenv, stderr)
	if err != nil {
		return err
	}
	defer app.close()
	stopProfile, err := cpuProfile(getenv(envCPUProfile))
	if err != nil {
		return err
	}
	defer stopProfile()
	return serveApp(ctx, app, *withWorkers, getenv, stdout, nil)
}

// envCPUProfile names a file the whole serve process's CPU profile is
// written to, from start to shutdown: for the benchmark harness, which
// profiles intake and delivery together (deploy/bench). Unset: none.
const envCPUProfile = "SIGNPOST_CPUPROFILE"

func cpuProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// serveApp serves the API (and the workers) of an assembled app until ctx
// ends, then shuts down in order. ready, if given, is told the address.
func serveApp(ctx context.Context, app *app, withWorkers bool, getenv func(string) string, stdout io.Writer, ready func(net.Addr)) error {
	cfg, store, uc, log := app.cfg, app.store, app.uc, app.log
	codes := app.codes
	scopePatients(ctx, store, log)
	authServer, err := newAuthServer(cfg, store, log)
	if err != nil {
		return err
	}
	perClient := limiter(cfg, store)
	api := httpapi.New(httpapi.Options{
		UseCases:       uc,
		PublicURL:      cfg.PublicURL,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Auth:           authServer,
		Metrics:        app.metrics,
		Traced:         app.traced,
		Limiter:        perClient,
		AddressLimiter: addressLimiter(cfg, store),
		Auditor:        store,
		Caller:         localCaller(cfg),
		Capability:     httpapi.CapabilityInfo{Version: buildVersion(), AuthMode: string(cfg.Auth.Mode)},
		Pages: web.New(web.Options{Portal: uc.Portal, Insights: uc.Insights, Accounts: store, Auditor: store, PublicURL: cfg.PublicURL, Logger: log,
			Limiter: store.Limiter(signInRate, signInBurst), ClientLimits: httpapi.ClientLimits(perClient)}),
		TrustedProxies: cfg.TrustedProxies,
		Logger:         log,
	})

	workers, err := newWorkers(app, getenv)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	metricsSrv, err := serveMetrics(cfg, app.metrics, stdout, log)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(stdout, "Signpost %s listening on http://%s (FHIR base %s)\n", buildVersion(), ln.Addr(), cfg.FHIRBase())
	if ready != nil {
		ready(ln.Addr())
	}
	log.Info("serving", "addr", ln.Addr().String(), "redis", cfg.RedisTarget(), "codes", codes.Len(), "providers", len(cfg.Providers))

	trimCtx, stopTrimming := context.WithCancel(ctx)
	defer stopTrimming()
	go keepAuditTrimmed(trimCtx, store, log)
	go watchRedisMemory(trimCtx, store.Memory, log, memoryEvery)
	go keepRetention(trimCtx, store, cfg.Retention, log)
	go every(trimCtx, exportSweepEvery, func() bool { uc.Export.Sweep(trimCtx); return false })

	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan error, 1)
	go func() {
		if !withWorkers {
			<-workerCtx.Done()
			workerDone <- nil
			return
		}
		workerDone <- runWorkers(workerCtx, workers)
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if metricsSrv != nil {
			metricsSrv.Close()
		}
		stopWorker()
		<-workerDone
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	// Shut down in order: stop taking requests and let those in flight
	// finish, then let the workers finish their sends, within the budget;
	// what is left stays queued for the next start or another worker.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(sctx)
	}
	// Exports still running stop here: their heartbeat goes stale and a
	// status request reports them failed, never complete.
	uc.Export.Stop()
	stopWorker()
	workerErr := <-workerDone
	_ = app.metrics.Shutdown(sctx) // last: telemetry of the shutdown itself
	if shutdownErr != nil && !errors.Is(shutdownErr, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	return workerErr
}

// app is what serve, worker and the operator commands share.
type app struct {
	metrics *telemetry.Metrics
	cfg     config.Config
	codes   *mappings.Table
	rdb     redis.UniversalClient
	store   *redisstore.Store
	uc      *usecases.Set
	log     *slog.Logger
	// traced: spans are exported (the standard OTEL_* variables ask).
	traced bool
	// stopTracing flushes and stops tracing; nil where none was started.
	stopTracing func(context.Context) error
	// clientLog carries the Redis client's own lines into log until close.
	clientLog *redisstore.ClientLog
}

// close flushes the telemetry not yet exported and closes Redis.
func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.metrics.Shutdown(ctx) // serve has already; the worker has not
	if a.stopTracing != nil {
		if err := a.stopTracing(ctx); err != nil {
			a.log.Warn("flushing traces", "error", err)
		}
	}
	a.rdb.Close()
	a.clientLog.Close()
}

// start reads the configuration and connects Redis and the domain: the
// common start of every command that runs Signpost.
func start(ctx context.Context, configPath string, getenv func(string) string, stderr io.Writer) (*app, error) {
	cfg, codes, err := loadConfig(configPath, getenv)
	if err != nil {
		return nil, err
	}
	// A key set but too short stops start (the message never holds it);
	// no key only refuses de-identified exports.
	if _, err := export.ParsePseudonymKey(getenv(cfg.Export.PseudonymKeyEnv)); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Export.PseudonymKeyEnv, err)
	}
	stopTracing, err := telemetry.StartTracing(ctx, getenv, "signpost", buildVersion())
	if err != nil {
		return nil, err
	}
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(stderr, nil)))
	// The Redis client's own lines go through the JSON log, thinned.
	clientLog := redisstore.RouteClientLogs(log)
	rdb, err := connectRedis(ctx, cfg, log, clientLog, stderr)
	if err != nil {
		clientLog.Close()
		return nil, err
	}
	if unchecked := cfg.UncheckedProviders(); len(unchecked) > 0 {
		// Kept working as before consent was checked, but said at every start.
		log.Warn("referrals go to these providers outside the NHS with no consent checked; set consent: (required or attested) for them or for the deployment",
			"providers", strings.Join(unchecked, ","))
	}
	a := assemble(cfg, codes, rdb, log, getenv)
	a.stopTracing, a.clientLog = stopTracing, clientLog
	return a, nil
}

// assemble wires the store and the domain over a connected Redis, its keys
// under cfg.RedisNamespace.
func assemble(cfg config.Config, codes *mappings.Table, rdb redis.UniversalClient, log *slog.Logger, getenv func(string) string) *app {
	// Instrumented only when traces are exported: the hooks cost CPU on
	// every command. Redis spans name the command, never its arguments:
	// they hold resources and identifiers.
	traced, _ := telemetry.TracingEnabled(getenv) // a bad setting stopped start already
	if traced {
		if err := redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
			log.Error("redis tracing unavailable", "error", err)
		}
	}
	measures, _ := loadMeasures(cfg) // loadConfig checked them; nil falls back to the built-in set
	store := redisstore.New(rdb, cfg.RedisNamespace)
	if cfg.SpreadReferrals() {
		store.SpreadReferrals() // a cluster's primaries share the referrals
	}
	store.WaitForReplicas(cfg.RedisWaitReplicas, cfg.RedisWaitTimeout)
	store.SetAuditMax(cfg.Audit.MaxEntries)
	uc := usecases.New(gateway.Options{
		Store:           store,
		Codes:           codes,
		Providers:       providers(cfg),
		Organizations:   cfg.OrganizationNames(),
		TriageUnmapped:  cfg.Unmapped == config.UnmappedTriage,
		StrictNHSNumber: cfg.NHSNumber == config.NHSNumberStrict,
		FHIRBase:        cfg.FHIRBase(),
		// Modifier extensions no receiver understands are refused at the door.
		UnderstoodModifiers: cfg.UnderstoodModifierExtensions,
		MaxSubscriptions:    cfg.SubscriptionsPerClient,
		SubscriberOrigins:   gateway.NewOrigins(cfg.SubscriptionOrigins()),
		Measures:            measures,
		MeasureRules:        measureRules(cfg),
		WriteBackClients:    cfg.WriteBackClients(),
	})
	pseudonymKey, _ := export.ParsePseudonymKey(getenv(cfg.Export.PseudonymKeyEnv)) // start checked it
	uc.Disclosures = disclosures.New(uc.Core, store)
	uc.Export = export.New(uc.Core, export.Options{Jobs: store, Dir: cfg.Export.Dir, Keep: cfg.Export.Keep, PseudonymKey: pseudonymKey,
		PatientDates: export.PatientDates(cfg.Export.BirthDate), Logger: log})
	metrics, err := telemetry.New(getenv)
	if err != nil {
		log.Error("metrics unavailable", "error", err) // Signpost runs on without them
		metrics = nil
	}
	_ = metrics.ObserveQueues(func(ctx context.Context) ([]telemetry.QueueStats, error) {
		var out []telemetry.QueueStats
		for _, name := range []string{gateway.QueueDelivery, gateway.QueueNotify, gateway.QueueSubscription, gateway.QueueDeadLetter} {
			w, d, p, oldest, err := store.Queues(name).Stats(ctx)
			if err != nil {
				return nil, err
			}
			out = append(out, telemetry.QueueStats{Queue: name, Waiting: w, Delayed: d, Pending: p, Oldest: oldest})
		}
		return out, nil
	})
	_ = metrics.ObserveAudit(store.AuditLength)
	_ = metrics.ObserveRedisMemory(func(ctx context.Context) (int64, int64, error) {
		m, err := store.Memory(ctx)
		return m.Used, m.Max, err
	})
	return &app{traced: traced, metrics: metrics, cfg: cfg, codes: codes, rdb: rdb, store: store, uc: uc, log: log}
}

// loadConfig reads the configuration and the code table it names, and
// reports every problem of both at once.
func loadConfig(path string, getenv func(string) string) (config.Config, *mappings.Table, error) {
	cfg, err := config.Load(path, getenv, mappings.IsCategory)
	if err != nil {
		return cfg, nil, err
	}
	codes := mappings.Default()
	if cfg.Mappings != "" {
		if codes, err = mappings.LoadFile(cfg.Mappings); err != nil {
			return cfg, nil, fmt.Errorf("referral code table: %w", err)
		}
	}
	measures, err := loadMeasures(cfg)
	if err != nil {
		return cfg, nil, err
	}
	if err := cfg.CheckQuestionnaires(measures.Has); err != nil {
		return cfg, nil, err
	}
	return cfg, codes, nil
}

// loadMeasures reads the outcome measures the configuration names: its
// questionnaires directory, or the built-in ones.
func loadMeasures(cfg config.Config) (*mappings.Measures, error) {
	if cfg.Questionnaires == "" {
		return mappings.DefaultMeasures(), nil
	}
	m, err := mappings.LoadMeasuresDir(cfg.Questionnaires)
	if err != nil {
		return nil, fmt.Errorf("questionnaires: %w", err)
	}
	return m, nil
}

// measureRules are the configuration's measure rules as the domain has them.
func measureRules(cfg config.Config) []gateway.MeasureRule {
	out := make([]gateway.MeasureRule, 0, len(cfg.Measures))
	for _, m := range cfg.Measures {
		r := gateway.MeasureRule{Categories: m.Categories, Providers: m.Providers, Questionnaires: m.Questionnaires}
		for _, at := range m.At {
			r.At = append(r.At, gateway.MeasurePoint(at))
		}
		out = append(out, r)
	}
	return out
}

// connectRedis makes the Redis client, watched by clientLog. An unreachable
// Redis does not stop serve: it says so clearly, /readyz reports not ready,
// requests are answered 503 with Retry-After, and service resumes when Redis
// answers. How to start one is said in plain words to a person at a
// terminal; elsewhere (a container's log) stderr holds JSON lines only, and
// the hint goes in the log line.
func connectRedis(ctx context.Context, cfg config.Config, log *slog.Logger, clientLog *redisstore.ClientLog, stderr io.Writer) (redis.UniversalClient, error) {
	if len(cfg.RedisCluster) > 0 {
		return connectCluster(ctx, cfg, log, clientLog, stderr)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis_url %s: %w", cfg.RedisURLRedacted(), err)
	}
	if opt.TLSConfig != nil && (cfg.RedisTLSCA != "" || cfg.RedisTLSServerName != "") { // rediss://
		// A private CA, or another name to check, on top of what the URL
		// sets (its host as the server name, its own query options).
		own, err := redisstore.TLSConfig(cfg.RedisTLSCA, cfg.RedisTLSServerName)
		if err != nil {
			return nil, fmt.Errorf("redis_tls_ca %s: %w", cfg.RedisTLSCA, err)
		}
		opt.TLSConfig.RootCAs = own.RootCAs
		if own.ServerName != "" {
			opt.TLSConfig.ServerName = own.ServerName
		}
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	rdb := redis.NewClient(opt)
	clientLog.Watch(rdb)
	clientLog.SetHint(fmt.Sprintf("no Redis answers at %s: start one with: redis-server --appendonly yes --port %s, or point SIGNPOST_REDIS_URL at yours; "+
		"until it answers, /readyz reports not ready and requests get 503 with Retry-After; Signpost carries on by itself once it does",
		cfg.RedisURLRedacted(), portOf(opt.Addr)))
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		if isTerminal(stderr) {
			fmt.Fprintf(stderr, "signpost: Redis at %s does not answer (%v).\n"+
				"  Start one with:  redis-server --appendonly yes --port %s\n"+
				"  or point SIGNPOST_REDIS_URL at yours. Until it answers, /readyz reports not ready\n"+
				"  and requests get 503 with Retry-After; Signpost carries on by itself once it does.\n",
				cfg.RedisURLRedacted(), err, portOf(opt.Addr))
		}
		if !clientLog.Down() {
			// Reached but refused (a wrong password, say): no outage
			// was logged.
			log.Warn("redis does not answer at start", "redis", cfg.RedisURLRedacted(), "error", err.Error())
		}
	}
	return rdb, nil
}

// connectCluster makes the client of a Redis Cluster, which learns every
// node from the ones redis_cluster lists, and follows failovers and slot
// moves (redisstore.NewClusterClient). A cluster that does not answer at
// start is handled as one Redis is: said clearly, and waited for.
func connectCluster(ctx context.Context, cfg config.Config, log *slog.Logger, clientLog *redisstore.ClientLog, stderr io.Writer) (redis.UniversalClient, error) {
	opt := &redis.ClusterOptions{
		Addrs:    cfg.RedisCluster,
		Username: cfg.RedisUsername, Password: cfg.RedisPassword,
		DialTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
	}
	if cfg.RedisTLS {
		var err error
		if opt.TLSConfig, err = redisstore.TLSConfig(cfg.RedisTLSCA, cfg.RedisTLSServerName); err != nil {
			return nil, fmt.Errorf("redis_tls_ca %s: %w", cfg.RedisTLSCA, err)
		}
	}
	rdb := redisstore.NewClusterClient(opt, func(node *redis.Client) { clientLog.Watch(node) })
	clientLog.SetHint(fmt.Sprintf("no node of the Redis Cluster answers at %s: check the nodes, or point SIGNPOST_REDIS_CLUSTER at yours; "+
		"until it answers, /readyz reports not ready and requests get 503 with Retry-After; Signpost carries on by itself once it does",
		strings.Join(cfg.RedisCluster, ",")))
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		hint, specific := clusterRefusal(err)
		if isTerminal(stderr) {
			fmt.Fprintf(stderr, "signpost: the Redis Cluster at %s does not answer (%v).\n"+
				"  %s Until it answers, /readyz reports\n"+
				"  not ready and requests get 503 with Retry-After; Signpost carries on by itself once it does.\n",
				strings.Join(cfg.RedisCluster, ","), err, hint)
		}
		// Reached but refused, no outage was logged; or refused for its
		// credentials or certificate, which the outage's warning (if the
		// client logged one) does not name.
		if !clientLog.Down() || specific {
			log.Warn("redis cluster does not answer at start", "redis", cfg.RedisTarget(), "error", err.Error(), "hint", hint)
		}
	}
	return rdb, nil
}

// clusterRefusal says what to check when the cluster does not answer at
// start: the credentials it refused, the certificate Signpost did not
// trust (specific: the client's own outage warning names neither), or
// else the nodes. Redis's and crypto/tls's errors name no password, so
// they are shown as they are.
func clusterRefusal(err error) (hint string, specific bool) {
	var untrusted *tls.CertificateVerificationError
	switch {
	case redis.HasErrorPrefix(err, "NOAUTH") || redis.HasErrorPrefix(err, "WRONGPASS"):
		return "The cluster refuses Signpost's credentials: set " + config.EnvRedisPassword + " (and " + config.EnvRedisUsername + " for a user of its own) to the cluster's.", true
	case errors.As(err, &untrusted):
		return "Signpost does not trust the nodes' certificate: give the CA that signed it in redis_tls_ca, or the name it holds in redis_tls_server_name.", true
	}
	return "Check its nodes, or point " + config.EnvRedisCluster + " at yours.", false
}

// isTerminal reports whether w is a terminal, where a person reads.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return port
	}
	return "6379"
}

func providers(cfg config.Config) []gateway.Provider {
	out := make([]gateway.Provider, 0, len(cfg.Providers))
	for _, p := range cfg.Providers {
		gp := gateway.Provider{ID: p.ID, Name: p.Name, Categories: p.Categories, Services: p.Services,
			Organization: gateway.Identifier{System: p.Organization.System, Value: p.Organization.Value},
			Consent:      gateway.ConsentPolicy(cfg.ProviderConsent(p))}
		if sp, ok := cfg.Profile(p.Share); ok && p.Share != "" {
			gp.Share = gateway.NewShareProfile(sp.Name, sp.Elements)
		}
		out = append(out, gp)
	}
	return out
}

// localCaller says who calls when authentication is off (loopback only).
// A request may name the configured client or provider it acts for
// (httpapi.LocalClientHeader): it is then that client, with its view of the
// data and its side's rules, and its changes are recorded as that client's —
// how the demo's GP system and provider act as themselves. Without the
// header it is an operator who sees everything, recorded as the one
// configured client (so its organisation is the referrer) or, with several,
// as nobody in particular.
func localCaller(cfg config.Config) func(*http.Request) (gateway.Caller, error) {
	operator := gateway.Caller{ClientID: "local", Kind: gateway.CallerOperator}
	if len(cfg.Clients) == 1 {
		c := cfg.Clients[0]
		operator = gateway.Caller{ClientID: c.ID, Kind: gateway.CallerOperator, Organization: gateway.Identifier{System: c.Organization.System, Value: c.Organization.Value}}
	}
	named := map[string]gateway.Caller{}
	for _, c := range cfg.Clients {
		named[c.ID] = gateway.Caller{ClientID: c.ID, Kind: gateway.CallerGP, Organization: gateway.Identifier{System: c.Organization.System, Value: c.Organization.Value}}
	}
	for _, p := range cfg.Providers {
		named[p.ID] = gateway.Caller{ClientID: p.ID, Kind: gateway.CallerProvider, Organization: gateway.Identifier{System: p.Organization.System, Value: p.Organization.Value}}
	}
	return func(r *http.Request) (gateway.Caller, error) {
		id := r.Header.Get(httpapi.LocalClientHeader)
		if id == "" {
			return operator, nil
		}
		c, ok := named[id]
		if !ok {
			return gateway.Caller{}, gateway.NewError(gateway.KindUnauthorized, fhir.IssueLogin, "",
				"%s names no configured client or provider; leave it out to act as the operator", httpapi.LocalClientHeader)
		}
		return c, nil
	}
}

// limiter is the per-client rate limit, or nil when it is turned off.
// Sign-in attempts to the web pages, per address and per account: ten at
// once, then one every six seconds, which makes guessing a password of
// twelve characters hopeless while a person who mistypes is not held up.
const (
	signInRate  = 1.0 / 6
	signInBurst = 10
)

func limiter(cfg config.Config, store *redisstore.Store) httpapi.Limiter {
	if cfg.RateLimit.PerSecond <= 0 {
		return nil
	}
	return store.Limiter(cfg.RateLimit.PerSecond, cfg.RateLimit.Burst)
}

// addressLimiter is the per-address limit of callers not yet known (token
// requests, FHIR requests without a valid token), or nil when it is off.
func addressLimiter(cfg config.Config, store *redisstore.Store) httpapi.Limiter {
	if cfg.RateLimit.PerAddress.PerSecond <= 0 {
		return nil
	}
	return store.Limiter(cfg.RateLimit.PerAddress.PerSecond, cfg.RateLimit.PerAddress.Burst)
}

// auditTrimEvery is how often the audit stream is trimmed to its
// configured length, for the records writes append in their commit (those
// appended alone are trimmed as they are added). Each trim drops at most
// 10,000 records (XTRIM's default LIMIT for ~), so it is short however far
// behind it is.
const auditTrimEvery = 30 * time.Second

// keepAuditTrimmed trims the audit stream on a timer until ctx ends.
func keepAuditTrimmed(ctx context.Context, store *redisstore.Store, log *slog.Logger) {
	every(ctx, auditTrimEvery, func() bool {
		if err := store.TrimAudit(ctx); err != nil && ctx.Err() == nil {
			log.Warn("audit stream not trimmed", "error", err)
		}
		return false
	})
}

// every calls fn each period until ctx ends or fn reports it is done.
// exportSweepEvery is how often serve removes expired exports' files.
const exportSweepEvery = time.Minute

func every(ctx context.Context, period time.Duration, fn func() (done bool)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if fn() {
				return
			}
		}
	}
}

// serveMetrics serves /metrics on metrics_listen, apart from the API: the
// metrics show traffic by client and route, and are for the operator's
// scraper, not for whoever can reach the API. nil when none is configured.
func serveMetrics(cfg config.Config, metrics *telemetry.Metrics, stdout io.Writer, log *slog.Logger) (*http.Server, error) {
	if cfg.MetricsListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen on %s: %w", cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 8 << 10}
	fmt.Fprintf(stdout, "Signpost metrics on http://%s/metrics\n", ln.Addr())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "error", err)
		}
	}()
	return srv, nil
}

// newAuthServer builds SMART Backend Services authentication from the
// clients (GP systems) and providers of the configuration; nil when
// authentication is off. jwks_url key sets are fetched through the outbound
// client, so a key URL cannot reach a private address unless allowed; their
// failed fetches and expiries go to log.
func newAuthServer(cfg config.Config, store *redisstore.Store, log *slog.Logger) (*auth.Server, error) {
	if cfg.Auth.Mode != config.AuthSMART {
		return nil, nil
	}
	var clients []auth.Client
	for _, c := range cfg.Clients {
		clients = append(clients, auth.Client{ID: c.ID, Kind: auth.KindGP, Organization: auth.Identifier(c.Organization),
			JWKS: c.Auth.JWKS, JWKSURL: c.Auth.JWKSURL, Scopes: c.Auth.Scopes})
	}
	for _, p := range cfg.Providers {
		clients = append(clients, auth.Client{ID: p.ID, Kind: auth.KindProvider, Organization: auth.Identifier(p.Organization),
			JWKS: p.Auth.JWKS, JWKSURL: p.Auth.JWKSURL, Scopes: p.Auth.Scopes})
	}
	for _, o := range cfg.Operators {
		kind := auth.KindEvaluator
		if o.Export == config.ExportFull {
			kind = auth.KindExporter
		}
		clients = append(clients, auth.Client{ID: o.ID, Kind: kind, JWKS: o.Auth.JWKS, JWKSURL: o.Auth.JWKSURL, Scopes: o.Auth.Scopes})
	}
	s, err := auth.New(auth.Options{Clients: clients, TokenURL: httpapi.TokenURL(cfg.PublicURL),
		Replay: store.AuthStore(), Tokens: store.AuthStore(),
		HTTPClient: outbound.NewClient(outbound.Options{Allow: cfg.OutboundAllow}), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("authentication (auth.mode smart): %w", err)
	}
	return s, nil
}

// scopePatients moves Patients stored before Patient ids were each client's
// own to their owners' keys (redisstore.ScopePatients: idempotent, one
// Patient a step), before serving when Redis answers; otherwise it tries
// again every few seconds until it has run. Only counts are logged: ids
// are chosen by clients and may be anything, an NHS number included.
func scopePatients(ctx context.Context, store *redisstore.Store, log *slog.Logger) {
	run := func(first bool) bool {
		moved, left, err := store.ScopePatients(ctx)
		if err != nil {
			if first {
				log.Warn("patient id migration waits for Redis; it is tried again until it has run", "error", err)
			}
			return false
		}
		if moved > 0 || left > 0 {
			log.Info("patient ids scoped per client", "moved", moved, "left_in_place", left)
		}
		if left > 0 {
			log.Warn("some Patients stored before the upgrade were left under their old keys: their owner made a Patient of the same id since; see README, Who may do what", "count", left)
		}
		return true
	}
	if run(true) {
		return
	}
	go every(ctx, patientMigrationRetry, func() bool { return run(false) })
}

// patientMigrationRetry is how often the Patient migration is tried while
// Redis does not answer.
const patientMigrationRetry = 3 * time.Second
