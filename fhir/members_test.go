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
