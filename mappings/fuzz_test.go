package mappings

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzLoad holds Load to its contract on arbitrary input: it never panics,
// a failure is always a located *LoadError, and a success only ever
// contains rows that would pass the same checks again.
func FuzzLoad(f *testing.F) {
	f.Add(embeddedCSV)
	f.Add(append([]byte("\uFEFF"), bytes.ReplaceAll(embeddedCSV, []byte("\n"), []byte("\r\n"))...))
	f.Add([]byte(hdr + row("390893008", "bad check digit", "physical-activity")))
	f.Add([]byte(hdr + row("390893007", "a", "physical-activity") + row("390893007", "a", "arts")))
	f.Add([]byte(hdr + "urn:example:x,A1,\"quoted, with comma\",food\n"))
	f.Add([]byte(hdr + SystemSNOMED + ",390893007,\"unterminated\n"))
	f.Add([]byte(hdr))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Load(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if tab != nil {
				t.Fatal("table returned with an error")
			}
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error %v is not a non-empty *LoadError", err)
			}
			for _, p := range le.Problems {
				if p.File != "fuzz.csv" || p.Line < 1 || p.Message == "" {
					t.Fatalf("badly located problem %+v", p)
				}
			}
			if strings.Count(le.Error(), "\n") != len(le.Problems)-1 {
				// A message must not contain a raw newline, or the
				// one-problem-per-line output would be ambiguous.
				t.Fatalf("Error() has the wrong number of lines:\n%s", le.Error())
			}
			return
		}
		if tab.Len() == 0 || tab.Len() != len(tab.Entries()) {
			t.Fatalf("loaded table has Len %d and %d entries", tab.Len(), len(tab.Entries()))
		}
		prev := 0
		for _, e := range tab.Entries() {
			if e.System == SystemSNOMED {
				if err := ValidSCTID(e.Code); err != nil {
					t.Fatalf("loaded invalid SCTID %q: %v", e.Code, err)
				}
			}
			if !IsCategory(e.Category) || e.Display == "" || e.System == "" || e.Code == "" {
				t.Fatalf("loaded bad entry %+v", e)
			}
			if e.Line <= prev {
				t.Fatalf("entries out of file order: line %d after %d", e.Line, prev)
			}
			prev = e.Line
			got, ok := tab.Lookup(e.System, e.Code)
			if !ok || got != e {
				t.Fatalf("Lookup(%q, %q) = %+v, %v; want %+v", e.System, e.Code, got, ok, e)
			}
		}
		var b bytes.Buffer
		if err := tab.WriteSummary(&b); err != nil {
			t.Fatal(err)
		}
	})
}
