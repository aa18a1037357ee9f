package conform

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// Nothing a client sends is dropped without a word. A request that repeats
// what is held — the same referral sent again, an update that changes
// nothing — is answered with what is held, and changes nothing (no new
// version, Provenance or notification). A "repeat" that differs from what
// is held is not a repeat: it is refused (409) with what differs and how
// to make the change, rather than answered as if it had been applied.

// ErrUnchanged is an update whose content is what is held: the plan
// answers with the held version and writes nothing for it.
var ErrUnchanged = errors.New("update changes nothing")

// serverMeta are the meta members Signpost sets on every version: they do
// not count as content.
var serverMeta = []string{"versionId", "lastUpdated"}

// Differences lists the top-level elements in which a resource a client
// sent differs from one held (by name, in order; never their values). The
// resource's id and the meta Signpost sets are not content. onlySent limits
// the comparison to the elements the client sent.
func Differences(sent, held []byte, onlySent bool) ([]string, error) {
	a, err := contentOf(sent)
	if err != nil {
		return nil, err
	}
	b, err := contentOf(held)
	if err != nil {
		return nil, err
	}
	var names []string
	for k, v := range a {
		if !reflect.DeepEqual(v, b[k]) {
			names = append(names, k)
		}
	}
	if !onlySent {
		for k := range b {
			if _, ok := a[k]; !ok {
				names = append(names, k)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// contentOf decodes a resource for comparison: numbers as written, without
// its id and the meta Signpost sets.
func contentOf(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		for _, k := range serverMeta {
			delete(meta, k)
		}
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m, nil
}

// PatchPaths are the pointers an operation reads or writes.
func PatchPaths(op jsonpatch.Operation) []string {
	path, _ := op.Path()
	out := []string{path}
	if from, err := op.From(); err == nil {
		out = append(out, from)
	}
	return out
}
