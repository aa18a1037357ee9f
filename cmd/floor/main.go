// Command floor serves the yardsticks of Signpost's performance harness,
// on loopback only:
//
//   - -mode floor (F, the default): a bare Gin handler that reads a referral
//     body, decodes it with encoding/json and writes it to Redis in one
//     pipelined round trip, SET and XADD (benchkit.FloorHandler);
//   - -mode same (S, the same-work floor): Gin, a decode into the samply
//     ServiceRequest model, and exactly the writes one referral's commit
//     makes in Signpost (two bodies, two unique keys, 15 index entries, the
//     delivery job and the audit record) in one MULTI/EXEC
//     (benchkit.SameWorkHandler, whose comment maps them onto commit.lua);
//   - -mode validated (S+V): S, after the structural validation every
//     resource Signpost accepts must pass (fhir/structure, as Signpost's
//     intake runs it; benchkit.ValidatedSameWorkHandler).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/cmd/load/benchkit"
	"github.com/signpost-health/signpost/fhir/structure"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "loopback address to listen on")
	redisURL := flag.String("redis", "", "redis:// URL of the Redis to write to (required; use a scratch Redis)")
	maxBody := flag.Int64("max-body", 1<<20, "largest request body accepted, bytes (Signpost's default is 1 MiB)")
	mode := flag.String("mode", "floor", "floor (F: one body and one job), same (S: a referral's whole write set) or validated (S+V: S after FHIR structural validation)")
	flag.Parse()
	if err := run(*listen, *redisURL, *maxBody, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(listen, redisURL string, maxBody int64, mode string) error {
	if redisURL == "" {
		return errors.New("-redis is required")
	}
	handler, err := handlerFor(mode)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-listen %q: only loopback addresses are allowed", listen)
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	// The same client settings as signpost serve.
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	// The same server settings as signpost serve.
	srv := &http.Server{
		Handler:           handler(rdb, maxBody),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	fmt.Printf("floor (-mode %s) listening on http://%s\n", mode, ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// handlerFor is the yardstick a -mode names.
func handlerFor(mode string) (func(rdb *redis.Client, maxBody int64) http.Handler, error) {
	switch mode {
	case "floor":
		return benchkit.FloorHandler, nil
	case "same":
		return benchkit.SameWorkHandler, nil
	case "validated":
		return func(rdb *redis.Client, maxBody int64) http.Handler {
			return benchkit.ValidatedSameWorkHandler(rdb, maxBody, validServiceRequest)
		}, nil
	}
	return nil, fmt.Errorf("-mode %q: want floor, same or validated", mode)
}

// validServiceRequest is the structural check Signpost's intake makes of a
// ServiceRequest. gateway/conform runs the same validator after
// fhir.ParseResource's raw checks; ValidateAs makes the two of those it
// relies on (duplicate names, UTF-8) itself, and answers as the pair does
// for any body the raw checks accept (FuzzValidateChecked).
func validServiceRequest(body []byte) bool {
	return structure.ValidateAs(body, "ServiceRequest").Valid()
}
