package httpapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// Bad input gets a clear OperationOutcome (which element, what is wrong,
// what was expected) and changes nothing.

var update = flag.Bool("update", false, "rewrite golden files")

// Synthetic patient data that a rejected body carries. None of it may come
// back in an OperationOutcome: diagnostics are read by people and logged by
// GP systems, and values from a body can be patient data.
const (
	patientName     = "Ada Testpatient"
	patientNote     = "has felt isolated since moving house"
	patientBirth    = "1950-04-03"
	nhsNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"
	gpPatientSystem = "https://example-gp.nhs.uk/patient-id"
	httpErrorCodes  = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
)

var patientData = []string{nhsNumber, nhsNumber2, badNHSNumber, "Testpatient", "isolated", patientBirth}

// referralWith is a valid active referral (as referral() makes) for a
// patient named in subject.display and a note, changed by mods.
func referralWith(code string, mods ...func(m map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal(referral("R-val-1", code), &m); err != nil {
		panic(err)
	}
	m["subject"].(map[string]any)["display"] = patientName
	m["note"] = []any{map[string]any{"text": patientName + " " + patientNote}}
	for _, f := range mods {
		f(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// patientWith is a valid Patient with a local identifier and an NHS number,
// changed by mods.
func patientWith(mods ...func(m map[string]any)) []byte {
	m := map[string]any{
		"resourceType": "Patient",
		"identifier": []any{
			map[string]any{"system": gpPatientSystem, "value": "P-100"},
			map[string]any{"system": nhsNumberSystem, "value": nhsNumber},
		},
		"name":      []any{map[string]any{"text": patientName, "family": "Testpatient", "given": []any{"Ada"}}},
		"gender":    "female",
		"birthDate": patientBirth,
	}
	for _, f := range mods {
		f(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func withoutField(name string) func(map[string]any) {
	return func(m map[string]any) { delete(m, name) }
}

func withField(name string, v any) func(map[string]any) {
	return func(m map[string]any) { m[name] = v }
}

// replaceOnce rewrites the first occurrence of old in b, and panics if there
// is none, so a test cannot silently send the body unchanged.
func replaceOnce(b []byte, old, new string) []byte {
	if !bytes.Contains(b, []byte(old)) {
		panic("test body has no " + old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// nestedReferral is a valid referral whose nesting depth is exactly depth
// (the resource is level 1, each object or array one more), reached through
// a chain of extensions: the innermost carries valueString (odd depths) or
// valueCodeableConcept (even depths).
func nestedReferral(depth int) []byte {
	if depth < 4 {
		panic("depth too small")
	}
	k := (depth - 1) / 2 // extension objects in the chain
	inner := `"valueString":"deep"`
	if depth%2 == 0 {
		k = (depth - 2) / 2
		inner = `"valueCodeableConcept":{"text":"deep"}`
	}
	var ext strings.Builder
	for i := 0; i < k; i++ {
		ext.WriteString(`[{"url":"https://example.org/fhir/StructureDefinition/chain-` + strconv.Itoa(i) + `",`)
		if i == k-1 {
			ext.WriteString(inner)
		} else {
			ext.WriteString(`"extension":`)
		}
	}
	for i := 0; i < k; i++ {
		ext.WriteString(`}]`)
	}
	b := referral("R-deep-"+strconv.Itoa(depth), "390893007")
	return append(append(b[:len(b)-1:len(b)-1], `,"extension":`+ext.String()...), '}')
}

// jsonDepth measures nesting the way the raw layer counts it, so the depth
// tests check their own bodies.
func jsonDepth(t *testing.T, b []byte) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			t.Fatalf("test body is not JSON: %v", err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// paddedReferral makes a referral of exactly size bytes by growing its note.
func paddedReferral(size int) []byte {
	b := referralWith("390893007")
	return replaceOnce(b, patientNote, patientNote+strings.Repeat(".", size-len(b)))
}

// txBundle wraps entries (fullUrl, resource, url) into a transaction Bundle
// of POSTs; an empty fullUrl is left out.
func txBundle(entries ...[3]string) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		if e[0] != "" {
			b.WriteString(`"fullUrl":` + strconv.Quote(e[0]) + `,`)
		}
		b.WriteString(`"resource":` + e[1] + `,"request":{"method":"POST","url":` + strconv.Quote(e[2]) + `}}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// ooIssue is one OperationOutcome issue as sent.
type ooIssue struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Details  *struct {
		Coding []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"coding"`
	} `json:"details"`
	Diagnostics string   `json:"diagnostics"`
	Expression  []string `json:"expression"`
}

// readOutcome checks that a response is an OperationOutcome of FHIR JSON
// whose every issue says what is wrong, and returns its issues.
func readOutcome(t *testing.T, r *response) []ooIssue {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type = %q, want application/fhir+json", ct)
	}
	var oo struct {
		ResourceType string    `json:"resourceType"`
		Issue        []ooIssue `json:"issue"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&oo); err != nil {
		t.Fatalf("body is not an OperationOutcome (%v): %s", err, r.body)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("want an OperationOutcome with issues, got %s", r.body)
	}
	for i, is := range oo.Issue {
		if is.Severity == "" || is.Code == "" || strings.TrimSpace(is.Diagnostics) == "" {
			t.Errorf("issue[%d] lacks severity, code or diagnostics: %+v", i, is)
		}
		if is.Details != nil {
			for _, c := range is.Details.Coding {
				if c.System != httpErrorCodes || !strings.HasPrefix(c.Code, "REC_") {
					t.Errorf("issue[%d].details.coding = %s|%s, want a code of %s", i, c.System, c.Code, httpErrorCodes)
				}
			}
		}
	}
	return oo.Issue
}

// noPatientData fails if a response echoes any value of patient data.
func noPatientData(t *testing.T, body []byte, extra ...string) {
	t.Helper()
	for _, s := range append(slices.Clone(patientData), extra...) {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("response echoes patient data %q: %s", s, body)
		}
	}
}

// storeKeys lists every Redis key but the audit trail's, so a test can show
// a request wrote none: a refused request is still audited (the attempt is
// recorded), and that is all it may leave behind.
func storeKeys(t *testing.T, e *env) []string {
	t.Helper()
	keys := e.keys(t, "*")
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "{signpost}:audit" })
	slices.Sort(keys)
	return keys
}

// assertNothingStored checks that no ServiceRequest, Task or Patient can be
// found through the API, and that Redis holds the keys it held before.
func assertNothingStored(t *testing.T, e *env, before []string) {
	t.Helper()
	if after := storeKeys(t, e); !slices.Equal(before, after) {
		t.Errorf("the rejected request changed Redis: keys before %q, after %q", before, after)
	}
	for _, path := range []string{"/ServiceRequest", "/Task", "/Patient?_count=10"} {
		r := e.get(path).must(t, http.StatusOK)
		var b struct {
			Total *int              `json:"total"`
			Entry []json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatalf("GET %s: not a Bundle: %v", path, err)
		}
		if b.Total == nil || *b.Total != 0 || len(b.Entry) != 0 {
			t.Errorf("GET %s after a rejected request: want total 0 and no entries, got %s", path, r.body)
		}
	}
}

var (
	uuidRE    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	instantRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d`)
)

// checkGolden compares an OperationOutcome with testdata/golden/<name>.json,
// or rewrites the file under -update. The body must hold nothing that
// changes from run to run, or the file could never match.
func checkGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	if uuidRE.Match(body) || instantRE.Match(body) || bytes.Contains(body, []byte("127.0.0.1")) {
		t.Errorf("OperationOutcome %s holds an id, a timestamp or an address: it cannot be a stable golden file: %s", name, body)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", name, err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("OperationOutcome differs from %s (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, buf.Bytes(), want)
	}
}

// issueWant is what one issue of a rejection must say.
type issueWant struct {
	code   string // issue.code
	expr   string // issue.expression[0] exactly; "" means there must be no expression
	prefix bool   // expr is a prefix of expression[0]
	diag   []string
}

type rejectCase struct {
	name    string
	opts    []func(*options)
	method  string // default POST
	path    string // default /ServiceRequest
	atBase  bool   // POST to the FHIR base (transactions) instead of path
	body    []byte
	headers []string
	send    func(t *testing.T, e *env) *response // instead of method, path, body and headers
	status  int
	issues  []issueWant // every issue, in order
	golden  string      // testdata/golden/<golden>.json
}

func runRejectCases(t *testing.T, cases []rejectCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, tc.opts...)
			before := storeKeys(t, e)
			var r *response
			if tc.send != nil {
				r = tc.send(t, e)
			} else {
				method, path := tc.method, tc.path
				if method == "" {
					method = http.MethodPost
				}
				switch {
				case tc.atBase:
					path = ""
				case path == "":
					path = "/ServiceRequest"
				}
				r = e.do(method, path, tc.body, tc.headers...)
			}
			// Whatever went wrong, whether the store changed is worth knowing.
			defer assertNothingStored(t, e, before)
			if r.status != tc.status {
				t.Errorf("status %d, want %d; body: %s", r.status, tc.status, r.body)
				if !bytes.Contains(r.body, []byte(`"OperationOutcome"`)) {
					return
				}
			}
			issues := readOutcome(t, r)
			checkIssues(t, issues, tc.issues, r.body)
			noPatientData(t, r.body)
			if tc.golden != "" {
				checkGolden(t, tc.golden, r.body)
			}
		})
	}
}

func checkIssues(t *testing.T, got []ooIssue, want []issueWant, body []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d issues, want %d: %s", len(got), len(want), body)
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Severity != "error" {
			t.Errorf("issue[%d].severity = %q, want error", i, g.Severity)
		}
		if g.Code != w.code {
			t.Errorf("issue[%d].code = %q, want %q (diagnostics: %s)", i, g.Code, w.code, g.Diagnostics)
		}
		switch {
		case w.expr == "" && len(g.Expression) != 0:
			t.Errorf("issue[%d].expression = %q, want none", i, g.Expression)
		case w.expr != "" && len(g.Expression) == 0:
			t.Errorf("issue[%d] has no expression, want %q (diagnostics: %s)", i, w.expr, g.Diagnostics)
		case w.expr != "" && w.prefix && !strings.HasPrefix(g.Expression[0], w.expr):
			t.Errorf("issue[%d].expression[0] = %q, want it to start with %q", i, g.Expression[0], w.expr)
		case w.expr != "" && !w.prefix && g.Expression[0] != w.expr:
			t.Errorf("issue[%d].expression[0] = %q, want %q (diagnostics: %s)", i, g.Expression[0], w.expr, g.Diagnostics)
		}
		for _, s := range w.diag {
			if !strings.Contains(g.Diagnostics, s) {
				t.Errorf("issue[%d].diagnostics = %q, want it to mention %q", i, g.Diagnostics, s)
			}
		}
	}
}

// postChunked sends a body with no Content-Length (chunked transfer coding),
// so only the limit on what is read can stop it.
func postChunked(t *testing.T, e *env, path string, body []byte) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+path, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.TransferEncoding = []string{"chunked"}
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

func TestBadJSONIsRejected(t *testing.T) {
	t.Parallel()
	valid := referralWith("390893007")
	deep := nestedReferral(65)
	if d := jsonDepth(t, deep); d != 65 {
		t.Fatalf("nestedReferral(65) is %d deep", d)
	}
	runRejectCases(t, []rejectCase{
		{
			name: "malformed", body: []byte(`{"resourceType":"ServiceRequest",`),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest", diag: []string{"incomplete"}}},
		},
		{
			name: "trailing data", body: append(slices.Clone(valid), ` {"note":"`+patientName+`"}`...),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", diag: []string{"trailing data"}}},
		},
		{
			name: "invalid UTF-8", body: replaceOnce(valid, "has felt", "has\xfffelt"),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest.note[0].text", diag: []string{"UTF-8"}}},
		},
		{
			name: "duplicate key", body: replaceOnce(valid, `"status":"active"`, `"status":"active","status":"draft"`),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest.status", diag: []string{`duplicate key "status"`}}},
			golden: "duplicate-key",
		},
		{
			// The raw layer names the second spelling, the one that broke the rule.
			name: "case-variant keys", body: replaceOnce(valid, `"status":"active"`, `"status":"active","Status":"active"`),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest.Status", diag: []string{`"status"`, `"Status"`, "case"}}},
		},
		{
			name: "resourceType twice", body: []byte(`{"resourceType":"ServiceRequest","resourceType":"Patient"}`),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest.resourceType", diag: []string{`duplicate key "resourceType"`}}},
		},
		{
			name: "no resourceType", body: []byte(`{"status":"active"}`),
			status: http.StatusBadRequest, issues: []issueWant{{code: "required", expr: "resourceType"}},
		},
		{
			name: "nesting depth 65", body: deep,
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest.extension[0].extension[0].extension[0]", prefix: true, diag: []string{"64"}}},
		},
		{
			name: "too large with Content-Length", opts: []func(*options){func(o *options) { o.maxBody = 2048 }}, body: paddedReferral(4096),
			status: http.StatusRequestEntityTooLarge, issues: []issueWant{{code: "too-long", diag: []string{"2048"}}},
			golden: "body-too-large",
		},
		{
			name: "too large chunked", opts: []func(*options){func(o *options) { o.maxBody = 2048 }},
			send: func(t *testing.T, e *env) *response {
				return postChunked(t, e, "/ServiceRequest", paddedReferral(4096))
			},
			status: http.StatusRequestEntityTooLarge, issues: []issueWant{{code: "too-long", diag: []string{"2048"}}},
		},
		{
			name: "Content-Type text/plain", body: valid, headers: []string{"Content-Type", "text/plain"},
			status: http.StatusUnsupportedMediaType, issues: []issueWant{{code: "not-supported", diag: []string{"application/fhir+json"}}},
			golden: "unsupported-media-type",
		},
		{
			name: "Content-Encoding gzip", body: valid, headers: []string{"Content-Encoding", "gzip"},
			status: http.StatusUnsupportedMediaType, issues: []issueWant{{code: "not-supported", diag: []string{"Content-Encoding"}}},
		},
	})
}

func TestNestingDepth64IsNotRefusedForDepth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := nestedReferral(64)
	if d := jsonDepth(t, body); d != 64 {
		t.Fatalf("nestedReferral(64) is %d deep", d)
	}
	r := e.post("/ServiceRequest", body)
	if r.status != http.StatusCreated {
		// Any refusal must not be the depth limit.
		if bytes.Contains(r.body, []byte("nesting")) || bytes.Contains(r.body, []byte("deep")) {
			t.Fatalf("depth 64 is within the limit but was refused for depth: %d %s", r.status, r.body)
		}
		t.Errorf("depth 64 referral: status %d, want 201: %s", r.status, r.body)
	}
}

func TestInvalidServiceRequestIsRejected(t *testing.T) {
	t.Parallel()
	noHousing := []gateway.Provider{testProviders[0], testProviders[2]} // "advice" serves housing
	runRejectCases(t, []rejectCase{
		{
			name: "Patient at the ServiceRequest endpoint", body: patientWith(),
			status: http.StatusBadRequest, issues: []issueWant{{code: "invalid", expr: "resourceType", diag: []string{`"ServiceRequest"`}}},
		},
		{
			// The samply model would decode a missing status as draft.
			name: "missing status", body: referralWith("390893007", withoutField("status")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "required", expr: "ServiceRequest.status", diag: []string{"active"}}},
			golden: "servicerequest-missing-status",
		},
		{
			name: "status not a code", body: referralWith("390893007", withField("status", "activ")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "code-invalid", expr: "ServiceRequest.status", diag: []string{"active"}}},
		},
		{
			name: "status a number", body: replaceOnce(referralWith("390893007"), `"status":"active"`, `"status":1`),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest.status", diag: []string{"string"}}},
		},
		{
			// Every structural problem is reported at once, in the order sent.
			name: "two members of the wrong type", body: referralWith("390893007", withField("identifier", "REF-1"), withField("performer", "leeds-walking")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "structure", expr: "ServiceRequest.identifier", diag: []string{"array"}},
				{code: "structure", expr: "ServiceRequest.performer", diag: []string{"array"}}},
		},
		{
			name: "missing intent", body: referralWith("390893007", withoutField("intent")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "required", expr: "ServiceRequest.intent", diag: []string{"order"}}},
		},
		{
			name: "bad intent", body: referralWith("390893007", withField("intent", "orders")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "code-invalid", expr: "ServiceRequest.intent", diag: []string{"order"}}},
		},
		{
			name: "bad priority", body: referralWith("390893007", withField("priority", "soon")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "code-invalid", expr: "ServiceRequest.priority", diag: []string{"routine"}}},
		},
		{
			name: "three problems at once", body: referralWith("390893007", withoutField("status"), withField("intent", "orders"), withField("priority", "soon")),
			status: http.StatusBadRequest, issues: []issueWant{
				{code: "required", expr: "ServiceRequest.status"},
				{code: "code-invalid", expr: "ServiceRequest.intent"},
				{code: "code-invalid", expr: "ServiceRequest.priority"},
			},
			golden: "servicerequest-three-problems",
		},
		{
			name: "missing subject", body: referralWith("390893007", withoutField("subject")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "required", expr: "ServiceRequest.subject"}},
		},
		{
			name: "missing code", body: referralWith("390893007", withoutField("code")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "required", expr: "ServiceRequest.code"}},
		},
		{
			name: "NHS number fails Modulus 11", body: replaceOnce(referralWith("390893007"), nhsNumber, badNHSNumber),
			status: http.StatusBadRequest, issues: []issueWant{{code: "value", expr: "ServiceRequest.subject.identifier.value", diag: []string{"Modulus 11"}}},
			golden: "nhs-number-invalid",
		},
		{
			name: "patient not identifiable", body: referralWith("390893007", withField("subject", map[string]any{"display": patientName})),
			status: http.StatusUnprocessableEntity, issues: []issueWant{{code: "required", expr: "ServiceRequest.subject", diag: []string{nhsNumberSystem}}},
			golden: "patient-unidentifiable",
		},
		{
			name: "subject is a Patient not held", body: referralWith("390893007", withField("subject", map[string]any{"reference": "Patient/unknown-id", "display": patientName})),
			status: http.StatusUnprocessableEntity, issues: []issueWant{{code: "not-found", expr: "ServiceRequest.subject.reference"}},
		},
		{
			name: "unmapped SNOMED CT code", body: referralWith("306238000"),
			status: http.StatusUnprocessableEntity, issues: []issueWant{{code: "business-rule", expr: "ServiceRequest.code.coding", diag: []string{"http://snomed.info/sct|306238000", "link worker"}}},
			golden: "unmapped-code",
		},
		{
			name: "SNOMED CT check digit wrong", body: referralWith("390893008"),
			status: http.StatusBadRequest, issues: []issueWant{{code: "code-invalid", expr: "ServiceRequest.code.coding[0].code", diag: []string{"Verhoeff"}}},
		},
		{
			name: "no provider for the category", opts: []func(*options){func(o *options) { o.providers = noHousing }}, body: referralWith("710911006"),
			status: http.StatusUnprocessableEntity, issues: []issueWant{{code: "business-rule", expr: "ServiceRequest.code", diag: []string{`"housing"`}}},
			golden: "no-provider-for-category",
		},
		{
			// A urn:uuid: reference only means something inside a
			// transaction; stored, it would dangle for ever.
			name: "urn:uuid reference outside a transaction",
			body: referralWith("390893007", func(m map[string]any) {
				m["subject"].(map[string]any)["reference"] = "urn:uuid:0b6e2c62-5f0a-4f6e-9d1e-8d6c1d1b9f00"
			}),
			status: http.StatusBadRequest, issues: []issueWant{{code: "invalid", expr: "ServiceRequest.subject.reference"}},
		},
		{
			name: "PUT with another id in the body", method: http.MethodPut, path: "/ServiceRequest/sr-1",
			body:   referralWith("390893007", withField("id", "sr-2")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "invalid", expr: "ServiceRequest.id"}},
		},
	})
}

func TestInvalidPatientIsRejected(t *testing.T) {
	t.Parallel()
	runRejectCases(t, []rejectCase{
		{
			name: "bad NHS number in identifier[1]", path: "/Patient",
			body:   replaceOnce(patientWith(), nhsNumber, badNHSNumber),
			status: http.StatusBadRequest, issues: []issueWant{{code: "value", expr: "Patient.identifier[1].value", diag: []string{"NHS number"}}},
		},
		{
			name: "gender not a code", path: "/Patient", body: patientWith(withField("gender", "f")),
			status: http.StatusBadRequest, issues: []issueWant{{code: "code-invalid", expr: "Patient.gender", diag: []string{"female"}}},
		},
		{
			name: "PUT Patient with bad NHS number", method: http.MethodPut, path: "/Patient/pat-1",
			body:   replaceOnce(patientWith(withField("id", "pat-1")), nhsNumber, badNHSNumber),
			status: http.StatusBadRequest, issues: []issueWant{{code: "value", expr: "Patient.identifier[1].value"}},
		},
	})
}

func TestBadRequestsOutsideTheBody(t *testing.T) {
	t.Parallel()
	runRejectCases(t, []rejectCase{
		{
			name: "POST unknown resource type", path: "/Appointment", body: []byte(`{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted"}]}`),
			status: http.StatusNotFound, issues: []issueWant{{code: "not-supported", diag: []string{"ServiceRequest"}}},
		},
		{
			name: "GET unknown resource type", method: http.MethodGet, path: "/Appointment",
			status: http.StatusNotFound, issues: []issueWant{{code: "not-supported"}},
		},
	})
}

func TestDeleteAnswers405WithAllow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.do(http.MethodDelete, "/ServiceRequest/x", nil)
	if r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: status %d, want 405", r.status)
	}
	if is := readOutcome(t, r); len(is) != 1 || is[0].Severity != "error" || is[0].Code != "not-supported" {
		t.Errorf("DELETE: want one error issue with code not-supported, got %s", r.body)
	}
	allow := r.header.Get("Allow")
	for _, m := range []string{"GET", "PUT"} {
		if !strings.Contains(allow, m) {
			t.Errorf("Allow = %q, want it to list %s", allow, m)
		}
	}
}

func TestInvalidTransactionChangesNothing(t *testing.T) {
	t.Parallel()
	good := string(referralWith("390893007"))
	second := string(referralWith("390893007", withField("identifier", []any{map[string]any{"system": gpIdentSystem, "value": "R-val-2"}}), withoutField("status")))
	// A reference to a urn:uuid that is no entry's fullUrl. The subject also
	// has an NHS number, so only the reference is wrong.
	dangling := string(referralWith("390893007", func(m map[string]any) {
		m["subject"].(map[string]any)["reference"] = "urn:uuid:0b6e2c62-5f0a-4f6e-9d1e-8d6c1d1b9f00"
	}))
	runRejectCases(t, []rejectCase{
		{
			name: "second entry invalid", atBase: true,
			body: txBundle(
				[3]string{"urn:uuid:5d7e1c1a-0000-4000-8000-000000000001", good, "ServiceRequest"},
				[3]string{"urn:uuid:5d7e1c1a-0000-4000-8000-000000000002", second, "ServiceRequest"}),
			status: http.StatusBadRequest, issues: []issueWant{{code: "required", expr: "Bundle.entry[1].resource.status"}},
			golden: "transaction-entry-invalid",
		},
		{
			name: "second entry invalid, no fullUrls", atBase: true,
			body:   txBundle([3]string{"", good, "ServiceRequest"}, [3]string{"", second, "ServiceRequest"}),
			status: http.StatusBadRequest, issues: []issueWant{{code: "required", expr: "Bundle.entry[1].resource.status"}},
		},
		{
			name: "unresolved urn:uuid reference", atBase: true,
			body:   txBundle([3]string{"urn:uuid:5d7e1c1a-0000-4000-8000-000000000003", dangling, "ServiceRequest"}),
			status: http.StatusBadRequest, issues: []issueWant{{code: "invalid", expr: "Bundle.entry[0].resource.subject.reference", diag: []string{"fullUrl"}}},
		},
		{
			// The same dangling reference in a transaction whose entries
			// have no fullUrl: it resolves to nothing all the same.
			name: "unresolved urn:uuid reference, no fullUrls", atBase: true,
			body:   txBundle([3]string{"", dangling, "ServiceRequest"}),
			status: http.StatusBadRequest, issues: []issueWant{{code: "invalid", expr: "Bundle.entry[0].resource.subject.reference", diag: []string{"fullUrl"}}},
		},
	})
}

func TestNHSNumberWarnPolicyAcceptsWithWarning(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.warnNHS = true })
	body := replaceOnce(referralWith("390893007"), nhsNumber, badNHSNumber)
	r := e.post("/ServiceRequest", body, "Prefer", "return=OperationOutcome").must(t, http.StatusCreated)
	issues := readOutcome(t, r)
	if len(issues) != 1 {
		t.Fatalf("want one warning, got %s", r.body)
	}
	is := issues[0]
	if is.Severity != "warning" || is.Code != "value" || !slices.Equal(is.Expression, []string{"ServiceRequest.subject.identifier.value"}) {
		t.Errorf("warning = %+v, want severity warning, code value, expression ServiceRequest.subject.identifier.value", is)
	}
	if is.Details != nil {
		t.Errorf("a warning carries an HTTP error code: %+v", is.Details)
	}
	noPatientData(t, r.body)
	checkGolden(t, "nhs-number-warning", r.body)
	if loc := r.header.Get("Location"); !strings.Contains(loc, "/ServiceRequest/") {
		t.Errorf("Location = %q", loc)
	}
	if n := len(bundleEntries(t, e.get("/ServiceRequest").must(t, http.StatusOK), "match")); n != 1 {
		t.Errorf("want the referral stored, found %d", n)
	}
}

func TestUnmappedCodeWithTriageGoesToLinkWorker(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.triage = true })
	sr := e.post("/ServiceRequest", referralWith("306238000")).must(t, http.StatusCreated).json(t)
	tasks := bundleEntries(t, e.get("/Task?focus=ServiceRequest/"+sr["id"].(string)).must(t, http.StatusOK), "match")
	if len(tasks) != 1 {
		t.Fatalf("want one referral Task, got %d", len(tasks))
	}
	owner, _ := tasks[0]["owner"].(map[string]any)
	if owner["reference"] != "Organization/link" {
		t.Errorf("Task.owner = %v, want Organization/link", tasks[0]["owner"])
	}
}

func TestSearchRejectsUnknownParameters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct {
		name    string
		path    string
		headers []string
		status  int
		diag    []string
		golden  string
	}{
		{name: "unknown parameter", path: "/ServiceRequest?foo=bar", status: http.StatusBadRequest, diag: []string{`"foo"`, "supported"}, golden: "search-unknown-parameter"},
		{name: "unknown parameter on Task", path: "/Task?foo=bar", status: http.StatusBadRequest, diag: []string{`"foo"`}},
		{name: "unknown parameter, lenient", path: "/ServiceRequest?foo=bar", headers: []string{"Prefer", "handling=lenient"}, status: http.StatusOK},
		{name: "_lastUpdated not a date", path: "/ServiceRequest?_lastUpdated=notadate", status: http.StatusBadRequest, diag: []string{`"_lastUpdated"`, "YYYY-MM-DD"}},
		{name: "_lastUpdated not a date, lenient", path: "/ServiceRequest?_lastUpdated=notadate", headers: []string{"Prefer", "handling=lenient"}, status: http.StatusBadRequest, diag: []string{`"_lastUpdated"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.get(tc.path, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusOK {
				var b struct {
					ResourceType string `json:"resourceType"`
					Type         string `json:"type"`
					Total        int    `json:"total"`
				}
				if err := json.Unmarshal(r.body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "searchset" || b.Total != 0 {
					t.Errorf("want an empty searchset Bundle, got %s", r.body)
				}
				return
			}
			issues := readOutcome(t, r)
			if len(issues) != 1 || issues[0].Severity != "error" {
				t.Fatalf("want one error issue: %s", r.body)
			}
			for _, s := range tc.diag {
				if !strings.Contains(issues[0].Diagnostics, s) {
					t.Errorf("diagnostics %q do not mention %q", issues[0].Diagnostics, s)
				}
			}
			if tc.golden != "" {
				checkGolden(t, tc.golden, r.body)
			}
		})
	}
}
