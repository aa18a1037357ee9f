package fhir_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/signpost-health/signpost/fhir"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares out, indented, with testdata/golden/<name>.json, or
// rewrites that file under -update.
func golden(t *testing.T, name string, out []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "  "); err != nil {
		t.Fatalf("%s: output is not JSON: %v\n%s", name, err, out)
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
		t.Errorf("output differs from %s (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, buf.Bytes(), want)
	}
}

// strictResource checks that out is one JSON object with no duplicate or
// case-variant keys, no trailing data and the given resourceType: what
// Signpost demands of what it is sent, it must also send.
func strictResource(t *testing.T, out []byte, resourceType string) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %s", out)
	}
	o, err := fhir.ParseResource(out, fhir.ParseOptions{})
	if err != nil {
		t.Fatalf("output fails the raw-JSON checks: %v\n%s", err, out)
	}
	if o.ResourceType() != resourceType {
		t.Errorf("resourceType = %q, want %q", o.ResourceType(), resourceType)
	}
	if names := o.Names(); len(names) == 0 || names[0] != "resourceType" {
		t.Errorf("resourceType is not the first member: %q", names)
	}
}

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type issueOut struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Details  *struct {
		Coding []coding `json:"coding"`
	} `json:"details,omitempty"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

func details(code string) *struct {
	Coding []coding `json:"coding"`
} {
	return &struct {
		Coding []coding `json:"coding"`
	}{Coding: []coding{{System: fhir.HTTPErrorCodeSystem, Code: code}}}
}

func TestOperationOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		issues []fhir.Issue
		want   []issueOut
		golden string
	}{
		{
			name: "no issues is all OK",
			want: []issueOut{{Severity: "information", Code: "informational", Diagnostics: "All OK"}},
		},
		{
			name:   "empty severity and code default to error and processing",
			issues: []fhir.Issue{{Diagnostics: "something went wrong"}},
			want:   []issueOut{{Severity: "error", Code: "processing", Diagnostics: "something went wrong"}},
		},
		{
			name:   "a warning stays a warning",
			issues: []fhir.Issue{{Severity: fhir.SeverityWarning, Code: fhir.IssueValue, Diagnostics: "check digit", Expression: []string{"Patient.identifier[0].value"}}},
			want:   []issueOut{{Severity: "warning", Code: "value", Diagnostics: "check digit", Expression: []string{"Patient.identifier[0].value"}}},
		},
		{
			name:   "details coding from the NHS http-error-codes system",
			issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueRequired, DetailsCode: "REC_BAD_REQUEST", Diagnostics: "status is required", Expression: []string{"ServiceRequest.status"}}},
			want:   []issueOut{{Severity: "error", Code: "required", Details: details("REC_BAD_REQUEST"), Diagnostics: "status is required", Expression: []string{"ServiceRequest.status"}}},
			golden: "outcome-required",
		},
		{
			name:   "no diagnostics and no expression are left out",
			issues: []fhir.Issue{{Severity: fhir.SeverityFatal, Code: fhir.IssueException}},
			want:   []issueOut{{Severity: "fatal", Code: "exception"}},
		},
		{
			name: "several issues keep their order and expressions",
			issues: []fhir.Issue{
				{Severity: fhir.SeverityError, Code: fhir.IssueRequired, DetailsCode: "REC_BAD_REQUEST", Diagnostics: "status is required", Expression: []string{"ServiceRequest.status"}},
				{Code: fhir.IssueCodeInvalid, DetailsCode: "REC_BAD_REQUEST", Diagnostics: "intent is not a code", Expression: []string{"ServiceRequest.intent"}},
				{Severity: fhir.SeverityWarning, Code: fhir.IssueValue, Diagnostics: "two places", Expression: []string{"Bundle.entry[0].resource.subject", "Bundle.entry[1].resource.for"}},
			},
			want: []issueOut{
				{Severity: "error", Code: "required", Details: details("REC_BAD_REQUEST"), Diagnostics: "status is required", Expression: []string{"ServiceRequest.status"}},
				{Severity: "error", Code: "code-invalid", Details: details("REC_BAD_REQUEST"), Diagnostics: "intent is not a code", Expression: []string{"ServiceRequest.intent"}},
				{Severity: "warning", Code: "value", Diagnostics: "two places", Expression: []string{"Bundle.entry[0].resource.subject", "Bundle.entry[1].resource.for"}},
			},
			golden: "outcome-several",
		},
		{
			name:   "characters JSON must escape",
			issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueStructure, Diagnostics: "key \"a\\b\" <&> \u2028 tab\there", Expression: []string{"ServiceRequest.`we\"ird`"}}},
			want:   []issueOut{{Severity: "error", Code: "structure", Diagnostics: "key \"a\\b\" <&> \u2028 tab\there", Expression: []string{"ServiceRequest.`we\"ird`"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := fhir.OperationOutcome(tc.issues...)
			strictResource(t, out, "OperationOutcome")
			var got struct {
				ResourceType string     `json:"resourceType"`
				Issue        []issueOut `json:"issue"`
			}
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decode: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(got.Issue, tc.want) {
				t.Errorf("issues:\n got %+v\nwant %+v\n%s", got.Issue, tc.want, out)
			}
			// Absent, not empty: FHIR forbids empty strings, arrays and objects.
			for _, empty := range []string{`""`, `[]`, `{}`, `null`} {
				if bytes.Contains(out, []byte(":"+empty)) {
					t.Errorf("output holds an empty value %s: %s", empty, out)
				}
			}
			if tc.golden != "" {
				golden(t, tc.golden, out)
			}
		})
	}
}

// The input slice is the caller's: rendering must not change it.
func TestOperationOutcomeLeavesIssuesAlone(t *testing.T) {
	t.Parallel()
	issues := []fhir.Issue{{Diagnostics: "x"}}
	fhir.OperationOutcome(issues...)
	if issues[0].Severity != "" || issues[0].Code != "" {
		t.Errorf("OperationOutcome changed its argument: %+v", issues[0])
	}
}

// A stored resource exactly as a client sent it: odd spacing, a number
// literal with a trailing zero, escapes and a primitive extension. Bundle
// must copy these bytes, not re-encode them.
var (
	storedSR = []byte(`{"resourceType":"ServiceRequest", "id":"sr-1","meta":{"versionId":"2","lastUpdated":"2026-11-20T09:30:00.000Z"},` +
		`"status" : "active","_status":{"extension":[{"url":"https://example.org/x","valueString":"caf\u00e9"}]},` +
		`"quantityQuantity":{"value":1.50},"note":[{"text":"line\nbreak \u003c\/b\u003e"}]}`)
	storedTask = []byte(`{"resourceType":"Task","id":"task-1","meta":{"versionId":"1","lastUpdated":"2026-11-20T09:30:00.000Z"},` +
		`"status":"requested","intent":"order","focus":{"reference":"ServiceRequest/sr-1"}}`)
)

func TestBundleSearchset(t *testing.T) {
	t.Parallel()
	base := "https://signpost.example/fhir"
	b := fhir.Bundle{
		ID: "b-1", Type: "searchset", Timestamp: "2026-11-20T09:31:00.000Z", Total: 3,
		Links: []fhir.BundleLink{
			{Relation: "self", URL: base + "/Task?_count=1&status=requested"},
			{Relation: "next", URL: base + "/Task?_count=1&_offset=1&status=requested"},
		},
		Entries: []fhir.BundleEntry{
			{FullURL: base + "/Task/task-1", Resource: storedTask, Search: "match"},
			{FullURL: base + "/ServiceRequest/sr-1", Resource: storedSR, Search: "include"},
		},
	}
	out := b.Marshal()
	strictResource(t, out, "Bundle")
	for _, r := range [][]byte{storedTask, storedSR} {
		if !bytes.Contains(out, r) {
			t.Errorf("resource bytes are not spliced in verbatim:\n%s\nnot in\n%s", r, out)
		}
	}
	var got struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Type         string `json:"type"`
		Timestamp    string `json:"timestamp"`
		Total        *int   `json:"total"`
		Link         []struct {
			Relation string `json:"relation"`
			URL      string `json:"url"`
		} `json:"link"`
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Search   struct {
				Mode string `json:"mode"`
			} `json:"search"`
			Response json.RawMessage `json:"response"`
		} `json:"entry"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if got.ID != "b-1" || got.Type != "searchset" || got.Timestamp != "2026-11-20T09:31:00.000Z" || got.Total == nil || *got.Total != 3 {
		t.Errorf("bundle header = %+v", got)
	}
	if len(got.Link) != 2 || got.Link[0].Relation != "self" || got.Link[0].URL != b.Links[0].URL ||
		got.Link[1].Relation != "next" || got.Link[1].URL != b.Links[1].URL {
		t.Errorf("links = %+v", got.Link)
	}
	if len(got.Entry) != 2 {
		t.Fatalf("%d entries, want 2", len(got.Entry))
	}
	for i, want := range []struct {
		url, mode string
		res       []byte
	}{{base + "/Task/task-1", "match", storedTask}, {base + "/ServiceRequest/sr-1", "include", storedSR}} {
		e := got.Entry[i]
		if e.FullURL != want.url || e.Search.Mode != want.mode || !bytes.Equal(e.Resource, want.res) || e.Response != nil {
			t.Errorf("entry[%d] = %s %s %s %s", i, e.FullURL, e.Search.Mode, e.Resource, e.Response)
		}
	}
	golden(t, "bundle-searchset", out)
}

func TestBundleTransactionResponse(t *testing.T) {
	t.Parallel()
	warning := fhir.OperationOutcome(fhir.Issue{Severity: fhir.SeverityWarning, Code: fhir.IssueValue,
		Diagnostics: "not a valid NHS number", Expression: []string{"ServiceRequest.subject.identifier.value"}})
	b := fhir.Bundle{
		ID: "tr-1", Type: "transaction-response", Timestamp: "2026-11-20T09:31:00.000Z", Total: -1,
		Entries: []fhir.BundleEntry{
			{FullURL: "https://signpost.example/fhir/ServiceRequest/sr-1", Resource: storedSR, Response: &fhir.EntryResponse{
				Status: "201 Created", Location: "ServiceRequest/sr-1/_history/2", ETag: `W/"2"`,
				LastModified: "2026-11-20T09:30:00.000Z", Outcome: warning}},
			// Prefer: return=minimal: no resource.
			{FullURL: "https://signpost.example/fhir/Task/task-1", Response: &fhir.EntryResponse{
				Status: "200 OK", Location: "Task/task-1/_history/1", ETag: `W/"1"`, LastModified: "2026-11-20T09:30:00.000Z"}},
			// Only the status, which FHIR requires.
			{Response: &fhir.EntryResponse{Status: "200 OK"}},
		},
	}
	out := b.Marshal()
	strictResource(t, out, "Bundle")
	if !bytes.Contains(out, storedSR) || !bytes.Contains(out, warning) {
		t.Errorf("resource or outcome bytes are not spliced in verbatim: %s", out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["total"]; ok {
		t.Errorf("Total < 0 must leave total out: %s", out)
	}
	if _, ok := got["link"]; ok {
		t.Errorf("no links must leave link out, not write []: %s", out)
	}
	entries, _ := got["entry"].([]any)
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3: %s", len(entries), out)
	}
	type resp struct {
		Status       string          `json:"status"`
		Location     string          `json:"location"`
		Etag         string          `json:"etag"`
		LastModified string          `json:"lastModified"`
		Outcome      json.RawMessage `json:"outcome"`
	}
	var typed struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Search   json.RawMessage `json:"search"`
			Response resp            `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(out, &typed); err != nil {
		t.Fatal(err)
	}
	want := []resp{
		{"201 Created", "ServiceRequest/sr-1/_history/2", `W/"2"`, "2026-11-20T09:30:00.000Z", warning},
		{"200 OK", "Task/task-1/_history/1", `W/"1"`, "2026-11-20T09:30:00.000Z", nil},
		{"200 OK", "", "", "", nil},
	}
	for i, e := range typed.Entry {
		if !reflect.DeepEqual(e.Response, want[i]) {
			t.Errorf("entry[%d].response = %+v, want %+v", i, e.Response, want[i])
		}
		if e.Search != nil {
			t.Errorf("entry[%d] has search in a transaction-response", i)
		}
		if (i == 0) != (e.Resource != nil) {
			t.Errorf("entry[%d].resource = %s", i, e.Resource)
		}
	}
	if typed.Entry[2].FullURL != "" {
		t.Errorf("entry[2].fullUrl = %q, want none", typed.Entry[2].FullURL)
	}
	golden(t, "bundle-transaction-response", out)
}

func TestBundleEdges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		bundle     fhir.Bundle
		has, hasNo []string
	}{
		{
			name:   "empty searchset says total 0",
			bundle: fhir.Bundle{Type: "searchset", Total: 0, Links: []fhir.BundleLink{{Relation: "self", URL: "https://signpost.example/fhir/Task?status=requested"}}},
			has:    []string{`"total":0`, `"link":[`},
			hasNo:  []string{`"entry"`, `"id"`, `"timestamp"`},
		},
		{
			name:   "no entries and no links",
			bundle: fhir.Bundle{Type: "transaction-response", Total: -1},
			hasNo:  []string{`"entry"`, `"link"`, `"total"`},
		},
		{
			name: "strings are escaped",
			bundle: fhir.Bundle{ID: `a"b`, Type: "searchset", Total: 1,
				Links:   []fhir.BundleLink{{Relation: "self", URL: "https://signpost.example/fhir/Patient?identifier=sys%7C1&name=\"x\""}},
				Entries: []fhir.BundleEntry{{FullURL: "https://signpost.example/fhir/Patient/p\\1", Resource: []byte(`{"resourceType":"Patient","id":"p1"}`), Search: "match"}}},
		},
		{
			name:   "an entry with nothing but a resource",
			bundle: fhir.Bundle{Type: "searchset", Total: 1, Entries: []fhir.BundleEntry{{Resource: storedTask}}},
			has:    []string{`"entry":[{"resource":` + string(storedTask) + `}]`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := tc.bundle.Marshal()
			strictResource(t, out, "Bundle")
			for _, s := range tc.has {
				if !bytes.Contains(out, []byte(s)) {
					t.Errorf("output lacks %s: %s", s, out)
				}
			}
			for _, s := range tc.hasNo {
				if bytes.Contains(out, []byte(s)) {
					t.Errorf("output has %s: %s", s, out)
				}
			}
			var got struct {
				ID   string `json:"id"`
				Link []struct {
					URL string `json:"url"`
				} `json:"link"`
				Entry []struct {
					FullURL string `json:"fullUrl"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.ID != tc.bundle.ID {
				t.Errorf("id = %q, want %q", got.ID, tc.bundle.ID)
			}
			for i, l := range tc.bundle.Links {
				if got.Link[i].URL != l.URL {
					t.Errorf("link[%d].url = %q, want %q", i, got.Link[i].URL, l.URL)
				}
			}
			for i, e := range tc.bundle.Entries {
				if got.Entry[i].FullURL != e.FullURL {
					t.Errorf("entry[%d].fullUrl = %q, want %q", i, got.Entry[i].FullURL, e.FullURL)
				}
			}
		})
	}
}

func TestSaysDuplicate(t *testing.T) {
	for body, want := range map[string]bool{
		string(fhir.OperationOutcome(fhir.Issue{Severity: fhir.SeverityError, Code: fhir.IssueDuplicate, Diagnostics: "seen"})): true,
		`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict"}]}`:                                  false,
		`{"resourceType":"Bundle","issue":[{"code":"duplicate"}]}`:                                                              false,
		`not json`: false,
		``:         false,
	} {
		if got := fhir.SaysDuplicate([]byte(body)); got != want {
			t.Errorf("fhir.SaysDuplicate(%s) = %v, want %v", body, got, want)
		}
	}
}
