package fhir

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestReplaceMembers(t *testing.T) {
	t.Parallel()
	body := []byte(`{"resourceType":"Task","id":"t1","status":"requested","businessStatus":{"text":"old"},"intent":"order"}`)
	got := ReplaceMembers(body, map[string]any{"businessStatus": map[string]string{"text": "new"}, "lastModified": "2026-12-03T06:00:00.000Z"})
	want := `{"resourceType":"Task","id":"t1","status":"requested","intent":"order","businessStatus":{"text":"new"},"lastModified":"2026-12-03T06:00:00.000Z"}`
	if string(got) != want {
		t.Errorf("ReplaceMembers:\n got %s\nwant %s", got, want)
	}
	// The same as dropping each member and appending them all.
	slow := AppendMembers(WithoutMember(body, "businessStatus"), map[string]any{"businessStatus": map[string]string{"text": "new"}, "lastModified": "2026-12-03T06:00:00.000Z"})
	var a, b any
	_ = json.Unmarshal(got, &a)
	_ = json.Unmarshal(slow, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("ReplaceMembers %s differs from WithoutMember and AppendMembers %s", got, slow)
	}
	// None of them present: appended.
	if got := ReplaceMembers([]byte(`{"a":1}`), map[string]any{"b": 2}); string(got) != `{"a":1,"b":2}` {
		t.Errorf("appending: %s", got)
	}
}

// Revised gives the bytes that ReplaceMembers and then WithServerFields
// give, in one pass: for members the object has and has not, with and
// without a meta of its own, and members naming meta (merged as the two
// steps merge it). One difference, in the bytes only: a member name sent
// with escapes keeps them, where ReplaceMembers wrote it anew (the same
// JSON either way; Signpost's own Tasks have none).
func TestRevisedIsReplaceThenServerFields(t *testing.T) {
	t.Parallel()
	bodies := []string{
		`{"resourceType":"Task","id":"t1","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z","tag":[{"code":"x"}]},"status":"requested","intent":"order","businessStatus":{"text":"old"},"focus":{"reference":"ServiceRequest/s1"}}`,
		`{"resourceType":"Task","status":"requested","intent":"order"}`,
		`{"resourceType":"Task","id":"t2","intent":"order","_status":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},"status":"accepted","lastModified":"2026-01-01T00:00:00Z"}`,
	}
	memberSets := []map[string]any{
		{"businessStatus": map[string]any{"text": "delivered to Leeds Walking"}, "lastModified": "2026-06-01T09:00:00.000Z"},
		{"status": "completed", "statusReason": map[string]string{"text": "done & dusted <ok>"}, "lastModified": "2026-06-01T09:00:00.000Z"},
		{"zzz": []int{1, 2}},
		{"meta": map[string]any{"tag": []map[string]string{{"code": "new"}}}},
	}
	for _, body := range bodies {
		o, err := ParseResource([]byte(body), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, members := range memberSets {
			again, err := ParseResource(ReplaceMembers([]byte(body), members), ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := again.WithServerFields("t9", "3", "2026-06-01T09:00:00.000Z")
			got, err := o.Revised(members, "t9", "3", "2026-06-01T09:00:00.000Z")
			if err != nil || string(got) != string(want) {
				t.Errorf("%s with %v:\n got %s (%v)\nwant %s", body, members, got, err, want)
			}
		}
	}
}

func TestRevisedKeepsEscapedNamesAsSent(t *testing.T) {
	t.Parallel()
	body := `{"resourceType":"Task","n\u006fte":[{"text":"x"}],"status":"requested"}`
	o, err := ParseResource([]byte(body), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.Revised(map[string]any{"status": "accepted"}, "t1", "2", "2026-06-01T09:00:00.000Z")
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	again, _ := ParseResource(ReplaceMembers([]byte(body), map[string]any{"status": "accepted"}), ParseOptions{})
	if json.Unmarshal(got, &a) != nil || json.Unmarshal(again.WithServerFields("t1", "2", "2026-06-01T09:00:00.000Z"), &b) != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("Revised %s is not the same JSON as the two steps' %v", got, b)
	}
}

func TestAppendMembersToAnEmptyObject(t *testing.T) {
	t.Parallel()
	for _, obj := range []string{`{}`, `{ }`, "{\n}"} {
		got := AppendMembers([]byte(obj), map[string]any{"a": 1})
		var m map[string]any
		if err := json.Unmarshal(got, &m); err != nil || m["a"] != float64(1) {
			t.Errorf("AppendMembers(%q) = %s (%v)", obj, got, err)
		}
	}
}
