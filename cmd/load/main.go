// Command load is the load generator of Signpost's performance harness. It
// POSTs realistic referral bodies (benchkit.Bodies, each with its own
// identifier) to a loopback URL and reports throughput and the latency
// distribution as a table and as one JSON line. In a closed loop (the
// default) it keeps one request in flight on each of c connections, for a
// count or a duration; with -rate it starts requests on a fixed schedule
// instead, whatever the replies, over at most c connections, and measures
// each latency from the time the request was due (openloop.go).
//
//	load -url http://127.0.0.1:8080/fhir/ServiceRequest -c 64 -d 10s -warmup 2s
//	load -url http://127.0.0.1:8080/fhir/ServiceRequest -rate 1000 -c 256 -d 10s -warmup 1s \
//	     -webhook 127.0.0.1:9001 -drain 2s
//
// With -webhook it also serves a loopback webhook receiver for Signpost's
// delivery workers, and reports how long each referral accepted in the
// measured phase took from its POST to its webhook, and how many arrived
// within -drain of the last reply. With -receive N it sends nothing: it
// serves the receiver until N referrals have been delivered, and reports
// how fast they came (drain.go), the capacity of workers draining a queue
// filled beforehand:
//
//	load -receive 20000 -webhook 127.0.0.1:9001 -d 2m -cpu-of redis=456
//
// With -summary FILE it instead reads the JSON lines of earlier runs
// (labels "floor" and "signpost") and prints the comparison against the
// harness's targets; with -compare FILE it pools the runs of every label
// and compares them with the first (deploy/bench/compare.sh).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/signpost-health/signpost/cmd/load/benchkit"
)

type config struct {
	url       string
	conns     int
	n         int64
	duration  time.Duration
	warmup    time.Duration
	timeout   time.Duration
	label     string
	jsonOut   string
	latencies string
	cpuOf     string
	rate      float64       // requests per second; 0: closed loop
	webhook   string        // loopback address of the webhook receiver; "": none
	drain     time.Duration // how long to wait for deliveries after the last reply
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "", "URL to POST referrals to, e.g. http://127.0.0.1:8080/fhir/ServiceRequest (loopback only)")
	flag.IntVar(&cfg.conns, "c", 64, "concurrent connections (one request in flight on each)")
	flag.Int64Var(&cfg.n, "n", 0, "total requests to measure (0: run for -d)")
	flag.DurationVar(&cfg.duration, "d", 10*time.Second, "how long to measure, when -n is 0")
	flag.DurationVar(&cfg.warmup, "warmup", 0, "load sent first and not measured")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout (a timeout counts as an error)")
	flag.StringVar(&cfg.label, "label", "", "name of the target in reports (default: the URL's host)")
	flag.StringVar(&cfg.jsonOut, "json", "", "also append the JSON result line to this file")
	flag.StringVar(&cfg.latencies, "latencies", "", "write every measured latency to this file (int64 ns, little endian), for -summary to pool rounds")
	flag.StringVar(&cfg.cpuOf, "cpu-of", "", "name=pid,... of local processes whose CPU time to measure over the measured phase, e.g. server=123,redis=456")
	flag.Float64Var(&cfg.rate, "rate", 0, "fixed rate: start this many requests per second for -d, whatever the replies (open loop), over at most -c connections; latency counts from each request's due time")
	flag.StringVar(&cfg.webhook, "webhook", "", "serve a webhook receiver on this loopback address (host:port) and report POST-to-webhook latency of the measured phase's referrals")
	flag.DurationVar(&cfg.drain, "drain", 2*time.Second, "with -webhook: how long after the last reply to wait for deliveries")
	yardstickFile := flag.String("yardstick", "", "summarise the JSON lines of deploy/bench/yardstick.sh in this file against issue 18's targets, instead of sending load")
	summary := flag.String("summary", "", "summarise the JSON lines in this file instead of sending load")
	compareFile := flag.String("compare", "", "pool the JSON lines in this file by label and compare the labels, instead of sending load")
	rssKiB := flag.Int64("rss-kib", 0, "with -summary: Signpost's peak RSS (VmHWM) in KiB")
	receive := flag.Int64("receive", 0, "serve the -webhook receiver until this many referrals have been delivered (at most -d), instead of sending load, and report how fast they came: workers draining a queue filled beforehand")
	flag.Parse()

	var err error
	switch {
	case *summary != "":
		err = summarise(os.Stdout, *summary, *rssKiB)
	case *compareFile != "":
		err = compare(os.Stdout, *compareFile)
	case *yardstickFile != "":
		err = yardstick(os.Stdout, *yardstickFile, *rssKiB)
	case *receive != 0:
		err = drainFor(cfg, *receive)
	default:
		err = load(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// checkTarget refuses anything but plain HTTP to this machine: the tool must
// never be pointed at a shared or production service.
func checkTarget(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("-url %q: only http:// to a loopback address is allowed", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-url %q: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed", raw)
	}
	return u, nil
}

// Result is one run's measurements; it is also the JSON line.
type Result struct {
	Label         string   `json:"label"`
	URL           string   `json:"url"`
	Conns         int      `json:"conns"`
	BodyBytes     int      `json:"body_bytes"`
	Seconds       float64  `json:"seconds"`
	Requests      int64    `json:"requests"`
	Created       int64    `json:"created"`  // 201
	Repeated      int64    `json:"repeated"` // 200: an identifier seen before
	Errors        int64    `json:"errors"`   // non-2xx and transport errors
	Throughput    float64  `json:"throughput_rps"`
	Accepted      float64  `json:"accepted_rps"` // 201 per second
	P50ms         float64  `json:"p50_ms"`
	P90ms         float64  `json:"p90_ms"`
	P99ms         float64  `json:"p99_ms"`
	MaxMs         float64  `json:"max_ms"`
	MeanMs        float64  `json:"mean_ms"`
	ErrorSamples  []string `json:"error_samples,omitempty"`
	LatenciesFile string   `json:"latencies_file,omitempty"`
	// CPUSeconds is the CPU time (user+system) over the measured phase of
	// each -cpu-of process and of the load generator itself ("load").
	CPUSeconds map[string]float64 `json:"cpu_s,omitempty"`
	// MachineBusy is the fraction of all CPUs' time not idle over the
	// measured phase, whoever used it.
	MachineBusy float64 `json:"machine_busy,omitempty"`
	// Steal is the fraction of all CPUs' time the hypervisor gave to other
	// machines over the measured phase (counted in MachineBusy too): a
	// noisy run with none was slowed by something else (shared caches, the
	// clock), not by losing its CPUs.
	Steal float64 `json:"steal,omitempty"`
	// Others is the fraction of all CPUs' time busy with neither the
	// processes measured (-cpu-of, and the generator) nor steal: other work
	// inside the machine (a build, a test, a process the run does not
	// watch). A run with much of it was disturbed, and its ratios say more
	// about the machine than about what it measured. Not set for a drain,
	// whose worker process is not among those measured.
	Others      float64 `json:"others,omitempty"`
	Interrupted bool    `json:"interrupted,omitempty"`
	// Mode is "rate" for a fixed-rate run (Rate requests per second), ""
	// for a closed loop.
	Mode string  `json:"mode,omitempty"`
	Rate float64 `json:"rate,omitempty"`
	// LateMaxMs is the most the generator fell behind its schedule when
	// starting a request (fixed rate only; the latencies include it).
	LateMaxMs float64        `json:"late_max_ms,omitempty"`
	Webhook   *WebhookResult `json:"webhook,omitempty"`
	// Connections is, for a drain, how many connections the workers
	// opened to the receiver.
	Connections int64 `json:"connections,omitempty"`
}

func load(cfg config) error {
	u, err := checkTarget(cfg.url)
	if err != nil {
		return err
	}
	if cfg.conns < 1 || cfg.conns > 4096 {
		return errors.New("-c must be 1 to 4096")
	}
	var sched, warm schedule
	if cfg.rate > 0 {
		if cfg.n != 0 {
			return errors.New("-rate runs for -d; -n is for the closed loop")
		}
		if sched, err = newSchedule(cfg.rate, cfg.duration); err != nil {
			return err
		}
		if cfg.warmup > 0 {
			if warm, err = newSchedule(cfg.rate, cfg.warmup); err != nil {
				return err
			}
		}
	} else if cfg.n < 0 || (cfg.n == 0 && (cfg.duration <= 0 || cfg.duration > time.Hour)) {
		return errors.New("give -n > 0, or -d between 0 and 1h")
	}
	if cfg.webhook != "" && cfg.rate == 0 {
		return errors.New("-webhook needs -rate: deliveries are measured in the fixed-rate mode")
	}
	if cfg.label == "" {
		cfg.label = u.Host
	}
	watched, err := parseCPUOf(cfg.cpuOf)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tr := &http.Transport{
		Proxy:               nil, // loopback: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.conns,
		MaxIdleConnsPerHost: cfg.conns,
		MaxConnsPerHost:     cfg.conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	g := &generator{
		client: &http.Client{Transport: tr, Timeout: cfg.timeout},
		url:    u.String(),
		bodies: benchkit.NewBodies(sanitise(cfg.label)),
		conns:  cfg.conns,
	}
	var recv *receiver
	if cfg.webhook != "" {
		if recv, err = startReceiver(cfg.webhook); err != nil {
			return err
		}
		defer recv.close()
	}
	var p *phaseStats
	var before, after cpuSample
	if cfg.rate > 0 {
		if warm.n > 0 {
			g.ratePhase(ctx, warm, false)
		}
		before = sampleCPU(watched)
		p = g.ratePhase(ctx, sched, recv != nil)
		after = sampleCPU(watched)
	} else {
		if cfg.warmup > 0 {
			g.phase(ctx, 0, cfg.warmup)
		}
		before = sampleCPU(watched)
		p = g.phase(ctx, cfg.n, cfg.duration)
		after = sampleCPU(watched)
	}
	end := time.Now()

	res := p.result(cfg.label, g.url, cfg.conns, g.bodies.Size(1))
	res.CPUSeconds, res.MachineBusy, res.Steal, res.Others = cpuDelta(before, after)
	if cfg.rate > 0 {
		res.Mode, res.Rate, res.LateMaxMs = "rate", cfg.rate, ms(p.lateMax)
	}
	if recv != nil && ctx.Err() == nil {
		res.Webhook = awaitDeliveries(recv, p.sent, end, cfg.drain)
	}
	res.Interrupted = ctx.Err() != nil
	if cfg.latencies != "" {
		if err := writeLatencies(cfg.latencies, p.lat); err != nil {
			return err
		}
		res.LatenciesFile = cfg.latencies
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	printResult(os.Stdout, res)
	fmt.Println(string(line))
	if cfg.jsonOut != "" {
		if err := appendLine(cfg.jsonOut, line); err != nil {
			return err
		}
	}
	if res.Interrupted {
		return errors.New("interrupted; the figures above are partial")
	}
	return nil
}

// appendLine appends one JSON line to a results file.
func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(append(line, '\n'))
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

func sanitise(label string) string {
	var b strings.Builder
	for _, r := range label {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "run"
	}
	return b.String()
}

type generator struct {
	client *http.Client
	url    string
	bodies *benchkit.Bodies
	conns  int
	seq    atomic.Uint64 // identifier numbers, unique across phases
}

// phaseStats are the measurements of one phase.
type phaseStats struct {
	elapsed                   time.Duration
	created, repeated, errors int64
	lat                       []time.Duration // of 2xx responses
	samples                   []string
	sent                      map[string]time.Time // fixed rate, tracked: accepted id → due time
	lateMax                   time.Duration        // fixed rate: the worst start behind schedule
}

// phase sends load until n requests have been started (n > 0) or d has
// passed, from conns goroutines each with one request in flight.
func (g *generator) phase(ctx context.Context, n int64, d time.Duration) *phaseStats {
	var (
		started atomic.Int64
		mu      sync.Mutex
		total   phaseStats
		wg      sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < g.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine phaseStats
			mine.lat = make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				if n > 0 {
					if started.Add(1) > n {
						break
					}
				} else if !time.Now().Before(deadline) {
					break
				}
				status, lat, sample, _ := g.one(ctx, time.Time{})
				mine.record(status, lat, sample)
			}
			mu.Lock()
			total.created += mine.created
			total.repeated += mine.repeated
			total.errors += mine.errors
			total.lat = append(total.lat, mine.lat...)
			for _, s := range mine.samples {
				if len(total.samples) < 5 && !slices.Contains(total.samples, s) {
					total.samples = append(total.samples, s)
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return &total
}

// one sends one referral. status is 0 for a transport error. The latency
// is measured from due, or from just before the request is sent when due
// is zero; id is the new resource's id, from the Location header.
func (g *generator) one(ctx context.Context, due time.Time) (status int, lat time.Duration, sample, id string) {
	// A new buffer each time: the transport may still hold the last body.
	body := g.bodies.Append(make([]byte, 0, 2048), g.seq.Add(1))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err.Error(), ""
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	t0 := due
	if t0.IsZero() {
		t0 = time.Now()
	}
	res, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, "", ""
		}
		return 0, 0, err.Error(), ""
	}
	var head []byte
	if res.StatusCode >= 300 {
		head, _ = io.ReadAll(io.LimitReader(res.Body, 300))
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	lat = time.Since(t0)
	if res.StatusCode >= 300 {
		sample = fmt.Sprintf("HTTP %d: %s", res.StatusCode, bytes.TrimSpace(head))
	}
	return res.StatusCode, lat, sample, idFromLocation(res.Header.Get("Location"))
}

func (p *phaseStats) result(label, target string, conns, bodyBytes int) *Result {
	r := &Result{Label: label, URL: target, Conns: conns, BodyBytes: bodyBytes,
		Seconds: p.elapsed.Seconds(), Created: p.created, Repeated: p.repeated, Errors: p.errors,
		ErrorSamples: p.samples}
	r.Requests = p.created + p.repeated + p.errors
	if r.Seconds > 0 {
		r.Throughput = float64(p.created+p.repeated) / r.Seconds
		r.Accepted = float64(p.created) / r.Seconds
	}
	r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.MeanMs = distribution(p.lat)
	return r
}

// distribution sorts lat and returns nearest-rank percentiles, in ms.
func distribution(lat []time.Duration) (p50, p90, p99, worst, mean float64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		i := int(q*float64(len(lat))+0.999999) - 1 // nearest rank
		i = min(max(i, 0), len(lat)-1)
		return ms(lat[i])
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return at(0.50), at(0.90), at(0.99), ms(lat[len(lat)-1]), ms(sum / time.Duration(len(lat)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printResult(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "target\t%s (%s)\n", r.Label, r.URL)
	if r.Mode == "rate" {
		fmt.Fprintf(tw, "fixed rate\t%.0f/s\tover at most %d connections; latency from each request's due time; generator at most %.2f ms behind\n", r.Rate, r.Conns, r.LateMaxMs)
	} else {
		fmt.Fprintf(tw, "connections\t%d\n", r.Conns)
	}
	fmt.Fprintf(tw, "body\t%d bytes\n", r.BodyBytes)
	fmt.Fprintf(tw, "measured\t%.2f s\n", r.Seconds)
	fmt.Fprintf(tw, "requests\t%d\t201 created %d, 200 repeated %d, errors %d\n", r.Requests, r.Created, r.Repeated, r.Errors)
	fmt.Fprintf(tw, "throughput\t%.0f req/s\taccepted (201) %.0f/s\n", r.Throughput, r.Accepted)
	fmt.Fprintf(tw, "latency\tp50 %.2f ms\tp90 %.2f ms\tp99 %.2f ms\tmax %.2f ms\tmean %.2f ms\n", r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.MeanMs)
	if n := r.Created + r.Repeated; n > 0 && len(r.CPUSeconds) > 0 {
		fmt.Fprintf(tw, "CPU per request\t%s\t%s\n", cpuPerRequest(r.CPUSeconds, n), r.busy())
	}
	if w := r.Webhook; w != nil {
		fmt.Fprintf(tw, "webhook\tdelivered %d of %d within %.1f s of the last reply\tPOST→webhook p50 %.2f ms\tp99 %.2f ms\tmax %.2f ms\n", w.Delivered, w.Accepted, w.DrainSeconds, w.P50ms, w.P99ms, w.MaxMs)
		fmt.Fprintf(tw, "\trepeats %d, warm-up's %d, unreadable %d\n", w.Duplicates, w.Other, w.Unreadable)
	}
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(tw, "error\t%s\n", s)
	}
	tw.Flush()
}

func writeLatencies(path string, lat []time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var b [8]byte
	for _, d := range lat {
		binary.LittleEndian.PutUint64(b[:], uint64(d))
		w.Write(b[:])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readLatencies(path string) ([]time.Duration, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, len(raw)/8)
	for i := 0; i+8 <= len(raw); i += 8 {
		out = append(out, time.Duration(binary.LittleEndian.Uint64(raw[i:])))
	}
	return out, nil
}

// targetRSS is the memory target (see deploy/bench/README.md). The
// throughput and latency targets are issue 18's, checked by -yardstick;
// run.sh's earlier ones (0.6 of the floor, a p99 under 25 ms at 64
// connections) are withdrawn.
const targetRSS = 100 << 10 // KiB: 100 MiB

// summarise pools the rounds of each label and compares Signpost with the
// floor.
func summarise(w io.Writer, path string, rssKiB int64) error {
	rounds, err := readRounds(path)
	if err != nil {
		return err
	}
	pooled, err := report(w, rounds, []string{"floor", "signpost"})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	floor, sp := pooled[0], pooled[1]

	ratio := 0.0
	if floor.Accepted > 0 {
		ratio = sp.Accepted / floor.Accepted
	}
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	fmt.Fprintln(w, "\nAgainst the floor (the targets are issue 18's: deploy/bench/yardstick.sh):")
	fmt.Fprintf(w, "  throughput  signpost/floor = %.0f/%.0f = %.2f\n", sp.Accepted, floor.Accepted, ratio)
	fmt.Fprintf(w, "  p99         signpost %.2f ms, floor %.2f ms\n", sp.P99ms, floor.P99ms)
	if rssKiB > 0 {
		fmt.Fprintf(w, "  peak RSS    signpost %.1f MiB (VmHWM)   (target < %d MiB)  %s\n", float64(rssKiB)/1024, targetRSS>>10, verdict(rssKiB < targetRSS))
	}
	if floor.Errors+sp.Errors > 0 || floor.Repeated+sp.Repeated > 0 {
		fmt.Fprintf(w, "  WARNING: %d errors and %d repeats (200) during measurement; the figures are suspect\n", floor.Errors+sp.Errors, floor.Repeated+sp.Repeated)
	}
	line, _ := json.Marshal(map[string]any{
		"floor_accepted_rps": round1(floor.Accepted), "signpost_accepted_rps": round1(sp.Accepted), "ratio": round3(ratio),
		"floor_p50_ms": floor.P50ms, "floor_p99_ms": floor.P99ms, "signpost_p50_ms": sp.P50ms, "signpost_p99_ms": sp.P99ms,
		"signpost_peak_rss_kib": rssKiB, "errors": floor.Errors + sp.Errors, "conns": sp.Conns, "body_bytes": sp.BodyBytes,
	})
	fmt.Fprintf(w, "\n%s\n", line)
	return nil
}

// compare pools the rounds of every label, in the order first run, and
// gives each one's throughput relative to the first (deploy/bench/compare.sh).
func compare(w io.Writer, path string) error {
	rounds, err := readRounds(path)
	if err != nil {
		return err
	}
	var labels []string
	for _, r := range rounds {
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
	}
	pooled, err := report(w, rounds, labels)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(w, "\nAccepted/s relative to %s:\n", labels[0])
	for _, r := range pooled {
		ratio := 0.0
		if pooled[0].Accepted > 0 {
			ratio = r.Accepted / pooled[0].Accepted
		}
		fmt.Fprintf(w, "  %-20s %.3f\n", r.Label, ratio)
	}
	var errs int64
	for _, r := range pooled {
		errs += r.Errors
	}
	if errs > 0 {
		fmt.Fprintf(w, "  WARNING: %d errors during measurement; the figures are suspect\n", errs)
	}
	return nil
}

// readRounds reads the JSON result lines of earlier runs.
func readRounds(path string) ([]*Result, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rounds []*Result
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r Result
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rounds = append(rounds, &r)
	}
	return rounds, nil
}

// report prints the rounds in the order run, then each label's pooled
// figures and CPU time per response, and returns the pooled results in the
// order of labels.
func report(w io.Writer, rounds []*Result, labels []string) ([]*Result, error) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "Rounds, in the order run:")
	fmt.Fprintln(tw, "round\ttarget\tseconds\taccepted/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t200s\terrors\t")
	for i, r := range rounds {
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t\n", i+1, r.Label, r.Seconds, r.Accepted, r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.Repeated, r.Errors)
	}
	tw.Flush()

	pooled := make([]*Result, 0, len(labels))
	for _, label := range labels {
		agg, err := pool(rounds, label)
		if err != nil {
			return nil, err
		}
		pooled = append(pooled, agg)
	}
	fmt.Fprintln(w, "\nPooled over all rounds (latencies of every 2xx response):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tseconds\trequests\taccepted/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t200s\terrors\t")
	for _, r := range pooled {
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t\n", r.Label, r.Seconds, r.Requests, r.Accepted, r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.Repeated, r.Errors)
	}
	tw.Flush()

	if len(pooled[len(pooled)-1].CPUSeconds) > 0 {
		fmt.Fprintln(w, "\nCPU time per 2xx response (user+system, over the measured phases):")
		for _, r := range pooled {
			fmt.Fprintf(w, "  %-9s %s   %s\n", r.Label, cpuPerRequest(r.CPUSeconds, r.Created+r.Repeated), r.busy())
		}
	}
	return pooled, nil
}

// pool adds up the rounds labelled label: counts, CPU time and every
// latency, so that the percentiles are over all of them.
func pool(rounds []*Result, label string) (*Result, error) {
	agg := &Result{Label: label}
	var lat []time.Duration
	for _, r := range rounds {
		if r.Label != label {
			continue
		}
		agg.Conns, agg.BodyBytes = r.Conns, r.BodyBytes
		agg.Seconds += r.Seconds
		agg.Requests += r.Requests
		agg.Created += r.Created
		agg.Repeated += r.Repeated
		agg.Errors += r.Errors
		for k, v := range r.CPUSeconds {
			if agg.CPUSeconds == nil {
				agg.CPUSeconds = map[string]float64{}
			}
			agg.CPUSeconds[k] += v
		}
		agg.MachineBusy += r.MachineBusy * r.Seconds
		agg.Steal += r.Steal * r.Seconds
		agg.Others += r.Others * r.Seconds
		if r.LatenciesFile != "" {
			l, err := readLatencies(r.LatenciesFile)
			if err != nil {
				return nil, err
			}
			lat = append(lat, l...)
		}
	}
	if agg.Seconds == 0 {
		return nil, fmt.Errorf("no rounds labelled %q", label)
	}
	agg.MachineBusy /= agg.Seconds
	agg.Steal /= agg.Seconds
	agg.Others /= agg.Seconds
	agg.Throughput = float64(agg.Created+agg.Repeated) / agg.Seconds
	agg.Accepted = float64(agg.Created) / agg.Seconds
	agg.P50ms, agg.P90ms, agg.P99ms, agg.MaxMs, agg.MeanMs = distribution(lat)
	return agg, nil
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// CPU accounting from /proc: per-process utime+stime, and the machine's
// idle time, so that a report says where the CPU went and how busy the
// machine was with other work.

const clockTicks = 100 // USER_HZ: /proc reports CPU time in 1/100 s on Linux

type cpuSample struct {
	procs            map[string]float64 // seconds
	self             float64
	busy, steal, all float64 // machine, in ticks
}

func parseCPUOf(spec string) (map[string]int, error) {
	out := map[string]int{}
	if spec == "" {
		return out, nil
	}
	for _, part := range strings.Split(spec, ",") {
		name, pid, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 || name == "" || name == "load" {
			return nil, fmt.Errorf("-cpu-of %q: want name=pid,... (the name load is the generator itself)", spec)
		}
		if _, err := procCPU(n); err != nil {
			return nil, fmt.Errorf("-cpu-of: %w", err)
		}
		out[name] = n
	}
	return out, nil
}

// procCPU is a process's user+system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields that matter follow its ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64) // field 14
	stime, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return (utime + stime) / clockTicks, nil
}

func sampleCPU(watched map[string]int) cpuSample {
	s := cpuSample{procs: map[string]float64{}}
	for name, pid := range watched {
		if v, err := procCPU(pid); err == nil {
			s.procs[name] = v
		}
	}
	if v, err := procCPU(os.Getpid()); err == nil {
		s.self = v
	}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			s.all += v
			if i != 4 && i != 5 { // idle, iowait
				s.busy += v
			}
			if i == 8 {
				s.steal = v
			}
		}
	}
	return s
}

// cpuDelta is each process's CPU time between two samples, and the
// fractions of all CPUs' time the machine was busy, lost to steal, and
// busy with processes the samples did not watch (others).
func cpuDelta(a, b cpuSample) (procs map[string]float64, busy, steal, others float64) {
	procs = map[string]float64{"load": b.self - a.self}
	measured := procs["load"]
	for name, v := range b.procs {
		if w, ok := a.procs[name]; ok {
			procs[name] = v - w
			measured += v - w
		}
	}
	if all := b.all - a.all; all > 0 {
		busy, steal = (b.busy-a.busy)/all, (b.steal-a.steal)/all
		// The processes' clocks and the machine's are read at slightly
		// different moments, so a run with nothing else may come out a
		// little below none.
		others = max(0, busy-steal-measured/(all/clockTicks))
	}
	return procs, busy, steal, others
}

// busy is how busy the machine was over the run, how much of its CPUs'
// time the hypervisor gave to other machines, and (but for a drain, whose
// worker is not measured) how much went to processes the run did not watch.
func (r *Result) busy() string {
	if r.Mode == "drain" {
		return fmt.Sprintf("machine busy %.0f%%, steal %.1f%%", 100*r.MachineBusy, 100*r.Steal)
	}
	return fmt.Sprintf("machine busy %.0f%%, steal %.1f%%, others %.0f%%", 100*r.MachineBusy, 100*r.Steal, 100*r.Others)
}

// cpuPerRequest formats CPU microseconds per request, server first.
func cpuPerRequest(cpu map[string]float64, n int64) string {
	names := make([]string, 0, len(cpu))
	for k := range cpu {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		rank := func(s string) int {
			switch s {
			case "server":
				return 0
			case "redis":
				return 1
			case "load":
				return 3
			}
			return 2
		}
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f µs", k, cpu[k]*1e6/float64(n)))
	}
	return strings.Join(parts, ", ")
}
