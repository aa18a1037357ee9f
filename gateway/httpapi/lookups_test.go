package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// referralKeyReads counts the calls to Redis that read referrals'
// idempotency keys (GETs of "referral|…" unique keys): one a command sent
// alone, one a pipeline however many it holds, so the round trips.
type referralKeyReads struct{ n atomic.Int64 }

func readsReferralKey(cmd redis.Cmder) bool {
	args := cmd.Args()
	if cmd.Name() != "get" || len(args) < 2 {
		return false
	}
	key, _ := args[1].(string)
	return strings.Contains(key, ":u:referral|")
}

func (c *referralKeyReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *referralKeyReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if readsReferralKey(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *referralKeyReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if readsReferralKey(cmd) {
				c.n.Add(1)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// A transaction of many referrals, each with several business
// identifiers, reads all their idempotency keys in one round trip before
// it is planned, not one an identifier (on a spreading store, 17 GETs
// each, hundreds of waits for a full Bundle): sent first and sent again,
// on a store that spreads referrals (every attempt looks, in every
// partition) and on one that does not (it looks only when its commit
// found a key held, and plans again). The repeat is answered as before,
// every entry with the referral held.
func TestTransactionReadsItsReferralsKeysInOneRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		on           []func(*options)
		first, again int64 // key reads when sent first, and again
	}{
		{"redis", []func(*options){onOneRedis, unspread}, 0, 1},
		{"spread redis", []func(*options){onOneRedis, spread}, 1, 1},
		{"spread cluster", []func(*options){onCluster, spread}, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, c.on...)
			reads := &referralKeyReads{}
			e.rdb.AddHook(reads)
			const referrals, identifiers = 20, 3
			var entries []string
			for i := range referrals {
				var ids []string
				for j := range identifiers {
					ids = append(ids, fmt.Sprintf(`{"system":"%s","value":"KEYS-%d-%d"}`, gpIdentSystem, i, j))
				}
				body := strings.Replace(string(referral(fmt.Sprintf("KEYS-%d-0", i), "390893007")),
					fmt.Sprintf(`"identifier":[{"system":"%s","value":"KEYS-%d-0"}]`, gpIdentSystem, i),
					`"identifier":[`+strings.Join(ids, ",")+`]`, 1)
				entries = append(entries, entry(fmt.Sprintf("urn:uuid:00000000-0000-0000-0000-%012d", i), "ServiceRequest", body))
			}
			bundle := transaction(entries...)
			before := reads.n.Load()
			first := e.post("", bundle, as("practice-a")...).must(t, http.StatusOK)
			if n := reads.n.Load() - before; n != c.first {
				t.Errorf("the transaction read its referrals' keys in %d round trips, want %d", n, c.first)
			}
			if s := entryStatuses(t, first); s["201 Created"] != referrals {
				t.Errorf("sent first: %v, want %d created", s, referrals)
			}
			before = reads.n.Load()
			again := e.post("", bundle, as("practice-a")...).must(t, http.StatusOK)
			if n := reads.n.Load() - before; n != c.again {
				t.Errorf("sent again, the transaction read its referrals' keys in %d round trips, want %d", n, c.again)
			}
			if s := entryStatuses(t, again); s["200 OK"] != referrals {
				t.Errorf("sent again: %v, want %d answered with the referral held", s, referrals)
			}
		})
	}
}

// keyReads counts the round trips to Redis that read unique keys of the
// given kinds ("message-entry|", "supporting|", …): one a command sent
// alone, one a pipeline however many of them it holds.
type keyReads struct {
	kinds []string
	n     atomic.Int64
}

func newKeyReads(kinds ...string) *keyReads { return &keyReads{kinds: kinds} }

func (c *keyReads) reads(cmd redis.Cmder) bool {
	args := cmd.Args()
	if cmd.Name() != "get" || len(args) < 2 {
		return false
	}
	key, _ := args[1].(string)
	for _, k := range c.kinds {
		if strings.Contains(key, ":u:"+k) {
			return true
		}
	}
	return false
}

func (c *keyReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *keyReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if c.reads(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *keyReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if c.reads(cmd) {
				c.n.Add(1)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// during is how many round trips c counted while f ran.
func (c *keyReads) during(f func()) int64 {
	before := c.n.Load()
	f()
	return c.n.Load() - before
}

// A BaRS message looks up its keys entry by entry no more: a new message's
// supporting entries look for what another referral's entry of the same
// fullUrl made (a store that spreads: in every partition) in one round
// trip, not one an entry (the published example has 16, each 17 GETs on
// a spreading store); an update finds its referral by its identifiers and
// fullUrl in one, answers its X-Request-Id and message id in one, and
// reads the referrals its entries are filed under in one. On one Redis a
// new message looks none up, as before. The answers are as before.
func TestBaRSMessageReadsItsKeysInOneRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		on      []func(*options)
		entries int64 // new message: round trips reading its entries' keys
	}{
		{"redis", []func(*options){onOneRedis, unspread}, 0},
		{"spread redis", []func(*options){onOneRedis, spread}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, append(c.on, withBaRSService, withWarnNHS)...)
			entryKeys := newKeyReads("message-entry|")
			messageKeys := newKeyReads("message|", "message-request|")
			targetKeys := newKeyReads("referral|", "message-focus|")
			filedKeys := newKeyReads("supporting|")
			repeatKeys := newKeyReads("message|", "message-request|", "message-focus|")
			for _, h := range []redis.Hook{entryKeys, messageKeys, targetKeys, filedKeys, repeatKeys} {
				e.rdb.AddHook(h)
			}
			a := as("practice-a")
			var srID string
			if n := entryKeys.during(func() { srID, _ = barsReferral(t, e) }); n != c.entries {
				t.Errorf("the new message read its entries' keys in %d round trips, want %d", n, c.entries)
			}
			// The same referral in another message (its ServiceRequest's
			// fullUrl), under a new X-Request-Id: its commit finds the
			// fullUrl's key held, and the second attempt reads the
			// message's keys.
			again := barsMutant(t, func(b map[string]any, _ []any) { b["id"] = "8d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a" })
			var answer *response
			if n := repeatKeys.during(func() {
				answer = e.post("/$process-message", again, with(a, "X-Request-Id", "77777777-7777-4777-8777-777777777777")...)
			}); n != 1 {
				t.Errorf("the message sent again read its X-Request-Id, message id and fullUrl keys in %d round trips, want 1", n)
			}
			if _, sr, _ := readBaRSAnswer(t, answer.must(t, http.StatusOK)); sr["id"] != srID {
				t.Errorf("the message sent again answered ServiceRequest %v, want %s", sr["id"], srID)
			}
			// An update naming its referral by two identifiers the referral
			// does not have yet, and by its entry's fullUrl.
			update := barsChange(t, "7c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f", "update", func(sr map[string]any) {
				sr["identifier"] = []any{
					map[string]any{"system": gpIdentSystem, "value": "LOOKUPS-1"},
					map[string]any{"system": gpIdentSystem, "value": "LOOKUPS-2"},
				}
			})
			var r *response
			var target, message int64
			filed := filedKeys.during(func() {
				message = messageKeys.during(func() {
					target = targetKeys.during(func() {
						r = e.post("/$process-message", update, with(a, "X-Request-Id", "55555555-5555-4555-8555-555555555555")...)
					})
				})
			})
			_, sr, _ := readBaRSAnswer(t, r.must(t, http.StatusOK))
			if sr["id"] != srID || sr["meta"].(map[string]any)["versionId"] != "2" {
				t.Errorf("the update answered ServiceRequest %v %v, want %s version 2", sr["id"], sr["meta"], srID)
			}
			if target != 1 {
				t.Errorf("the update looked for its referral in %d round trips, want 1", target)
			}
			if message != 1 {
				t.Errorf("the update read its X-Request-Id and message id in %d round trips, want 1", message)
			}
			if filed != 1 {
				t.Errorf("the update read where its entries are filed in %d round trips, want 1", filed)
			}
		})
	}
}

// A transaction updating several referrals reads their Tasks in one round
// trip, not one a referral; one of new Tasks for held referrals that have
// theirs reads those in one, each answered with the Task held. All beside
// one Patient, so that a store that spreads commits them together.
func TestTransactionReadsItsReferralsTasksInOneRoundTrip(t *testing.T) {
	t.Parallel()
	onOneRedisSpreadOrNot(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, on...)
		tasks := newKeyReads("referral-task|")
		e.rdb.AddHook(tasks)
		a := as("practice-a")
		e.put("/Patient/lookups-pat", testPatient("lookups-pat"), a...).must(t, http.StatusCreated)
		const referrals = 5
		var updates, newTasks []string
		for i := range referrals {
			sr := e.post("/ServiceRequest", referralFor(fmt.Sprintf("TASKS-%d", i), "lookups-pat"), a...).must(t, http.StatusCreated).json(t)
			id := sr["id"].(string)
			sr["priority"] = "urgent"
			body, err := json.Marshal(sr)
			if err != nil {
				t.Fatal(err)
			}
			updates = append(updates, `{"resource":`+string(body)+`,"request":{"method":"PUT","url":"ServiceRequest/`+id+`"}}`)
			newTasks = append(newTasks, entry(fmt.Sprintf("urn:uuid:00000000-0000-0000-0000-%012d", i), "Task", ownTask("ServiceRequest/"+id, "Patient/lookups-pat")))
		}
		var res *response
		if n := tasks.during(func() { res = e.post("", transaction(updates...), a...).must(t, http.StatusOK) }); n != 1 {
			t.Errorf("the updates read their referrals' Tasks in %d round trips, want 1", n)
		}
		if s := entryStatuses(t, res); s["200 OK"] != referrals {
			t.Errorf("updates: %v, want %d 200 OK", s, referrals)
		}
		if n := tasks.during(func() { res = e.post("", transaction(newTasks...), a...).must(t, http.StatusOK) }); n != 1 {
			t.Errorf("the new Tasks read their referrals' Tasks in %d round trips, want 1", n)
		}
		if s := entryStatuses(t, res); s["200 OK"] != referrals {
			t.Errorf("new Tasks: %v, want %d answered with the Task held", s, referrals)
		}
	})
}

// A transaction updating several Consents that came with a referral reads
// the referral each is filed under in one round trip, and that referral's
// Task, to decide it again, in one, not one a Consent. The Consents are
// withdrawn, and the referral with them, as before.
func TestConsentTransactionReadsItsKeysInOneRoundTrip(t *testing.T) {
	t.Parallel()
	onOneRedisSpreadOrNot(t, func(t *testing.T, on ...func(*options)) {
		required := func(o *options) {
			withBaRSService(o)
			o.providers[0].Consent = gateway.ConsentRequired
		}
		e := setup(t, append(on, required, withWarnNHS)...)
		filed := newKeyReads("supporting|")
		tasks := newKeyReads("referral-task|")
		e.rdb.AddHook(filed)
		e.rdb.AddHook(tasks)
		a := as("practice-a")
		const consents = 4
		msg := barsMutant(t, func(b map[string]any, entries []any) {
			for i := range entries {
				if entryResource(entries, i)["resourceType"] != "Consent" {
					continue
				}
				for k := 1; k < consents; k++ {
					raw, _ := json.Marshal(entries[i])
					var copied map[string]any
					_ = json.Unmarshal(raw, &copied)
					copied["fullUrl"] = fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", k)
					entries = append(entries, copied)
				}
				b["entry"] = entries
				return
			}
		})
		_, sr, task := readBaRSAnswer(t, e.post("/$process-message", msg, a...).must(t, http.StatusOK))
		if task["status"] != "requested" {
			t.Fatalf("the referral's Task is %v, want requested (its Consents active)", task["status"])
		}
		_, stored := auditedEntries(t, e, msg)
		var withdrawals []string
		for _, ref := range stored {
			if !strings.HasPrefix(ref, "Consent/") {
				continue
			}
			consent := e.get("/"+ref, a...).must(t, http.StatusOK).json(t)
			consent["status"] = "inactive"
			body, err := json.Marshal(consent)
			if err != nil {
				t.Fatal(err)
			}
			withdrawals = append(withdrawals, `{"resource":`+string(body)+`,"request":{"method":"PUT","url":"`+ref+`"}}`)
		}
		if len(withdrawals) != consents {
			t.Fatalf("%d Consents stored, want %d", len(withdrawals), consents)
		}
		var taskReads int64
		filedReads := filed.during(func() {
			taskReads = tasks.during(func() { e.post("", transaction(withdrawals...), a...).must(t, http.StatusOK) })
		})
		if filedReads != 1 {
			t.Errorf("the Consents read the referral each is filed under in %d round trips, want 1", filedReads)
		}
		if taskReads != 1 {
			t.Errorf("the Consents read their referral's Task in %d round trips, want 1", taskReads)
		}
		if got := e.referralTask(t, sr["id"].(string)); got["status"] != "cancelled" || reasonCode(got) != gateway.ReasonConsentWithdrawn {
			t.Errorf("after the withdrawals: Task %v reason %q, want cancelled consent-withdrawn", got["status"], reasonCode(got))
		}
	})
}

// A provider's response reads its message id and X-Request-Id in one
// round trip, not one each; a response sent again is answered as before,
// and one under a used X-Request-Id is a duplicate.
func TestBaRSResponseReadsItsKeysInOneRoundTrip(t *testing.T) {
	t.Parallel()
	onOneRedisSpreadOrNot(t, func(t *testing.T, on ...func(*options)) {
		e := setup(t, append(on, withBaRSService, withWarnNHS)...)
		messageKeys := newKeyReads("message|", "message-request|")
		e.rdb.AddHook(messageKeys)
		taskID, sent := deliveredReferral(t, e)
		msg := barsAnswerTo("2b3c4d5e-6f70-4182-9a3b-4c5d6e7f8091", sent, taskID, "accepted", "")
		const rid = "66666666-6666-4666-8666-666666666666"
		if n := messageKeys.during(func() {
			e.post("/$process-message", msg, callerHeader, "walking", "X-Request-Id", rid).must(t, http.StatusOK)
		}); n != 1 {
			t.Errorf("the response read its message id and X-Request-Id in %d round trips, want 1", n)
		}
		if n := messageKeys.during(func() {
			e.post("/$process-message", msg, callerHeader, "walking").must(t, http.StatusOK)
		}); n != 1 {
			t.Errorf("sent again, the response read its keys in %d round trips, want 1", n)
		}
		other := barsAnswerTo("3c4d5e6f-7081-4293-8b4c-5d6e7f809102", sent, taskID, "completed", "")
		e.post("/$process-message", other, callerHeader, "walking", "X-Request-Id", rid).must(t, http.StatusConflict)
		if st, _, _ := e.taskStatus(t, taskID); st != "accepted" {
			t.Errorf("the Task is %s, want accepted", st)
		}
	})
}

// entryStatuses counts a transaction response's entries by their
// response.status.
func entryStatuses(t *testing.T, res *response) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, en := range res.json(t)["entry"].([]any) {
		out[en.(map[string]any)["response"].(map[string]any)["status"].(string)]++
	}
	return out
}
