package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/auth"
)

// kickoffHeaders are what the Bulk Data IG has a client send.
var kickoffHeaders = []string{"Accept", "application/fhir+json", "Prefer", "respond-async"}

type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error     []any          `json:"error"`
	Extension map[string]any `json:"extension"`
}

// exportAll drives an export as a Bulk Data client does: kick-off, polling
// until the manifest, then every file; it returns the manifest and the
// resources of each file by type.
func (e *env) exportAll(t *testing.T, query string, headers ...string) (manifest, map[string][]map[string]any) {
	t.Helper()
	res := e.get("/$export"+query, append(append([]string{}, kickoffHeaders...), headers...)...).must(t, http.StatusAccepted)
	status := res.header.Get("Content-Location")
	if !strings.HasPrefix(status, e.base+"/$export-status/") {
		t.Fatalf("Content-Location %q", status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res = e.get(status, headers...)
		if res.status == http.StatusOK {
			break
		}
		res.must(t, http.StatusAccepted)
		if res.header.Get("X-Progress") == "" || res.header.Get("Retry-After") == "" {
			t.Fatalf("a running export's status has no X-Progress or Retry-After: %v", res.header)
		}
		if time.Now().After(deadline) {
			t.Fatal("the export did not finish")
		}
		e.svc.Export.Wait() // the job runs in this process: no need to sleep
	}
	var m manifest
	if err := json.Unmarshal(res.body, &m); err != nil {
		t.Fatalf("manifest: %v: %s", err, res.body)
	}
	if !m.RequiresAccessToken || m.Error == nil || m.TransactionTime == "" || m.Request != e.base+"/$export"+query {
		t.Errorf("manifest: %s", res.body)
	}
	files := map[string][]map[string]any{}
	for _, o := range m.Output {
		res := e.get(o.URL, headers...).must(t, http.StatusOK)
		if ct := res.header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			t.Errorf("%s: Content-Type %q", o.Type, ct)
		}
		sc := bufio.NewScanner(bytes.NewReader(res.body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r map[string]any
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: a line is not JSON: %v", o.Type, err)
			}
			if r["resourceType"] != o.Type {
				t.Errorf("%s file holds a %v", o.Type, r["resourceType"])
			}
			if v := structure.Validate(sc.Bytes()); !v.Valid() {
				t.Errorf("%s/%v is not valid R4: %+v", o.Type, r["id"], v.Issues)
			}
			files[o.Type] = append(files[o.Type], r)
		}
		if len(files[o.Type]) != o.Count {
			t.Errorf("%s: %d lines, manifest says %d", o.Type, len(files[o.Type]), o.Count)
		}
	}
	return m, files
}

func TestExportEndToEnd(t *testing.T) {
	t.Parallel()
	onEachRedis(t, testExportEndToEnd)
}

// On a store that spreads referrals, the export reads every partition:
// each type's file holds every partition's resources, pages crossing them.
func TestSpreadExportEndToEnd(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		testExportEndToEnd(t, func(o *options) { on(o); spread(o) })
	})
}

func testExportEndToEnd(t *testing.T, on func(*options)) {
	t.Parallel()
	e := setup(t, on)
	// More referrals than a page (PageSize 3 in setup), so paging is crossed.
	srs := map[string]bool{}
	for _, ident := range []string{"EX-1", "EX-2", "EX-3", "EX-4", "EX-5"} {
		sr := e.post("/ServiceRequest", referral(ident, "390893007")).must(t, http.StatusCreated).json(t)
		srs[sr["id"].(string)] = true
	}
	if e.store.Spread() {
		places := map[string]bool{}
		for id := range srs {
			places[id[:4]] = true
		}
		if len(places) < 2 {
			t.Fatalf("the referrals fell in %d partitions: the export would cross none", len(places))
		}
	}
	m, files := e.exportAll(t, "")
	if got := files["ServiceRequest"]; len(got) != len(srs) {
		t.Fatalf("%d ServiceRequests exported, %d stored", len(got), len(srs))
	}
	for _, r := range files["ServiceRequest"] {
		if !srs[r["id"].(string)] {
			t.Errorf("exported ServiceRequest %v was not stored", r["id"])
		}
	}
	// Each referral has its Task (and names its patient by NHS number: no
	// Patient resource is stored, so none is exported).
	if len(files["Task"]) != len(srs) || len(files["Patient"]) != 0 {
		t.Errorf("exported: %d Tasks, %d Patients", len(files["Task"]), len(files["Patient"]))
	}
	for _, o := range m.Output {
		if o.Count == 0 {
			t.Errorf("an empty file is listed: %+v", o)
		}
	}

	// The files are the operator's only: unguessable names, mode 0600.
	for _, o := range m.Output {
		u, _ := url.Parse(o.URL)
		name := filepath.Base(u.Path)
		job := filepath.Base(filepath.Dir(u.Path))
		info, err := os.Stat(filepath.Join(e.exportDir, job, name))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, info, err)
		}
		if len(name) < len(o.Type)+20 {
			t.Errorf("file name %q is guessable", name)
		}
	}

	t.Run("_type", func(t *testing.T) {
		_, files := e.exportAll(t, "?_type=Task,Patient")
		if len(files) != 1 || len(files["Task"]) != len(srs) {
			t.Errorf("_type=Task,Patient exported %d types: Tasks %d", len(files), len(files["Task"]))
		}
	})
	t.Run("_since", func(t *testing.T) {
		since := time.Now().UTC()
		time.Sleep(5 * time.Millisecond) // lastUpdated is to the millisecond
		sr := e.post("/ServiceRequest", referral("EX-LATE", "390893007")).must(t, http.StatusCreated).json(t)
		_, files := e.exportAll(t, "?_type=ServiceRequest&_since="+url.QueryEscape(since.Format(time.RFC3339Nano)))
		if got := files["ServiceRequest"]; len(got) != 1 || got[0]["id"] != sr["id"] {
			t.Errorf("_since exported %d ServiceRequests, want the one made after it", len(got))
		}
	})
	t.Run("others may not see it", func(t *testing.T) {
		res := e.get("/$export?_type=Task", kickoffHeaders...).must(t, http.StatusAccepted)
		status := res.header.Get("Content-Location")
		for _, who := range []string{"practice-b", "walking", "practice-a"} {
			// practice-a as a GP is not the operator who started it.
			e.get(status, callerHeader, who).must(t, http.StatusNotFound)
			e.do(http.MethodDelete, status, nil, callerHeader, who).must(t, http.StatusNotFound)
		}
		e.svc.Export.Wait()
		var m manifest
		_ = json.Unmarshal(e.get(status).must(t, http.StatusOK).body, &m)
		for _, o := range m.Output {
			e.get(o.URL, callerHeader, "practice-b").must(t, http.StatusNotFound)
		}
		// Its starter cancels it: the files go, and the job with them.
		e.do(http.MethodDelete, status, nil).must(t, http.StatusAccepted)
		e.get(status).must(t, http.StatusNotFound)
		for _, o := range m.Output {
			e.get(o.URL).must(t, http.StatusNotFound)
		}
	})
}

func TestExportRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct {
		name, query string
		headers     []string
		element     string
	}{
		{"no Prefer", "", []string{"Accept", "application/fhir+json"}, "Prefer"},
		{"no Accept", "", []string{"Prefer", "respond-async"}, "Accept"},
		{"unknown type", "?_type=Task,Medication", kickoffHeaders, "_type"},
		{"bad since", "?_since=yesterday", kickoffHeaders, "_since"},
		{"since without a zone", "?_since=2026-01-01T00:00:00", kickoffHeaders, "_since"},
		{"other format", "?_outputFormat=text/csv", kickoffHeaders, "_outputFormat"},
		{"unsupported parameter", "?_typeFilter=Task%3Fstatus%3Dcompleted", kickoffHeaders, "_typeFilter"},
	} {
		res := e.get("/$export"+tc.query, tc.headers...).must(t, http.StatusBadRequest)
		if !strings.Contains(string(res.body), `"expression":["`+tc.element+`"]`) {
			t.Errorf("%s: the outcome does not name %s: %s", tc.name, tc.element, res.body)
		}
	}
	for _, who := range []string{"practice-a", "walking"} {
		e.get("/$export", append([]string{callerHeader, who}, kickoffHeaders...)...).must(t, http.StatusForbidden)
	}
	// Kick-offs are audited, refused or accepted, with the job they started.
	res := e.get("/$export?_type=Task", kickoffHeaders...).must(t, http.StatusAccepted)
	job := strings.TrimPrefix(res.header.Get("Content-Location"), e.base+"/$export-status/")
	e.svc.Export.Wait()
	var refused, started bool
	entries, err := e.store.AuditTail(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		r := en.Record
		refused = refused || (r.Interaction == "operation" && r.Status == http.StatusForbidden && r.Client == "walking")
		started = started || (r.Interaction == "operation" && r.Status == http.StatusAccepted && slices.Contains(r.What, "$export-status/"+job))
	}
	if !refused || !started {
		t.Errorf("audit trail: refused kick-off kept %v, accepted kick-off kept %v", refused, started)
	}
	if md := e.get("/metadata").must(t, http.StatusOK); !strings.Contains(string(md.body), `"definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"`) {
		t.Error("the CapabilityStatement does not list $export")
	}
	e.get("/$export-status/00000000000000000000000000000000").must(t, http.StatusNotFound)
	e.get("/$export-status/not-a-job").must(t, http.StatusNotFound)
	e.get("/$export-file/00000000000000000000000000000000/x.ndjson").must(t, http.StatusNotFound)
}

// With SMART, a token must allow reading every type exported: a GP
// system's token does not, so it is refused before anything starts.
func TestExportNeedsSystemReadScopes(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.smart = smartClients(t) })
	tok := e.token(t, "practice-a", "")
	res := e.get("/$export", append(bearer(tok), kickoffHeaders...)...).must(t, http.StatusForbidden)
	if !strings.Contains(res.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("WWW-Authenticate %q", res.header.Get("WWW-Authenticate"))
	}
	// Even with scopes for its types: a GP system is not an operator.
	e.get("/$export?_type=Task", append(bearer(tok), kickoffHeaders...)...).must(t, http.StatusForbidden)
}

// With SMART, the clients under operators: take exports and nothing else:
// an evaluator de-identified exports only, the operator's system either;
// neither reads a record through any other route, whatever its scopes.
func TestOperatorsExportUnderSMART(t *testing.T) {
	t.Parallel()
	clients := append(smartClients(t),
		auth.Client{ID: "evaluator", Kind: auth.KindEvaluator, JWKS: gpJWKS, Scopes: []string{"system/*.rs"}},
		auth.Client{ID: "exporter", Kind: auth.KindExporter, JWKS: gpJWKS, Scopes: []string{"system/*.rs"}})
	e := setup(t, func(o *options) { o.smart = clients; o.pseudonymKey = keyA })
	gp := bearer(e.token(t, "practice-a", ""))
	created := e.post("/ServiceRequest", referral("OPS-1", "390893007"), gp...).must(t, http.StatusCreated)
	srID := created.header.Get("Location")

	evaluator := bearer(e.token(t, "evaluator", ""))
	e.get("/$export", append(append([]string{}, evaluator...), kickoffHeaders...)...).must(t, http.StatusForbidden)
	m, files := e.exportAll(t, "?_deidentify=true", evaluator...)
	if len(files[gateway.TypeServiceRequest]) != 1 || m.Extension == nil {
		t.Errorf("the evaluator's de-identified export: %d referrals, manifest extension %v", len(files[gateway.TypeServiceRequest]), m.Extension)
	}
	exporter := bearer(e.token(t, "exporter", ""))
	if _, files := e.exportAll(t, "?_type=ServiceRequest", exporter...); len(files[gateway.TypeServiceRequest]) != 1 {
		t.Errorf("the operator's export holds %d referrals", len(files[gateway.TypeServiceRequest]))
	}
	// Another's export is unknown to each.
	status := e.get("/$export?_deidentify=true", append(append([]string{}, evaluator...), kickoffHeaders...)...).must(t, http.StatusAccepted).header.Get("Content-Location")
	e.get(status, exporter...).must(t, http.StatusNotFound)
	e.get(status, gp...).must(t, http.StatusNotFound)

	for _, who := range [][]string{evaluator, exporter} {
		for _, path := range []string{"/ServiceRequest", "/Task", "/Patient", srID, "/Task?status=requested"} {
			res := e.get(path, who...).must(t, http.StatusForbidden)
			if !strings.Contains(string(res.body), "$export") {
				t.Errorf("GET %s: %s", path, res.body)
			}
		}
		e.post("/ServiceRequest", referral("OPS-2", "390893007"), who...).must(t, http.StatusForbidden)
	}
}

// Patient ids are each practice's own, and the full export holds every
// practice's: two practices' Patient/1 are two Patients with two ids in
// it, and each referral's subject (and its Task's for) names its own
// practice's, in every file. On a store that spreads referrals too.
func TestFullExportPatientIdsAreUniqueAcrossPractices(t *testing.T) {
	t.Parallel()
	for name, on := range map[string]func(*options){"one partition": func(*options) {}, "spread": spread} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testFullExportPatientIds(t, on)
		})
	}
}

func testFullExportPatientIds(t *testing.T, on func(*options)) {
	e := setup(t, on)
	a, b := as("practice-a"), as("practice-b")
	patient := func(nhs, name string) []byte {
		return []byte(`{"resourceType":"Patient","id":"1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}],"name":[{"text":"` + name + `"}]}`)
	}
	e.put("/Patient/1", patient(nhsNumber, "Ann Testpatient"), a...).must(t, http.StatusCreated)
	e.put("/Patient/1", patient(nhsNumber2, "Bea Testpatient"), b...).must(t, http.StatusCreated)
	toPatient1 := func(ident, ods string) []byte {
		sr := strings.Replace(string(referral(ident, "390893007")), `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhsNumber+`"}}`, `"subject":{"reference":"Patient/1"}`, 1)
		return []byte(strings.Replace(sr, `"value":"`+practiceODS+`"`, `"value":"`+ods+`"`, 1))
	}
	want := map[string]string{ // ServiceRequest id: its patient's name
		e.post("/ServiceRequest", toPatient1("FX-A", practiceODS), a...).must(t, http.StatusCreated).json(t)["id"].(string): "Ann Testpatient",
		e.post("/ServiceRequest", toPatient1("FX-B", "B82002"), b...).must(t, http.StatusCreated).json(t)["id"].(string):    "Bea Testpatient",
	}

	_, files := e.exportAll(t, "") // every line checked as R4 there
	named := map[string]string{}   // Patient id in the export: name
	for _, p := range files["Patient"] {
		named["Patient/"+p["id"].(string)] = p["name"].([]any)[0].(map[string]any)["text"].(string)
	}
	if len(files["Patient"]) != 2 || len(named) != 2 {
		t.Fatalf("%d Patients exported under %d ids, want 2 under 2: %v", len(files["Patient"]), len(named), named)
	}
	if len(files["ServiceRequest"]) != 2 || len(files["Task"]) != 2 {
		t.Fatalf("exported %d ServiceRequests, %d Tasks", len(files["ServiceRequest"]), len(files["Task"]))
	}
	for _, sr := range files["ServiceRequest"] {
		ref := sr["subject"].(map[string]any)["reference"].(string)
		if named[ref] != want[sr["id"].(string)] {
			t.Errorf("ServiceRequest %v: subject %s is %q, want %q", sr["id"], ref, named[ref], want[sr["id"].(string)])
		}
	}
	for _, task := range files["Task"] {
		sr := strings.TrimPrefix(task["focus"].(map[string]any)["reference"].(string), "ServiceRequest/")
		ref := task["for"].(map[string]any)["reference"].(string)
		if named[ref] != want[sr] {
			t.Errorf("Task %v: for %s is %q, want %q", task["id"], ref, named[ref], want[sr])
		}
	}
	// The same ids export after export.
	_, again := e.exportAll(t, "?_type=Patient")
	for _, p := range again["Patient"] {
		if _, ok := named["Patient/"+p["id"].(string)]; !ok {
			t.Errorf("Patient id %v in a second export, not in the first", p["id"])
		}
	}
}
