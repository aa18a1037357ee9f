package mappings

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Summary writes a short human-readable account of the table. It exists
// so that whoever approves a local table can see at a glance what it will
// do (how many codes land in each category, and which kinds of help no
// code reaches) without reading the CSV row by row. Write errors are
// ignored; use WriteSummary to see them.
func (t *Table) Summary(w io.Writer) {
	_ = t.WriteSummary(w)
}

// WriteSummary is Summary for callers, such as the CLI, that must notice
// a failed write (a closed pipe, a full disk).
func (t *Table) WriteSummary(w io.Writer) error {
	perCategory := make(map[string]int)
	var systems []string
	perSystem := make(map[string]int)
	for _, e := range t.Entries() {
		perCategory[e.Category]++
		if perSystem[e.System] == 0 {
			systems = append(systems, e.System)
		}
		perSystem[e.System]++
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Referral code table: %s\n", t.Source())
	fmt.Fprintf(tw, "Codes: %d\n", t.Len())
	fmt.Fprintf(tw, "Code systems:\n")
	for _, s := range systems {
		fmt.Fprintf(tw, "  %s\t%d\n", s, perSystem[s])
	}
	fmt.Fprintf(tw, "Codes per category:\n")
	var unused []categoryInfo
	for _, c := range categoryList {
		n := perCategory[c.name]
		if n == 0 {
			unused = append(unused, c)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\n", c.label, c.name, n)
	}
	if len(unused) == 0 {
		fmt.Fprintf(tw, "Categories with no codes: none\n")
	} else {
		fmt.Fprintf(tw, "Categories with no codes: %d\n", len(unused))
		for _, c := range unused {
			fmt.Fprintf(tw, "  %s\t%s\n", c.label, c.name)
		}
	}
	return tw.Flush()
}

// Check backs `signpost mappings check FILE`, which lets an operator
// validate a table before pointing a running gateway at it. On success it
// prints the summary to stdout; on failure it prints nothing and returns
// the error (a *LoadError for problems in the file) for the caller to show
// on stderr, so that scripts can tell the two apart.
func Check(path string, stdout io.Writer) error {
	t, err := LoadFile(path)
	if err != nil {
		return err
	}
	return t.WriteSummary(stdout)
}
