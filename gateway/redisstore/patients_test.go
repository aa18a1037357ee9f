package redisstore

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/usecases"
)

// Patients stored before Patient ids were each client's own are moved to
// their owners' keys, with their versions and index entries: once moved,
// each practice reads, vreads and searches its own. A run stopped part way
// is finished by the next; a run after the last does nothing; a Patient
// whose owner already holds one of the same id is left where it is, not lost.
func TestScopePatientsMovesLegacyPatients(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	legacy := func(id, owner, nhs, name string, version int) {
		t.Helper()
		body := `{"resourceType":"Patient","id":"` + id + `","meta":{"versionId":"` + itoa(version) + `"},"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}],"name":[{"text":"` + name + `"}]}`
		// The store alone writes as before the scoping: under the bare id.
		res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypePatient, ID: id, Version: version,
			LastUpdated: time.UnixMilli(1_700_000_000_000 + int64(version)), Body: []byte(body), Owner: owner}, Expect: version - 1,
			Terms: []string{"identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhs, "_client=" + owner}}}})
		if err != nil || !res.OK() {
			t.Fatalf("legacy write: %v %+v", err, res)
		}
	}
	legacy("1", "practice-a", "9434765919", "Ann Testpatient", 1)
	legacy("1", "practice-a", "9434765919", "Ann B Testpatient", 2)
	legacy("2", "practice-b", "9000000009", "Bea Testpatient", 1)
	legacy("3", "practice-a", "9000000009", "Cy Testpatient", 1)

	// A run stopped after its first Patient.
	if out, err := s.scopePatient(ctx, "1"); err != nil || out != "moved" {
		t.Fatalf("first Patient: %q %v", out, err)
	}
	// Practice a made its own Patient/3 after the upgrade, before the move.
	svc := usecases.New(gateway.Options{Store: s})
	a := gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP}
	b := gateway.Caller{ClientID: "practice-b", Kind: gateway.CallerGP}
	if _, err := svc.Intake.Update(ctx, a, gateway.TypePatient, "3", []byte(`{"resourceType":"Patient","id":"3","name":[{"text":"Dee Testpatient"}]}`), "", nil); err != nil {
		t.Fatal(err)
	}
	moved, left, err := s.ScopePatients(ctx)
	if err != nil || moved != 1 || left != 1 {
		t.Fatalf("the run after: moved %d, left %d, %v; want 1, 1", moved, left, err)
	}
	if n, _ := s.rdb.Exists(ctx, s.keys.resource(gateway.TypePatient, "3")).Result(); n != 1 {
		t.Errorf("the legacy Patient whose id its owner reused is gone")
	}

	read := func(c gateway.Caller, id, want string) {
		t.Helper()
		r, err := svc.Search.Read(ctx, c, gateway.TypePatient, id)
		if err != nil || !strings.Contains(string(r.Body), want) || r.ID != id {
			t.Errorf("%s reads Patient/%s: %v %+v", c.ClientID, id, err, r)
		}
	}
	read(a, "1", "Ann B Testpatient")
	read(b, "2", "Bea Testpatient")
	if v, err := svc.Search.ReadVersion(ctx, a, gateway.TypePatient, "1", "1"); err != nil || !strings.Contains(string(v.Body), `"Ann Testpatient"`) {
		t.Errorf("vread of a moved Patient: %v %+v", err, v)
	}
	if _, err := svc.Search.Read(ctx, b, gateway.TypePatient, "1"); err == nil {
		t.Errorf("practice b reads practice a's Patient/1")
	}
	for _, q := range []url.Values{{"identifier": {"https://fhir.nhs.uk/Id/nhs-number|9434765919"}}, {"_id": {"1"}}} {
		res, err := svc.Search.Search(ctx, a, gateway.TypePatient, q, false)
		if err != nil || res.Total != 1 || res.Matches[0].ID != "1" || !strings.Contains(string(res.Matches[0].Body), "Ann B") {
			t.Errorf("search %v after the move: %v %+v", q, err, res)
		}
	}
	// An update after the move keeps the index right (a kept Patient keeps
	// its NHS number: the update changes another identifier).
	for version, local := range []string{"L-1", "L-2"} {
		body := `{"resourceType":"Patient","id":"1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"},` +
			`{"system":"https://example-gp.nhs.uk/patient-id","value":"` + local + `"}],"name":[{"text":"Ann C Testpatient"}]}`
		if _, err := svc.Intake.Update(ctx, a, gateway.TypePatient, "1", []byte(body), `W/"`+strconv.Itoa(version+2)+`"`, nil); err != nil {
			t.Fatal(err)
		}
	}
	for value, want := range map[string]int{"https://example-gp.nhs.uk/patient-id|L-1": 0, "https://example-gp.nhs.uk/patient-id|L-2": 1, "https://fhir.nhs.uk/Id/nhs-number|9434765919": 1} {
		res, err := svc.Search.Search(ctx, a, gateway.TypePatient, url.Values{"identifier": {value}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != want {
			t.Errorf("identifier %s finds the updated Patient %d times; want %d", value, res.Total, want)
		}
	}

	// Once the clash is resolved (here: the legacy Patient removed by hand),
	// a run marks the store done; then runs do nothing.
	s.rdb.Del(ctx, s.keys.resource(gateway.TypePatient, "3"))
	if moved, left, err := s.ScopePatients(ctx); err != nil || moved != 0 || left != 0 {
		t.Errorf("a run with nothing to move: %d %d %v", moved, left, err)
	}
	if done, _ := s.rdb.Get(ctx, s.keys.migration("patient-scope")).Result(); done != scopedPatientsDone {
		t.Errorf("the store is not marked done: %q", done)
	}
	if n, _ := s.rdb.ZCard(ctx, s.keys.all(gateway.TypePatient)).Result(); n != 3 {
		t.Errorf("%d Patients in the set of all, want 3", n)
	}
}

// A legacy Patient updated between the read of its index keys and the move
// is read again, and moved with the index keys it has then: none of its
// new terms is left pointing at the legacy id. One that keeps changing is
// left where it is, with an error.
func TestScopePatientReadsAgainWhenItsTermsChange(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	write := func(nhs string, version int) {
		t.Helper()
		res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypePatient, ID: "1", Version: version,
			LastUpdated: time.UnixMilli(1_700_000_000_000 + int64(version)), Body: []byte(`{"resourceType":"Patient","id":"1"}`), Owner: "practice-a"},
			Expect: version - 1, Terms: []string{"identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhs, "_client=practice-a"}}}})
		if err != nil || !res.OK() {
			t.Fatalf("legacy write: %v %+v", err, res)
		}
	}
	write("9434765919", 1)
	version := 1
	s.afterRead = func() {
		if version == 1 {
			version++
			write("9000000009", version)
		}
	}
	if out, err := s.scopePatient(ctx, "1"); err != nil || out != "moved" {
		t.Fatalf("scopePatient = %q, %v", out, err)
	}
	if version != 2 {
		t.Fatal("the race never ran")
	}
	scoped := gateway.PatientKey("practice-a", "1")
	term := func(t string) string { return s.keys.term(gateway.TypePatient, t) }
	for _, k := range []string{term("identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"), term("_client=practice-a")} {
		if got := s.rdb.ZRange(ctx, k, 0, -1).Val(); len(got) != 1 || got[0] != scoped {
			t.Errorf("%s holds %v, want only %s", k, got, scoped)
		}
	}
	if n := s.rdb.ZCard(ctx, term("identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919")).Val(); n != 0 {
		t.Errorf("the old identifier's set holds %d, want 0", n)
	}

	// A second legacy Patient whose terms change on every read.
	res, err := s.Commit(ctx, &gateway.Commit{Writes: []gateway.Write{{Resource: &gateway.Resource{Type: gateway.TypePatient, ID: "2", Version: 1,
		LastUpdated: time.UnixMilli(1_700_000_000_000), Body: []byte(`{"resourceType":"Patient","id":"2"}`), Owner: "practice-a"},
		Expect: 0, Terms: []string{"_client=practice-a"}}}})
	if err != nil || !res.OK() {
		t.Fatal(err, res)
	}
	reads := 0
	s.afterRead = func() {
		reads++
		s.rdb.HSet(ctx, s.keys.resource(gateway.TypePatient, "2"), "x", term("_client=practice-a")+"\n"+term("n="+itoa(reads)))
	}
	if out, err := s.scopePatient(ctx, "2"); !errors.Is(err, ErrKeptChanging) {
		t.Fatalf("scopePatient = %q, %v, want ErrKeptChanging", out, err)
	}
	if reads != maxRereads {
		t.Errorf("%d reads, want %d", reads, maxRereads)
	}
	if s.rdb.Exists(ctx, s.keys.resource(gateway.TypePatient, "2")).Val() != 1 {
		t.Error("a Patient that kept changing was moved anyway")
	}
}
