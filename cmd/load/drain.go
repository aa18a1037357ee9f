package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// drainFor serves the webhook receiver until n referrals have arrived (or
// cfg.duration has passed) and reports how fast they came: the delivery
// capacity of workers draining a queue filled beforehand, with nothing
// else to do. The time runs from the first arrival to the last, so the
// workers' start does not count; so does the CPU of the -cpu-of processes.
func drainFor(cfg config, n int64) error {
	if cfg.webhook == "" {
		return errors.New("-receive needs -webhook: the receiver's address")
	}
	if n < 1 {
		return errors.New("-receive must be at least 1")
	}
	if cfg.duration <= 0 || cfg.duration > time.Hour {
		return errors.New("-d (how long to wait at most) must be between 0 and 1h")
	}
	watched, err := parseCPUOf(cfg.cpuOf)
	if err != nil {
		return err
	}
	recv, err := startReceiver(cfg.webhook)
	if err != nil {
		return err
	}
	defer recv.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "load: receiving on %s until %d deliveries arrive\n", cfg.webhook, n)
	deadline := time.Now().Add(cfg.duration)
	var before cpuSample
	var first time.Time
	count := func() int64 {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		return int64(len(recv.got))
	}
	for ctx.Err() == nil && time.Now().Before(deadline) {
		got := count()
		if got > 0 && first.IsZero() {
			first, before = time.Now(), sampleCPU(watched)
		}
		if got >= n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	after, end := sampleCPU(watched), time.Now()
	res := &Result{Label: cfg.label, Mode: "drain", Requests: n, Created: count()}
	recv.mu.Lock()
	res.Errors = recv.duplicates + recv.unreadable
	recv.mu.Unlock()
	res.Connections = recv.conns.Load()
	if !first.IsZero() {
		res.Seconds = end.Sub(first).Seconds()
		// The worker process is not among those watched, so what else
		// used the machine cannot be told apart from it (Others).
		res.CPUSeconds, res.MachineBusy, res.Steal, _ = cpuDelta(before, after)
	}
	if res.Seconds > 0 {
		res.Throughput = float64(res.Created) / res.Seconds
	}
	res.Interrupted = ctx.Err() != nil
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Printf("drained          %d of %d deliveries in %.2f s (from the first): %.0f/s; duplicates or unreadable %d; connections opened %d\n", res.Created, n, res.Seconds, res.Throughput, res.Errors, res.Connections)
	if res.CPUSeconds != nil {
		fmt.Printf("CPU per delivery %s                %s\n", cpuPerRequest(res.CPUSeconds, res.Created), res.busy())
	}
	fmt.Println(string(line))
	if cfg.jsonOut != "" {
		if err := appendLine(cfg.jsonOut, line); err != nil {
			return err
		}
	}
	switch {
	case res.Interrupted:
		return errors.New("interrupted; the figures above are partial")
	case res.Created < n:
		return fmt.Errorf("only %d of %d deliveries arrived within %s", res.Created, n, cfg.duration)
	}
	return nil
}
