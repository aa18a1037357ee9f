package structure

import (
	"encoding/json"
	"testing"

	"github.com/signpost-health/signpost/cmd/load/benchkit"
)

const divStart = `<div xmlns="http://www.w3.org/1999/xhtml">`

// decodedIssues is what the XML decoder's check says of a div.
func decodedIssues(s string) int {
	v := &validator{res: &Result{}}
	v.decodedXHTML(s, &loc{name: "text.div"})
	return len(v.res.Issues)
}

// The plain check takes the narratives most senders write, and leaves to
// the XML decoder everything else, valid or not: it never refuses, and it
// accepts only what the decoder accepts.
func TestPlainNarratives(t *testing.T) {
	for _, c := range []struct {
		div   string
		plain bool
		valid bool // the decoder's verdict
	}{
		{divStart + `<p>Referred to a walking group.</p></div>`, true, true},
		{divStart + `Text straight in the div</div>`, true, true},
		{divStart + `<h1>Plan</h1><ul><li>one</li><li>two<br/>lines</li></ul><table><tr><td>x</td></tr></table></div>`, true, true},
		{divStart + "<p>é — \u00a0 ✓ \U0001F600</p>\n</div>", true, true},
		// Valid, but for the decoder: entities, attributes, images,
		// comments, a namespace written otherwise, whitespace after the div.
		{divStart + `<p>Tea &amp; company</p></div>`, false, true},
		{divStart + `<p class="x">styled</p></div>`, false, true},
		{divStart + `<img src="x.png"/></div>`, false, true},
		{divStart + `<p>a<!-- note --></p></div>`, false, true},
		{`<div xmlns='http://www.w3.org/1999/xhtml'><p>quoted otherwise</p></div>`, false, true},
		{divStart + `<p>a</p></div>` + "\n", false, true},
		{divStart + `<p>1 > 0</p></div>`, false, true},
		// Invalid, and the decoder says why.
		{divStart + `<p>   </p></div>`, false, false},                      // txt-2: no text
		{divStart + `<script>alert(1)</script></div>`, false, false},       // txt-1
		{divStart + `<p onclick="x()">a</p></div>`, false, false},          // txt-1
		{divStart + `<p>unclosed</div>`, false, false},                     // not well-formed
		{divStart + `<p>a</p></div><div>second</div>`, false, false},       // two roots
		{divStart + `<p>a</p>`, false, false},                              // the div not closed
		{`<div><p>no namespace</p></div>`, false, false},                   // txt-1: the XHTML namespace
		{divStart + "<p>a\u0001b</p></div>", false, false},                 // not an XML character
		{divStart + `<P>upper case</P></div>`, false, false},               // not an XHTML element
		{divStart + `<p>a</span></div>`, false, false},                     // mismatched
		{divStart + `<p>a</p></div>trailing text`, false, false},           // text outside
		{divStart + `<p>a</p>` + "\xff" + `</div>`, false, false},          // not UTF-8
		{divStart + `<p>a</p></div>` + divStart + `b</div>`, false, false}, // two roots, both in the namespace
	} {
		if got := plainNarrative(c.div); got != c.plain {
			t.Errorf("%q: plain %v, want %v", c.div, got, c.plain)
		}
		if got := decodedIssues(c.div) == 0; got != c.valid {
			t.Errorf("%q: the decoder says valid %v, want %v", c.div, got, c.valid)
		}
	}
	// The referral the load generator sends takes the plain check, so the
	// intake figures measure it.
	var ref struct {
		Text struct{ Div string } `json:"text"`
	}
	if err := json.Unmarshal(benchkit.NewBodies("plain").Append(nil, 1), &ref); err != nil {
		t.Fatal(err)
	}
	if !plainNarrative(ref.Text.Div) {
		t.Errorf("the load generator's narrative is not plain: %q", ref.Text.Div)
	}
}

// Every narrative of the official R4 examples that the plain check accepts,
// the decoder accepts too; and some of them are plain, so this is not a
// test of nothing.
func TestOfficialNarrativesThePlainCheckTakesAreValid(t *testing.T) {
	plain := 0
	for name, body := range examples(t) {
		for _, div := range narratives(t, body) {
			if plainNarrative(div) {
				plain++
				if n := decodedIssues(div); n > 0 {
					t.Errorf("%s: the plain check accepts %q; the decoder finds %d problems", name, div, n)
				}
			}
		}
	}
	if plain < 10 {
		t.Errorf("only %d official narratives are plain", plain)
	}
}

// A narrative the plain check accepts is one the XML decoder's check
// accepts: the plain check only spares the decoder's work, it never
// decides otherwise.
func FuzzPlainNarrativeIsValid(f *testing.F) {
	for _, s := range []string{
		divStart + `<p>Referred to a walking group.</p></div>`,
		divStart + `<ul><li>a</li><li>b<br/>c</li></ul></div>`,
		divStart + `<table><tr><td>x</td></tr></table></div>`,
		divStart + `<p>a &amp; b</p></div>`,
		divStart + `<p>   </p></div>`,
		divStart + `<p>a</p></div>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if plainNarrative(s) && decodedIssues(s) > 0 {
			t.Errorf("the plain check accepts %q; the decoder does not", s)
		}
	})
}

// narratives are the text.div values anywhere in a resource (its own, its
// contained resources', a Bundle's entries').
func narratives(t *testing.T, body []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if text, ok := v["text"].(map[string]any); ok {
				if div, ok := text["div"].(string); ok {
					out = append(out, div)
				}
			}
			for _, m := range v {
				walk(m)
			}
		case []any:
			for _, m := range v {
				walk(m)
			}
		}
	}
	walk(v)
	return out
}
