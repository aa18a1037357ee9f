package retention_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/redisstore"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
	"github.com/signpost-health/signpost/gateway/retention"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// pastClockLag lets these tests' stores take what they write stamped by
// the fixed clock above, years behind Redis's (redisstore.SetStampLag).
const pastClockLag = 100 * 365 * 24 * time.Hour

// legacyStore is a store on s's keys that does not spread.
func legacyStore(s *redisstore.Store) *redisstore.Store {
	l := redisstore.New(s.Client(), "test")
	l.SetStampLag(pastClockLag)
	return l
}

const period = 180 * 24 * time.Hour

// referral stores a synthetic referral the way intake shapes it: a
// ServiceRequest, its Task (created, then moved to status at changed), a
// Provenance per Task version, a supporting Condition, and its unique keys.
func referral(t testing.TB, s *redisstore.Store, n, status string, changed time.Time, hold bool, job bool) {
	t.Helper()
	referralFor(t, s, "pat-"+n, n, status, changed, hold, job)
}

// referralFor stores a referral for the Patient patient (stored once, by
// the first referral for it). An n starting with a partition's prefix
// ("p05-go") places the referral's resources in that partition (their ids
// start with it: "p05-sr-go"); on a store that spreads referrals its
// Patient is stored on its own, in legacy, as one stored before the store
// spread.
func referralFor(t testing.TB, s *redisstore.Store, patient, n, status string, changed time.Time, hold bool, job bool) {
	t.Helper()
	ctx := context.Background()
	subject := gateway.SubjectTerm("Patient/" + patient)
	place, n := placed(n)
	sr, task, prov, cond := place+"sr-"+n, place+"task-"+n, place+"prov-"+n, place+"cond-"+n
	n = place + n
	made := changed.Add(-24 * time.Hour)
	tag := ""
	if hold {
		tag = `"meta":{"tag":[{"system":"` + retention.HoldSystem + `","code":"` + retention.HoldCode + `"}]},`
	}
	srBody := `{"resourceType":"ServiceRequest","id":"` + sr + `",` + tag + `"identifier":[{"system":"https://example-gp.nhs.uk/referral-id","value":"REF-` + n + `"}],"status":"active"}`
	taskBody := func(st string) []byte {
		return []byte(`{"resourceType":"Task","id":"` + task + `","status":"` + st + `","focus":{"reference":"ServiceRequest/` + sr + `"},` +
			`"authoredOn":"` + made.Format(time.RFC3339) + `","requester":{"identifier":{"value":"A81001"}},"owner":{"reference":"Organization/leeds-walking"},` +
			`"input":[{"valueCoding":{"system":"` + gateway.CategorySystem + `","code":"physical-activity"}}]}`)
	}
	c := &gateway.Commit{
		Unique: []gateway.UniqueKey{
			{Key: gateway.ReferralKey(gateway.Caller{ClientID: "practice-a"}, gateway.Identifier{System: "https://example-gp.nhs.uk/referral-id", Value: "REF-" + n}), Value: "ServiceRequest/" + sr},
			{Key: gateway.ReferralTaskKey(sr), Value: "Task/" + task},
			{Key: gateway.MessageOriginKey(sr), Value: "msg-" + n},
			{Key: gateway.MessageKey(gateway.Caller{ClientID: "practice-a"}, "msg-"+n), Value: "ServiceRequest/" + sr},
			{Key: gateway.SupportingKey("Condition/" + cond), Value: "ServiceRequest/" + sr},
		},
		Writes: []gateway.Write{
			{Resource: &gateway.Resource{Type: gateway.TypeServiceRequest, ID: sr, Owner: "practice-a", Version: 1, LastUpdated: made, Body: []byte(srBody)},
				Terms: []string{"status=active", "identifier=https://example-gp.nhs.uk/referral-id|REF-" + n, gateway.ClientTerm("practice-a"), subject}},
			{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: task, Owner: "practice-a", Version: 1, LastUpdated: made, Body: taskBody("requested")},
				Terms: []string{gateway.StatusTerm("requested"), gateway.FocusTerm("ServiceRequest/" + sr), gateway.ClientTerm("practice-a"), subject}},
			{Resource: &gateway.Resource{Type: gateway.TypeProvenance, ID: prov + "-1", Owner: "practice-a", Version: 1, LastUpdated: made, Body: []byte(`{}`)},
				Terms: []string{gateway.TargetTerm("Task/" + task), gateway.ClientTerm("practice-a")}},
			{Resource: &gateway.Resource{Type: "Condition", ID: cond, Owner: "practice-a", Version: 1, LastUpdated: made, Body: []byte(`{}`)},
				Terms: []string{gateway.ReferralTerm("ServiceRequest/" + sr)}},
		},
	}
	if _, err := s.Read(ctx, gateway.TypePatient, gateway.PatientKey("practice-a", patient)); err != nil {
		w := gateway.Write{Resource: &gateway.Resource{Type: gateway.TypePatient, ID: gateway.PatientKey("practice-a", patient),
			Owner: "practice-a", Version: 1, LastUpdated: made, Body: []byte(`{"resourceType":"Patient","id":"` + patient + `"}`)},
			Terms: []string{gateway.PatientIDTerm(patient), gateway.ClientTerm("practice-a")}}
		if place == "" && !s.Spread() {
			c.Writes = append(c.Writes, w)
		} else if res, err := legacyStore(s).Commit(ctx, &gateway.Commit{Writes: []gateway.Write{w}}); err != nil || !res.OK() {
			// On its own, in legacy, as stored before the store spread,
			// by a store on the same keys that does not spread (a new
			// Patient of a spreading store goes to its own place, beside
			// the referrals naming it: TestSpreadStorePlacesPatientsByTheirKey).
			t.Errorf("patient of %s: %v %+v", n, err, res)
		}
	}
	if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
		t.Errorf("referral %s: %v %+v", n, err, res)
		return
	}
	c = &gateway.Commit{Writes: []gateway.Write{
		{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: task, Owner: "practice-a", Version: 2, LastUpdated: changed, Body: taskBody(status)}, Expect: 1,
			Terms: []string{gateway.StatusTerm(status), gateway.FocusTerm("ServiceRequest/" + sr), gateway.ClientTerm("practice-a"), subject}},
		{Resource: &gateway.Resource{Type: gateway.TypeProvenance, ID: prov + "-2", Owner: "practice-a", Version: 1, LastUpdated: changed, Body: []byte(`{}`)},
			Terms: []string{gateway.TargetTerm("Task/" + task), gateway.ClientTerm("practice-a")}},
	}}
	if job {
		c.Jobs = []gateway.Job{{Queue: gateway.QueueNotify, Fields: []string{"event", "changed", "task", task}}}
	}
	if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
		t.Errorf("referral %s change: %v %+v", n, err, res)
	}
}

// placed splits n into its partition's prefix ("p05-") and the rest.
func placed(n string) (place, rest string) {
	if len(n) > 4 && n[0] == 'p' && n[3] == '-' {
		return n[:4], n[4:]
	}
	return "", n
}

// scan lists the namespace's keys, and for each sorted set and hash its members.
func scan(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	var keys []string
	var mu sync.Mutex
	each := func(ctx context.Context, node *redis.Client) error {
		ks, err := node.Keys(ctx, "{test[:}]*").Result() // legacy and the partitions
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, each)
	} else {
		err = each(ctx, rdb.(*redis.Client))
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch rdb.Type(ctx, k).Val() {
		case "zset":
			for _, m := range rdb.ZRange(ctx, k, 0, -1).Val() {
				out = append(out, k+" "+m)
			}
		case "hash":
			if strings.Contains(k, ":r:") {
				out = append(out, k)
				continue
			}
			for _, f := range rdb.HKeys(ctx, k).Val() {
				out = append(out, k+" "+f)
			}
		default:
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// redisOf starts what a test runs on: one Redis, or a Redis Cluster of
// three primaries with a replica each.
func redisOf(t *testing.T, cluster bool) redis.UniversalClient {
	t.Helper()
	if !cluster {
		return redistest.Start(t).Client()
	}
	cc := redisstore.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.StartCluster(t).Addrs()}, nil)
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestRetentionRemovesOnlyWhatThePolicyAllows(t *testing.T) {
	t.Run("redis", func(t *testing.T) { retentionRemovesOnlyWhatThePolicyAllows(t, redisOf(t, false), false) })
	t.Run("cluster", func(t *testing.T) { retentionRemovesOnlyWhatThePolicyAllows(t, redisOf(t, true), false) })
}

// The same on a store that spreads referrals: each referral in its own
// partition, its Patient in legacy (gone with it, in a step of its own),
// its queued job in its partition's queue, its journey kept there.
func TestSpreadRetentionRemovesOnlyWhatThePolicyAllows(t *testing.T) {
	t.Run("redis", func(t *testing.T) { retentionRemovesOnlyWhatThePolicyAllows(t, redisOf(t, false), true) })
	t.Run("cluster", func(t *testing.T) { retentionRemovesOnlyWhatThePolicyAllows(t, redisOf(t, true), true) })
}

func retentionRemovesOnlyWhatThePolicyAllows(t *testing.T, rdb redis.UniversalClient, spread bool) {
	s := redisstore.New(rdb, "test")
	s.SetStampLag(pastClockLag)
	in := func(place, n string) string { return n }
	if spread {
		s.SpreadReferrals()
		in = func(place, n string) string { return place + n }
	}
	ctx := context.Background()
	old := now.Add(-period - time.Hour)
	referral(t, s, in("p01-", "keep-open"), "in-progress", old, false, false)
	referral(t, s, in("p02-", "keep-recent"), "completed", now.Add(-time.Hour), false, false)
	referral(t, s, in("p03-", "keep-held"), "completed", old, true, false)
	referral(t, s, in("p04-", "keep-queued"), "cancelled", old, false, true)
	before := scan(t, rdb)
	referral(t, s, in("p05-", "go"), "completed", old, false, false)
	withGoing := scan(t, rdb)
	if spread && !slices.Contains(withGoing, "{test}:r:Patient:practice-a|pat-p05-go") {
		t.Fatalf("the Patient is not in legacy")
	}

	run := &retention.Runner{Store: s, Policy: retention.Policy{ClosedAfter: period}, Now: func() time.Time { return now }}
	dry, err := run.Run(ctx, true)
	if err != nil || dry.Removed != 1 || dry.Bytes <= 0 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if got := scan(t, rdb); !slices.Equal(got, withGoing) {
		t.Fatalf("a dry run changed Redis")
	}
	rep, err := run.Run(ctx, false)
	if err != nil || rep.Removed != 1 || rep.Held != 1 || rep.Queued != 1 {
		t.Fatalf("run: %+v %v", rep, err)
	}
	after := scan(t, rdb)
	// Every key and entry the removed referral added is gone (empty sorted
	// sets vanish with their last member) — so the state is the one before
	// it was made — but for the summary of its journey the outcomes view
	// counts, kept under the month it was sent.
	going := in("p05-", "task-go")
	tag := "{test}"
	for _, k := range withGoing {
		if t, ok := strings.CutSuffix(k, ":r:Task:"+going); ok {
			tag = t // the referral's partition
		}
	}
	if spread == (tag == "{test}") {
		t.Fatalf("the referral's partition is %s", tag)
	}
	before = append(before, tag+":jr:"+old.Add(-24*time.Hour).Format("2006-01")+" "+going)
	slices.Sort(before)
	if !slices.Equal(after, before) {
		t.Errorf("left behind or lost:\n only after:  %v\n only before: %v", diff(after, before), diff(before, after))
	}
	for i, id := range []string{"keep-open", "keep-recent", "keep-held", "keep-queued"} {
		if _, err := s.Read(ctx, gateway.TypeTask, in("p0"+strconv.Itoa(i+1)+"-", "task-"+id)); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if again, err := run.Run(ctx, false); err != nil || again.Removed != 0 {
		t.Errorf("second run: %+v %v", again, err)
	}
}

// A removal's leftover that no run can finish (here a record that cannot
// be decoded) is set aside and counted, and the run goes on to remove
// what the policy allows: before, it stopped every run from then on.
func TestSpreadRetentionGoesOnPastALeftoverItCannotFinish(t *testing.T) {
	t.Run("redis", func(t *testing.T) { retentionGoesOnPastALeftoverItCannotFinish(t, redisOf(t, false)) })
	t.Run("cluster", func(t *testing.T) { retentionGoesOnPastALeftoverItCannotFinish(t, redisOf(t, true)) })
}

func retentionGoesOnPastALeftoverItCannotFinish(t *testing.T, rdb redis.UniversalClient) {
	s := redisstore.New(rdb, "test")
	s.SetStampLag(pastClockLag)
	s.SpreadReferrals()
	ctx := context.Background()
	old := now.Add(-period - time.Hour)
	referral(t, s, "p05-go", "completed", old, false, false)
	tag := ""
	for _, k := range scan(t, rdb) {
		if t, ok := strings.CutSuffix(k, ":r:Task:p05-task-go"); ok {
			tag = t
		}
	}
	if tag == "" {
		t.Fatal("the referral's partition is not found")
	}
	if err := rdb.HSet(ctx, tag+":left", "p05-task-bad", "{not a leftover").Err(); err != nil {
		t.Fatal(err)
	}
	run := &retention.Runner{Store: s, Policy: retention.Policy{ClosedAfter: period}, Now: func() time.Time { return now }}
	rep, err := run.Run(ctx, false)
	if err != nil || rep.Removed != 1 || rep.SetAside != 1 {
		t.Fatalf("run: %+v %v; want the referral removed and the record set aside", rep, err)
	}
	if v := rdb.HGet(ctx, tag+":left:aside", "p05-task-bad").Val(); v != "{not a leftover" {
		t.Errorf("set aside: %q", v)
	}
	if again, err := run.Run(ctx, false); err != nil || again.SetAside != 0 {
		t.Errorf("second run: %+v %v", again, err)
	}
}

func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// scored records ONS4 life satisfaction for referral n (made by referral
// with status, changed at changed): before and after as Observations the
// referral holds, named by a third Task version's outputs, as a provider's
// recordings leave them.
func scored(t *testing.T, s *redisstore.Store, n, status string, changed time.Time, before, after int) {
	t.Helper()
	place, rest := placed(n)
	sr, task := "ServiceRequest/"+place+"sr-"+rest, place+"task-"+rest
	obs := func(point string, v int) gateway.Write {
		id := place + "obs-" + rest + "-" + point
		return gateway.Write{Resource: &gateway.Resource{Type: "Observation", ID: id, Owner: "practice-a", Version: 1, LastUpdated: changed,
			Body: []byte(`{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"https://signpost.health/fhir/CodeSystem/outcome-measure","code":"ons4-life-satisfaction"}]},` +
				`"extension":[{"url":"` + gateway.MeasurePointExtension + `","valueCode":"` + point + `"}],"focus":[{"reference":"Task/` + task + `"}],"valueInteger":` + strconv.Itoa(v) + `}`)},
			Terms: []string{gateway.ReferralTerm(sr)}}
	}
	output := func(point string) string {
		return `{"type":{"coding":[{"system":"` + gateway.MeasureOutputSystem + `","code":"` + gateway.MeasureScoreOutput + `"}]},"valueReference":{"reference":"Observation/` + place + `obs-` + rest + `-` + point + `"}}`
	}
	cur, err := s.Read(context.Background(), gateway.TypeTask, task)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimSuffix(string(cur.Body), "}") + `,"output":[` + output("first-contact") + `,` + output("completion") + `]}`
	c := &gateway.Commit{
		Unique: []gateway.UniqueKey{{Key: gateway.SupportingKey("Observation/" + place + "obs-" + rest + "-first-contact"), Value: sr}, {Key: gateway.SupportingKey("Observation/" + place + "obs-" + rest + "-completion"), Value: sr}},
		Writes: []gateway.Write{obs("first-contact", before), obs("completion", after),
			{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: task, Owner: "practice-a", Version: cur.Version + 1, LastUpdated: changed, Body: []byte(body)}, Expect: cur.Version,
				Terms: []string{gateway.StatusTerm(status), gateway.FocusTerm(sr), gateway.ClientTerm("practice-a"), gateway.SubjectTerm("Patient/pat-" + n)}}},
	}
	if res, err := s.Commit(context.Background(), c); err != nil || !res.OK() {
		t.Fatalf("scores of %s: %v %+v", n, err, res)
	}
}

// A Patient goes with the last referral that names it, and not before.
func TestPatientGoesWithItsLastReferral(t *testing.T) {
	patientGoesWithItsLastReferral(t, redisOf(t, false), "", "")
}

// The same on a store that spreads referrals, with the referrals in two
// partitions and the Patient in legacy: whether it goes is decided by
// every partition's referrals.
func TestSpreadPatientGoesWithItsLastReferral(t *testing.T) {
	t.Run("redis", func(t *testing.T) { patientGoesWithItsLastReferral(t, redisOf(t, false), "p03-", "p11-") })
	t.Run("cluster", func(t *testing.T) { patientGoesWithItsLastReferral(t, redisOf(t, true), "p03-", "p11-") })
}

func patientGoesWithItsLastReferral(t *testing.T, rdb redis.UniversalClient, firstPlace, secondPlace string) {
	s := redisstore.New(rdb, "test")
	s.SetStampLag(pastClockLag)
	if firstPlace != "" {
		s.SpreadReferrals()
	}
	ctx := context.Background()
	old := now.Add(-period - time.Hour)
	referralFor(t, s, "shared", firstPlace+"first", "completed", old, false, false)
	referralFor(t, s, "shared", secondPlace+"second", "in-progress", old, false, false)
	patient := gateway.PatientKey("practice-a", "shared")
	run := &retention.Runner{Store: s, Policy: retention.Policy{ClosedAfter: period}, Now: func() time.Time { return now }}
	if rep, err := run.Run(ctx, false); err != nil || rep.Removed != 1 {
		t.Fatalf("first run: %+v %v", rep, err)
	}
	if _, err := s.Read(ctx, gateway.TypePatient, patient); err != nil {
		t.Fatalf("the Patient went while an open referral names it: %v", err)
	}
	// The second referral closes; with it the Patient goes.
	task, sr := secondPlace+"task-second", secondPlace+"sr-second"
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: task, Owner: "practice-a",
		Version: 3, LastUpdated: old, Body: []byte(`{"resourceType":"Task","status":"completed","focus":{"reference":"ServiceRequest/` + sr + `"}}`)}, Expect: 2,
		Terms: []string{gateway.StatusTerm("completed"), gateway.FocusTerm("ServiceRequest/" + sr), gateway.ClientTerm("practice-a"), gateway.SubjectTerm("Patient/shared")}}}}); err != nil || !res.OK() {
		t.Fatalf("%v %+v", err, res)
	}
	if rep, err := run.Run(ctx, false); err != nil || rep.Removed != 1 {
		t.Fatalf("second run: %+v %v", rep, err)
	}
	if _, err := s.Read(ctx, gateway.TypePatient, patient); err != gateway.ErrNotFound {
		t.Errorf("the Patient stayed after its last referral went: %v", err)
	}
	for _, k := range scan(t, rdb) {
		if !strings.Contains(k, ":jr:") && !strings.Contains(k, ":sys") {
			t.Errorf("left behind: %s", k)
		}
	}
}

// A Patient a Consent names stays when its last referral goes: retention
// keeps Consents, and a Patient made again under the same id would be a
// new one the rules for a named Patient (its NHS number kept) never see,
// so the Consent would apply to whoever the GP system stores there next.
// A Consent that came with the referral (filed under it) goes with it,
// and then nothing keeps the Patient.
func TestPatientNamedByAConsentStays(t *testing.T) {
	t.Run("redis", func(t *testing.T) { patientNamedByAConsentStays(t, redisOf(t, false), "", "") })
	t.Run("spread", func(t *testing.T) { patientNamedByAConsentStays(t, redisOf(t, false), "p03-", "p11-") })
	t.Run("cluster", func(t *testing.T) { patientNamedByAConsentStays(t, redisOf(t, true), "p03-", "p11-") })
}

func patientNamedByAConsentStays(t *testing.T, rdb redis.UniversalClient, referralPlace, consentPlace string) {
	s := redisstore.New(rdb, "test")
	s.SetStampLag(pastClockLag)
	if referralPlace != "" {
		s.SpreadReferrals()
	}
	ctx := context.Background()
	old := now.Add(-period - time.Hour)
	run := &retention.Runner{Store: s, Policy: retention.Policy{ClosedAfter: period}, Now: func() time.Time { return now }}
	consent := func(id, patient string, filed string) {
		t.Helper()
		ref := "Patient/" + patient
		w := gateway.Write{Resource: &gateway.Resource{Type: gateway.TypeConsent, ID: id, Owner: "practice-a", Version: 1, LastUpdated: old,
			Body: []byte(`{"resourceType":"Consent","id":"` + id + `","status":"active","patient":{"reference":"` + ref + `"}}`)},
			Terms: gateway.ConsentTerms("active", &models.Reference{Reference: &ref}, "")}
		c := &gateway.Commit{Writes: []gateway.Write{w}}
		if filed != "" {
			w.Terms = append(w.Terms, gateway.ReferralTerm(filed))
			c = &gateway.Commit{Writes: []gateway.Write{w}, Unique: []gateway.UniqueKey{{Key: gateway.SupportingKey(gateway.TypeConsent + "/" + id), Value: filed}}}
		}
		if res, err := s.Commit(ctx, c); err != nil || !res.OK() {
			t.Fatalf("Consent %s: %v %+v", id, err, res)
		}
	}
	patientHeld := func(patient string) bool {
		t.Helper()
		_, err := s.Read(ctx, gateway.TypePatient, gateway.PatientKey("practice-a", patient))
		if err != nil && err != gateway.ErrNotFound {
			t.Fatal(err)
		}
		return err == nil
	}

	// A Consent on its own names the Patient: the referral goes, the
	// Patient stays.
	referralFor(t, s, "consented", referralPlace+"first", "completed", old, false, false)
	consent(consentPlace+"consent-own", "consented", "")
	if rep, err := run.Run(ctx, false); err != nil || rep.Removed != 1 {
		t.Fatalf("run: %+v %v", rep, err)
	}
	if !patientHeld("consented") {
		t.Errorf("the Patient went while a Consent names it")
	}

	// A Consent filed under the referral goes with it, and so does the
	// Patient.
	place, _ := placed(referralPlace + "x")
	referralFor(t, s, "filed", referralPlace+"second", "completed", old, false, false)
	consent(place+"consent-filed", "filed", "ServiceRequest/"+place+"sr-second")
	if rep, err := run.Run(ctx, false); err != nil || rep.Removed != 1 {
		t.Fatalf("run: %+v %v", rep, err)
	}
	if patientHeld("filed") {
		t.Errorf("the Patient stayed though only its removed referral's Consent named it")
	}
	if _, err := s.Read(ctx, gateway.TypeConsent, place+"consent-filed"); err != gateway.ErrNotFound {
		t.Errorf("the Consent filed under the removed referral: %v, want it gone", err)
	}

	// A Consent made between the read and the removal keeps the Patient
	// (the step is refused, and the referral looked at again).
	referralFor(t, s, "late", referralPlace+"third", "completed", old, false, false)
	rm, err := s.ReadRemoval(ctx, place+"task-third")
	if err != nil {
		t.Fatal(err)
	}
	consent(consentPlace+"consent-late", "late", "")
	if err := s.RemoveReferral(ctx, rm); err != nil && err != redisstore.ErrRemovalChanged {
		t.Fatal(err)
	}
	if _, err := run.Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, gateway.TypeTask, place+"task-third"); err != gateway.ErrNotFound {
		t.Errorf("the referral stayed: %v", err)
	}
	if !patientHeld("late") {
		t.Errorf("the Patient went though a Consent named it before its step")
	}
}

// A referral changed between the read and the removal is not removed.
func TestRemovalRefusesAChangedReferral(t *testing.T) {
	r := redistest.Start(t)
	s := redisstore.New(r.Client(), "test")
	s.SetStampLag(pastClockLag)
	ctx := context.Background()
	referral(t, s, "1", "completed", now.Add(-period-time.Hour), false, false)
	rm, err := s.ReadRemoval(ctx, "task-1")
	if err != nil {
		t.Fatal(err)
	}
	// Another process adds a Provenance for it (a late change).
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypeProvenance, ID: "late",
		Version: 1, LastUpdated: now, Body: []byte(`{}`)}, Terms: []string{gateway.TargetTerm("Task/task-1")}}}}); err != nil || !res.OK() {
		t.Fatal(err)
	}
	if err := s.RemoveReferral(ctx, rm); err != redisstore.ErrRemovalChanged {
		t.Fatalf("removal after a change: %v", err)
	}
	if _, err := s.Read(ctx, gateway.TypeTask, "task-1"); err != nil {
		t.Errorf("the Task is gone: %v", err)
	}
	// A new Task version likewise.
	rm, _ = s.ReadRemoval(ctx, "task-1")
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: "task-1", Owner: "practice-a",
		Version: 3, LastUpdated: now, Body: []byte(`{"status":"entered-in-error"}`)}, Expect: 2, Terms: []string{gateway.StatusTerm("entered-in-error")}}}}); err != nil || !res.OK() {
		t.Fatalf("%v %+v", err, res)
	}
	if err := s.RemoveReferral(ctx, rm); err != redisstore.ErrRemovalChanged {
		t.Fatalf("removal after a new version: %v", err)
	}
}

// The audit stream is trimmed by age when audit_after is set.
func TestAuditTrimmedByAge(t *testing.T) {
	r := redistest.Start(t)
	s := redisstore.New(r.Client(), "test")
	s.SetStampLag(pastClockLag)
	ctx := context.Background()
	key := "{test}:audit"
	oldMs := now.Add(-9 * 365 * 24 * time.Hour).UnixMilli()
	for i := range 300 {
		r.Client().XAdd(ctx, &redis.XAddArgs{Stream: key, ID: strconv.FormatInt(oldMs, 10) + "-" + strconv.Itoa(i+1), Values: []string{"a", "old"}})
	}
	for i := range 5 {
		r.Client().XAdd(ctx, &redis.XAddArgs{Stream: key, ID: strconv.FormatInt(now.UnixMilli(), 10) + "-" + strconv.Itoa(i+1), Values: []string{"a", "new"}})
	}
	run := &retention.Runner{Store: s, Policy: retention.Policy{AuditAfter: 8 * 365 * 24 * time.Hour}, Now: func() time.Time { return now }}
	rep, err := run.Run(ctx, false)
	if err != nil || rep.AuditTrimmed < 200 {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := r.Client().XLen(ctx, key).Val(); n > 105 || n < 5 {
		t.Errorf("%d records left", n)
	}
	last := r.Client().XRevRangeN(ctx, key, "+", "-", 5).Val()
	if len(last) != 5 || last[4].Values["a"] != "new" {
		t.Errorf("recent records lost: %v", last)
	}
}

// The outcomes view counts a removed referral as it did before: its
// report, CSV and MeasureReport for a period are the same before and
// after retention removes the period's closed referrals.
func TestOutcomesUnchangedByRemoval(t *testing.T) {
	outcomesUnchangedByRemoval(t, redisOf(t, false), false)
}

// The same on a store that spreads referrals: the journeys kept in each
// referral's partition (and one in legacy, made before spreading) are all
// counted.
func TestSpreadOutcomesUnchangedByRemoval(t *testing.T) {
	t.Run("redis", func(t *testing.T) { outcomesUnchangedByRemoval(t, redisOf(t, false), true) })
	t.Run("cluster", func(t *testing.T) { outcomesUnchangedByRemoval(t, redisOf(t, true), true) })
}

func outcomesUnchangedByRemoval(t *testing.T, rdb redis.UniversalClient, spread bool) {
	s := redisstore.New(rdb, "test")
	s.SetStampLag(pastClockLag)
	place := func(i int) string { return "" }
	if spread {
		s.SpreadReferrals()
		place = func(i int) string { // legacy first, then every third partition
			if i == 0 {
				return ""
			}
			return fmt.Sprintf("p%02d-", 3*i)
		}
	}
	ctx := context.Background()
	old := now.Add(-period - time.Hour)
	for i, st := range []string{"completed", "rejected", "cancelled", "failed", "in-progress", "completed"} {
		referral(t, s, place(i)+"o"+strconv.Itoa(i), st, old.Add(-time.Duration(i)*time.Hour), false, false)
	}
	// Outcome measures, before and after, for two of the referrals removed.
	scored(t, s, place(0)+"o0", "completed", old, 3, 7)
	scored(t, s, place(5)+"o5", "completed", old.Add(-5*time.Hour), 4, 6)
	referral(t, s, place(1)+"recent", "completed", now.Add(-time.Hour), false, false)
	view := insights.New(gateway.NewCore(gateway.Options{Store: s, Providers: []gateway.Provider{{ID: "leeds-walking", Name: "Leeds Walking"}}}))
	from, to := old.Add(-30*24*time.Hour), now
	report := func() (*insights.Report, string, string) {
		t.Helper()
		rep, err := view.Insights(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var csv strings.Builder
		if err := rep.WriteCSV(&csv); err != nil {
			t.Fatal(err)
		}
		return rep, csv.String(), string(rep.MeasureReport("m", now))
	}
	before, beforeCSV, beforeMR := report()
	if before.Total.Funnel.Sent != 7 || before.Total.Funnel.Completed != 3 || len(before.Total.Measures) != 1 || before.Total.Measures[0].Pairs != 2 {
		t.Fatalf("the report before removal: %+v %+v", before.Total.Funnel, before.Total.Measures)
	}
	rep, err := (&retention.Runner{Store: s, Policy: retention.Policy{ClosedAfter: period}, Now: func() time.Time { return now }}).Run(ctx, false)
	if err != nil || rep.Removed != 5 {
		t.Fatalf("run: %+v %v", rep, err)
	}
	for _, i := range []int{0, 1, 2, 3, 5} {
		if _, err := s.Read(ctx, gateway.TypeTask, place(i)+"task-o"+strconv.Itoa(i)); err != gateway.ErrNotFound {
			t.Errorf("referral o%d was not removed: %v", i, err)
		}
	}
	after, afterCSV, afterMR := report()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the report changed:\n before %+v\n after  %+v", before.Total, after.Total)
	}
	if beforeCSV != afterCSV || beforeMR != afterMR {
		t.Errorf("the CSV or the MeasureReport changed:\n%s\n%s", beforeCSV, afterCSV)
	}
}

// swell gives referral n's Task provs more Provenances and keys more keys
// filed under it, as a long life or a flood of changes and messages would.
func swell(t *testing.T, s *redisstore.Store, n string, changed time.Time, provs, keys int) {
	t.Helper()
	place, rest := placed(n)
	task := "Task/" + place + "task-" + rest
	for done := 0; done < provs || done < keys; done += 100 {
		c := &gateway.Commit{}
		for i := done; i < done+100; i++ {
			if i < provs {
				c.Writes = append(c.Writes, gateway.Write{Resource: &gateway.Resource{Type: gateway.TypeProvenance, ID: place + "prov-" + rest + "-x" + strconv.Itoa(i),
					Owner: "practice-a", Version: 1, LastUpdated: changed, Body: []byte(`{}`)}, Terms: []string{gateway.TargetTerm(task), gateway.ClientTerm("practice-a")}})
			}
			if i < keys {
				c.Unique = append(c.Unique, gateway.UniqueKey{Key: "message-request|practice-a|" + n + "-" + strconv.Itoa(i), Value: task, Of: task})
			}
		}
		if res, err := s.Commit(context.Background(), c); err != nil || !res.OK() {
			t.Fatalf("swell %s: %v %+v", n, err, res)
		}
	}
}

// A referral with more Provenances and filed keys than one removal takes
// goes in bounded steps, whole; a step is refused once the Task changes.
func TestLargeReferralGoesInSteps(t *testing.T) {
	largeReferralGoesInSteps(t, redisOf(t, false), "")
}

// The same on a store that spreads referrals: the steps and the last
// removal in the referral's partition, its Patient after them in legacy.
func TestSpreadLargeReferralGoesInSteps(t *testing.T) {
	t.Run("redis", func(t *testing.T) { largeReferralGoesInSteps(t, redisOf(t, false), "p07-") })
	t.Run("cluster", func(t *testing.T) { largeReferralGoesInSteps(t, redisOf(t, true), "p07-") })
}

func largeReferralGoesInSteps(t *testing.T, rdb redis.UniversalClient, place string) {
	s := redisstore.New(rdb, "test")
	s.SetStampLag(pastClockLag)
	if place != "" {
		s.SpreadReferrals()
	}
	ctx := context.Background()
	old := now.Add(-period - time.Hour)
	referral(t, s, place+"big", "completed", old, false, false)
	swell(t, s, place+"big", old, 2*redisstore.MaxRemovedProvenances+100, 2*redisstore.MaxClaimedKeys+100)

	// A step read, then a change of the Task: the step removes nothing.
	task, sr := place+"task-big", place+"sr-big"
	rm, err := s.ReadRemoval(ctx, task)
	if err != nil || !rm.Step {
		t.Fatalf("read: %+v %v", rm, err)
	}
	if res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypeTask, ID: task, Owner: "practice-a",
		Version: 3, LastUpdated: old, Body: []byte(`{"resourceType":"Task","status":"completed","focus":{"reference":"ServiceRequest/` + sr + `"}}`)}, Expect: 2,
		Terms: []string{gateway.StatusTerm("completed"), gateway.FocusTerm("ServiceRequest/" + sr), gateway.ClientTerm("practice-a"), gateway.SubjectTerm("Patient/pat-" + place + "big")}}}}); err != nil || !res.OK() {
		t.Fatalf("%v %+v", err, res)
	}
	before := len(scan(t, rdb))
	if err := s.RemoveReferral(ctx, rm); err != redisstore.ErrRemovalChanged {
		t.Fatalf("a step after a change: %v", err)
	}
	if after := len(scan(t, rdb)); after != before {
		t.Fatalf("a refused step removed %d entries", before-after)
	}

	rep, err := (&retention.Runner{Store: s, Policy: retention.Policy{ClosedAfter: period}, Now: func() time.Time { return now }}).Run(ctx, false)
	if err != nil || rep.Removed != 1 || rep.Steps < 4 || rep.TooLarge != 0 {
		t.Fatalf("run: %+v %v", rep, err)
	}
	for _, k := range scan(t, rdb) {
		if !strings.Contains(k, ":jr:") && !strings.Contains(k, ":sys") {
			t.Errorf("left behind: %s", k)
		}
	}
}

// Pacing works a share of the time: with 0.2 it waits four times what the
// referral took; with none it does not wait.
func TestPacing(t *testing.T) {
	for _, c := range []struct {
		share      float64
		took, want time.Duration
	}{{0.2, 10 * time.Millisecond, 40 * time.Millisecond}, {0.5, 10 * time.Millisecond, 10 * time.Millisecond}, {0, time.Second, 0}, {1, time.Second, 0}} {
		if got := (&retention.Runner{Share: c.share}).WaitAfter(c.took); got != c.want {
			t.Errorf("share %v after %s: wait %s, want %s", c.share, c.took, got, c.want)
		}
	}
}
