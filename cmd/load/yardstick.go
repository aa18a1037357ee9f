package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// The targets of issue 18 (deploy/bench/README.md), checked by -yardstick.
const (
	// Closed loop: Signpost's accepted/s over the same-work floor S's…
	targetOfS = 0.80
	// …and over F's no worse than when the issue was filed (0.38–0.40).
	targetOfF = 0.38
	// Fixed rate, workers delivering: Signpost's p99 at most 2 × F's + 1 ms.
	targetP99Factor, targetP99PlusMs = 2.0, 1.0
	// POST → provider webhook at 200/s: p99 at most 50 ms.
	targetWebhookP99ms = 50.0
	// A fixed-rate run whose generator fell further behind its schedule
	// than this was descheduled by a busy machine: its tail is the
	// machine's, and a latency verdict on it is marked suspect.
	suspectLateMs = 10.0
	// A run in which work inside the machine that the run does not
	// measure took more than this share of the CPUs' time (Result.Others:
	// a build, a test) was disturbed, and a verdict on it is marked
	// suspect. Undisturbed runs showed 0 %, one beside a CPU-bound loop
	// 35-53 %.
	disturbedShare = 0.10
)

// suspect qualifies a verdict when the generator fell behind, or other work
// took the machine, in any of the runs it compares.
func suspect(verdict string, runs ...*Result) string {
	worst, others := 0.0, 0.0
	for _, r := range runs {
		if r != nil {
			worst, others = max(worst, r.LateMaxMs), max(others, r.Others)
		}
	}
	var why []string
	if worst > suspectLateMs {
		why = append(why, fmt.Sprintf("the generator fell %.0f ms behind", worst))
	}
	if others > disturbedShare {
		why = append(why, fmt.Sprintf("other work took %.0f%% of the machine", 100*others))
	}
	if len(why) == 0 {
		return verdict
	}
	return verdict + " (suspect: " + strings.Join(why, "; ") + ")"
}

// Labels the yardstick run gives its targets.
const (
	labelF = "F"
	labelS = "S"
	// S+V: S after the structural validation Signpost must make (issue
	// 15); no target, it shows how much of the gap to S that check is.
	labelSV       = "SV"
	labelSignpost = "signpost"
	// Signpost again with Redis rewriting its append-only file midway:
	// reported beside the steady state, not held to its targets.
	labelRewriting = "signpost-rewriting"
)

// yardstick prints the figures of one deploy/bench/yardstick.sh run (its
// JSON lines in path) against issue 18's targets: closed-loop throughput of
// F, S and Signpost; how fast a worker drains what that closed loop queued;
// fixed-rate latency of F and Signpost at each rate, with
// Signpost's deliveries; POST-to-webhook latency; CPU per referral; peak RSS.
func yardstick(w io.Writer, path string, rssKiB int64) error {
	rounds, err := readRounds(path)
	if err != nil {
		return err
	}
	closed := func(label string) func(*Result) bool {
		return func(r *Result) bool { return r.Mode == "" && r.Label == label }
	}
	at := func(label string, rate float64) func(*Result) bool {
		return func(r *Result) bool { return r.Mode == "rate" && r.Label == label && r.Rate == rate }
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	out := map[string]any{}
	var targets [][3]string // target, measured, verdict

	// Closed loop.
	fmt.Fprintln(w, "Closed loop (each connection sends its next request when the last is answered):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tconns\tseconds\taccepted/s\tp50 ms\tp99 ms\tmax ms\terrors\tCPU µs per referral\tmachine busy, steal, others\t")
	pooled := map[string]*Result{}
	for _, label := range []string{labelF, labelS, labelSV, labelSignpost} {
		r, err := poolWhere(rounds, label, closed(label))
		if err != nil {
			continue
		}
		pooled[label] = r
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%.0f%%, %.1f%%, %.0f%%\t\n", label, r.Conns, r.Seconds, r.Accepted, r.P50ms, r.P99ms, r.MaxMs,
			r.Errors, cpuPerRequest(r.CPUSeconds, r.Created+r.Repeated), 100*r.MachineBusy, 100*r.Steal, 100*r.Others)
		out["closed_"+label+"_accepted_rps"] = round1(r.Accepted)
		out["closed_"+label+"_p99_ms"] = r.P99ms
	}
	tw.Flush()
	f, s, sv, sp := pooled[labelF], pooled[labelS], pooled[labelSV], pooled[labelSignpost]
	if sp != nil && s != nil && s.Accepted > 0 {
		ratio := sp.Accepted / s.Accepted
		out["signpost_over_S"] = round3(ratio)
		targets = append(targets, [3]string{fmt.Sprintf("closed loop: Signpost ≥ %.1f × S", targetOfS), fmt.Sprintf("%.2f × S", ratio), suspect(verdict(ratio >= targetOfS), sp, s)})
	}
	if sp != nil && f != nil && f.Accepted > 0 {
		ratio := sp.Accepted / f.Accepted
		out["signpost_over_F"] = round3(ratio)
		targets = append(targets, [3]string{fmt.Sprintf("closed loop: Signpost/F no worse than when filed (%.2f)", targetOfF), fmt.Sprintf("%.2f × F", ratio), suspect(verdict(ratio >= targetOfF), sp, f)})
	}
	if s != nil && f != nil && f.Accepted > 0 {
		out["S_over_F"] = round3(s.Accepted / f.Accepted)
	}
	if sv != nil && s != nil && s.Accepted > 0 && sv.Accepted > 0 {
		out["SV_over_S"] = round3(sv.Accepted / s.Accepted)
		if sp != nil {
			out["signpost_over_SV"] = round3(sp.Accepted / sv.Accepted)
		}
	}
	fmt.Fprintln(w)
	for _, pair := range [][2]*Result{{sp, s}, {sp, sv}, {sv, s}, {sp, f}, {s, f}} {
		if pair[0] != nil && pair[1] != nil && pair[1].Accepted > 0 {
			byRound := roundRatios(runsOf(rounds, closed(pair[0].Label)), runsOf(rounds, closed(pair[1].Label)), accepted)
			fmt.Fprintf(w, "  %s / %s = %.2f%s\n", pair[0].Label, pair[1].Label, pair[0].Accepted/pair[1].Accepted, roundsNote(byRound))
			if len(byRound) > 1 {
				out[pair[0].Label+"_over_"+pair[1].Label+"_rounds"] = byRound
			}
		}
	}
	if sv != nil {
		fmt.Fprintln(w, "  (SV is S after the structural validation every resource Signpost accepts must pass; no target)")
	}
	var disturbed []string
	for _, label := range []string{labelF, labelS, labelSV, labelSignpost} {
		for i, r := range runsOf(rounds, closed(label)) {
			if r.Others > disturbedShare {
				fmt.Fprintf(w, "%s; that round's ratios are the machine's\n", disturbance(fmt.Sprintf("round %d's %s", i+1, label), r))
				disturbed = append(disturbed, fmt.Sprintf("closed %s round %d", label, i+1))
			}
		}
	}

	// Delivery capacity: a worker draining what each round's closed loop
	// of Signpost queued, pooled over the rounds, and each round against
	// its own intake.
	drained := func(r *Result) bool { return r.Mode == "drain" && r.Label == labelSignpost }
	if drains := runsOf(rounds, drained); len(drains) > 0 {
		fmt.Fprintf(w, "\nDelivery capacity (a worker process draining what Signpost's closed loop queued, nothing else running):\n")
		for _, r := range drains {
			fmt.Fprintf(w, "  %d of %d delivered in %.1f s: %.0f/s; CPU µs per delivery: %s; %s; connections opened %d\n",
				r.Created, r.Requests, r.Seconds, r.Throughput, cpuPerRequest(r.CPUSeconds, r.Created), r.busy(), r.Connections)
		}
		all, err := poolWhere(rounds, labelSignpost, drained)
		if err != nil {
			all = &Result{} // no drain delivered anything: 0/s
		}
		out["drain_signpost_rps"] = round1(all.Throughput)
		if sp != nil && sp.Accepted > 0 {
			ratio := all.Throughput / sp.Accepted
			byRound := roundRatios(drains, runsOf(rounds, closed(labelSignpost)), throughput)
			fmt.Fprintf(w, "  drained / intake's closed-loop rate = %.2f%s\n", ratio, roundsNote(byRound))
			out["drain_over_intake"] = round3(ratio)
			if len(byRound) > 1 {
				out["drain_over_intake_rounds"] = byRound
			}
			targets = append(targets, [3]string{"delivery drains at least intake's sustained (closed-loop) rate",
				fmt.Sprintf("%.0f/s against %.0f/s", all.Throughput, sp.Accepted), suspect(verdict(all.Throughput >= sp.Accepted && all.Created == all.Requests), sp)})
		}
	}

	// Fixed rate.
	var rates []float64
	var rateNotes []string // disturbed runs, shown under the table
	for _, r := range rounds {
		if r.Mode == "rate" && !slices.Contains(rates, r.Rate) {
			rates = append(rates, r.Rate)
		}
	}
	slices.Sort(rates)
	fmt.Fprintln(w, "\nFixed rate (open loop; latency from each request's due time; Signpost's workers delivering to the loopback webhook receiver):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rate/s\ttarget\tseconds\taccepted/s\tp50 ms\tp99 ms\tmax ms\terrors\tbehind ms\tdelivered\tin\tPOST→webhook p50 / p99 / max ms\tCPU µs per referral\t")
	for _, rate := range rates {
		var fr, sr *Result
		for _, label := range []string{labelF, labelSignpost, labelRewriting} {
			r, err := poolWhere(rounds, label, at(label, rate))
			if err != nil {
				continue
			}
			switch label {
			case labelF:
				fr = r
			case labelSignpost:
				sr = r
			}
			delivered, in, hook := "", "", ""
			if wh := r.Webhook; wh != nil {
				delivered = fmt.Sprintf("%d of %d", wh.Delivered, wh.Accepted)
				in = fmt.Sprintf("%.0f s", wh.DrainSeconds)
				hook = fmt.Sprintf("%.1f / %.1f / %.1f (%d connections)", wh.P50ms, wh.P99ms, wh.MaxMs, wh.Connections)
			}
			fmt.Fprintf(tw, "%.0f\t%s\t%.1f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%.1f\t%s\t%s\t%s\t%s\t\n", rate, label, r.Seconds, r.Accepted, r.P50ms, r.P99ms, r.MaxMs,
				r.Errors, r.LateMaxMs, delivered, in, hook, cpuPerRequest(r.CPUSeconds, r.Created+r.Repeated))
			if r.Others > disturbedShare {
				disturbed = append(disturbed, fmt.Sprintf("rate %.0f %s", rate, label))
				rateNotes = append(rateNotes, disturbance(fmt.Sprintf("the %.0f/s run of %s", rate, label), r)+"\n")
			}
			key := fmt.Sprintf("rate%.0f_%s_", rate, label)
			out[key+"p50_ms"], out[key+"p99_ms"], out[key+"max_ms"], out[key+"errors"] = r.P50ms, r.P99ms, r.MaxMs, r.Errors
			if wh := r.Webhook; wh != nil {
				out[key+"delivered"], out[key+"accepted"], out[key+"webhook_p99_ms"] = wh.Delivered, wh.Accepted, wh.P99ms
			}
		}
		if sr == nil {
			continue
		}
		if fr != nil && (rate == 250 || rate == 1000) {
			limit := targetP99Factor*fr.P99ms + targetP99PlusMs
			targets = append(targets, [3]string{fmt.Sprintf("%.0f/s: Signpost p99 ≤ 2 × F's + 1 ms, no errors", rate),
				fmt.Sprintf("%.2f ms against %.2f ms, %d errors", sr.P99ms, limit, sr.Errors), suspect(verdict(sr.P99ms <= limit && sr.Errors == 0), fr, sr)})
		}
		if wh := sr.Webhook; wh != nil && (rate == 250 || rate == 1000) {
			targets = append(targets, [3]string{fmt.Sprintf("%.0f/s: every referral delivered within %.0f s of the run's end", rate, wh.DrainSeconds),
				fmt.Sprintf("%d of %d", wh.Delivered, wh.Accepted), verdict(wh.Delivered == wh.Accepted && wh.Accepted > 0)})
		}
		if wh := sr.Webhook; wh != nil && rate == 200 {
			targets = append(targets, [3]string{fmt.Sprintf("200/s: POST → webhook p99 ≤ %.0f ms", targetWebhookP99ms),
				fmt.Sprintf("%.1f ms (%d of %d delivered)", wh.P99ms, wh.Delivered, wh.Accepted), suspect(verdict(wh.P99ms <= targetWebhookP99ms && wh.Delivered == wh.Accepted), sr)})
		}
	}
	tw.Flush()
	for _, note := range rateNotes {
		fmt.Fprint(w, note)
	}
	if len(disturbed) > 0 {
		out["disturbed"] = disturbed
	}

	if rssKiB > 0 {
		out["signpost_peak_rss_kib"] = rssKiB
		targets = append(targets, [3]string{fmt.Sprintf("peak RSS < %d MiB", targetRSS>>10), fmt.Sprintf("%.1f MiB", float64(rssKiB)/1024), verdict(rssKiB < targetRSS)})
	}
	fmt.Fprintln(w, "\nAgainst issue 18's targets:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range targets {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t[0], t[1], t[2])
	}
	tw.Flush()
	var errs int64
	for _, r := range rounds {
		errs += r.Errors
	}
	if errs > 0 {
		fmt.Fprintf(w, "  WARNING: %d errors in all; see the rounds above\n", errs)
	}
	line, _ := json.Marshal(out)
	fmt.Fprintf(w, "\n%s\n", line)
	return nil
}

// disturbance says which run was disturbed, and how much.
func disturbance(run string, r *Result) string {
	return fmt.Sprintf("  disturbed: %s, other work in the machine took %.0f%% of its CPUs' time", run, 100*r.Others)
}

// runsOf are the runs that match, in the order they ran: with ROUNDS
// above 1, the n-th is round n's.
func runsOf(rounds []*Result, match func(*Result) bool) []*Result {
	var out []*Result
	for _, r := range rounds {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// roundRatios are rate(as[n]) over bs[n]'s accepted rate, round by round:
// the runs of one round ran within a minute or so of each other, so the
// spread of these is how far the host moved between rounds, which a
// pooled ratio does not show. Nil unless both ran in every round.
func roundRatios(as, bs []*Result, rate func(*Result) float64) []float64 {
	if len(as) != len(bs) {
		return nil
	}
	ratios := make([]float64, 0, len(as))
	for i := range as {
		if bs[i].Accepted <= 0 {
			return nil
		}
		ratios = append(ratios, round3(rate(as[i])/bs[i].Accepted))
	}
	return ratios
}

func accepted(r *Result) float64   { return r.Accepted }
func throughput(r *Result) float64 { return r.Throughput }

// roundsNote shows the ratios of each round after a pooled one, when there
// was more than one round.
func roundsNote(ratios []float64) string {
	if len(ratios) < 2 {
		return ""
	}
	shown := make([]string, len(ratios))
	for i, r := range ratios {
		shown[i] = fmt.Sprintf("%.2f", r)
	}
	return " (each round: " + strings.Join(shown, ", ") + ")"
}

// poolWhere pools the rounds that match as pool does, under label; the
// webhook figures add up counts and keep the worst percentiles of the rounds.
func poolWhere(rounds []*Result, label string, match func(*Result) bool) (*Result, error) {
	var some []*Result
	for _, r := range runsOf(rounds, match) {
		c := *r
		c.Label = label
		some = append(some, &c)
	}
	agg, err := pool(some, label)
	if err != nil {
		return nil, err
	}
	for _, r := range some {
		agg.Mode, agg.Rate = r.Mode, r.Rate
		agg.LateMaxMs = max(agg.LateMaxMs, r.LateMaxMs)
		if wh := r.Webhook; wh != nil {
			if agg.Webhook == nil {
				agg.Webhook = &WebhookResult{DrainSeconds: wh.DrainSeconds}
			}
			a := agg.Webhook
			a.Accepted += wh.Accepted
			a.Delivered += wh.Delivered
			a.Duplicates += wh.Duplicates
			a.Other += wh.Other
			a.Unreadable += wh.Unreadable
			a.Connections += wh.Connections
			a.P50ms, a.P99ms, a.MaxMs = max(a.P50ms, wh.P50ms), max(a.P99ms, wh.P99ms), max(a.MaxMs, wh.MaxMs)
		}
	}
	return agg, nil
}
