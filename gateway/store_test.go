package gateway

import "testing"

// Criteria alike name one search whatever their order; criteria that
// differ never share a name, whatever characters a client's values hold
// (a commit checks each distinct cap once, by this name).
func TestCriteriaKey(t *testing.T) {
	t.Parallel()
	a := Criteria{Type: "Task", Groups: [][]string{{"client|a"}, {"subject|x", "subject|y"}}}
	alike := Criteria{Type: "Task", Groups: [][]string{{"subject|y", "subject|x"}, {"client|a"}}, Limit: 3}
	if a.Key() != alike.Key() {
		t.Errorf("the same search in another order has another name: %q, %q", a.Key(), alike.Key())
	}
	for _, pair := range [][2]Criteria{
		// One group of two terms, and one term holding the separator a
		// plain join would use.
		{{Type: "Task", Groups: [][]string{{"a", "b"}}}, {Type: "Task", Groups: [][]string{{"a\x00b"}}}},
		// Two groups, and one group whose term holds the group separator.
		{{Type: "Task", Groups: [][]string{{"a"}, {"b"}}}, {Type: "Task", Groups: [][]string{{"a\x01b"}}}},
		// The type's end, moved into a term.
		{{Type: "Task", Groups: [][]string{{"x"}}}, {Type: "Tas", Groups: [][]string{{"kx"}}}},
		{{Type: "Task", Groups: [][]string{{"1:a"}}}, {Type: "Task", Groups: [][]string{{"a"}, {}}}},
	} {
		if pair[0].Key() == pair[1].Key() {
			t.Errorf("different searches %v and %v share the name %q", pair[0], pair[1], pair[0].Key())
		}
	}
}
