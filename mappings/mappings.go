// Package mappings holds the referral code table: the list that turns the
// coded reason on an incoming referral (normally a SNOMED CT concept) into
// the social prescribing category that decides where the referral goes.
//
// The table is data, not code, because each deployment's commissioners
// decide which codes count as social prescribing; a default table is
// embedded so that the gateway works out of the box. Tables are checked
// hard at load time (SNOMED CT check digits, closed category set,
// duplicates) because a bad row fails silently at run time: the referral
// just falls through to the link worker.
//
// The package imports nothing from the rest of the project, so the CLI,
// the gateway and tests can all use it without pulling in each other.
package mappings

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// SystemSNOMED is the FHIR system URI for SNOMED CT. Codes in this system
// are checked as SCTIDs; codes in other systems are taken as they are.
const SystemSNOMED = "http://snomed.info/sct"

// Header is the exact first row a table file must have. Requiring it
// catches files exported with the columns in another order, which would
// otherwise load "successfully" with displays where the codes should be.
const Header = "system,code,display,category"

var columns = strings.Split(Header, ",")

// Entry is one row of a table. Line is kept so that anything reporting on
// an entry later can point the reader back at the file.
type Entry struct {
	System, Code, Display, Category string
	Line                            int
}

type key struct{ system, code string }

// Table is immutable once loaded, so one table can be shared by every
// request goroutine without locking.
type Table struct {
	source  string
	entries []Entry
	index   map[key]int
}

// Problem is one thing wrong with a table file, located by line so that
// the person editing the file can go straight to it.
type Problem struct {
	File    string
	Line    int
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
}

// LoadError carries every problem found in a file rather than the first,
// because tables are edited by hand and fixed in one sitting: reporting
// problems one per attempt turns a five-minute fix into a long loop.
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Load reads a table in CSV form. name is only used to label problems and
// as the table's Source, so it should be what the operator would recognise
// (usually the path they configured).
//
// Problems in the content are all collected and returned together as a
// *LoadError; an error from r itself is returned as it is, since no line
// can be blamed for it. Fields are trimmed of surrounding white space
// because spreadsheet exports and hand edits add it invisibly.
func Load(r io.Reader, name string) (*Table, error) {
	br := bufio.NewReader(r)
	// Spreadsheet programs commonly write a byte order mark; without this
	// the header would never match and the message would be baffling.
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}

	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // column counts are checked per row, so that every bad row is reported
	cr.ReuseRecord = true

	t := &Table{source: name, index: make(map[key]int)}
	var problems []Problem
	report := func(line int, format string, args ...any) {
		problems = append(problems, Problem{File: name, Line: line, Message: fmt.Sprintf(format, args...)})
	}
	firstLine := make(map[key]int) // every (system, code) seen, even on bad rows, so duplicates are always caught
	sawHeader := false
	headerLine := 1
	rows := 0

	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			// encoding/csv resumes after the broken record, so carry on and
			// report the rest of the file too.
			report(pe.Line, "malformed CSV at column %d: %v", pe.Column, pe.Err)
			if !sawHeader {
				sawHeader = true
			} else {
				rows++
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}

		if !sawHeader {
			sawHeader, headerLine = true, line
			if !slices.Equal(rec, columns) {
				report(line, "header must be %q, not %q", Header, strings.Join(rec, ","))
			}
			continue
		}
		rows++

		if len(rec) != len(columns) {
			report(line, "has %d fields, want %d (%s)", len(rec), len(columns), Header)
			continue
		}
		rowOK := true
		for i, f := range rec {
			if !utf8.ValidString(f) {
				report(line, "%s is not valid UTF-8", columns[i])
				rowOK = false
			} else if f == "" {
				report(line, "%s is empty", columns[i])
				rowOK = false
			}
		}
		e := Entry{System: rec[0], Code: rec[1], Display: rec[2], Category: rec[3], Line: line}

		if e.System != "" && utf8.ValidString(e.System) {
			if msg := checkSystem(e.System); msg != "" {
				report(line, "system %q %s", e.System, msg)
				rowOK = false
			}
		}
		if e.System == SystemSNOMED && e.Code != "" && utf8.ValidString(e.Code) {
			if err := ValidSCTID(e.Code); err != nil {
				report(line, "code %q: %v", e.Code, err)
				rowOK = false
			}
		}
		if e.Category != "" && utf8.ValidString(e.Category) && !IsCategory(e.Category) {
			report(line, "unknown category %q (want one of: %s)", e.Category, strings.Join(Categories(), ", "))
			rowOK = false
		}
		if e.System != "" && e.Code != "" {
			k := key{e.System, e.Code}
			if first, dup := firstLine[k]; dup {
				report(line, "duplicate row: system %q code %q is on lines %d and %d", e.System, e.Code, first, line)
				rowOK = false
			} else {
				firstLine[k] = line
			}
		}

		if rowOK {
			t.index[key{e.System, e.Code}] = len(t.entries)
			t.entries = append(t.entries, e)
		}
	}

	switch {
	case !sawHeader:
		report(1, "file is empty: want the header %q and at least one row", Header)
	case rows == 0:
		report(headerLine, "table has no codes: there is a header but no rows")
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return t, nil
}

// checkSystem returns why s is unusable as a FHIR Coding.system, or "".
// FHIR requires an absolute URI there; a bare name such as "SNOMED" is the
// usual mistake, and would make every lookup for that row miss.
func checkSystem(s string) string {
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return "contains white space"
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return "is not an absolute URI"
	}
	return ""
}

// LoadFile labels problems with path exactly as given, so that messages
// match what the operator typed in the configuration.
func LoadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Load(f, path)
}

//go:embed referral-codes.csv
var embeddedCSV []byte

const embeddedName = "referral-codes.csv"

var defaultTable = sync.OnceValue(func() *Table {
	t, err := Load(bytes.NewReader(embeddedCSV), embeddedName)
	if err != nil {
		panic("mappings: embedded table is broken: " + err.Error())
	}
	t.source = "embedded"
	return t
})

// embeddedTable is a table built into the binary, read on first use and
// shared by every caller. A broken embedded table is a build defect, which
// each table's test catches before release, so it panics.
func embeddedTable[T any](load func(io.Reader, string) (T, error), data, name string) func() T {
	return sync.OnceValue(func() T {
		t, err := load(strings.NewReader(data), name)
		if err != nil {
			panic("mappings: embedded " + name + " is broken: " + err.Error())
		}
		return t
	})
}

// Default returns the table built into the binary. It panics rather than
// returning an error because a broken embedded table is a build defect,
// which TestDefault catches before release; every caller shares one parsed
// copy.
func Default() *Table {
	return defaultTable()
}

// Lookup is on the path of every referral, so it does not allocate and
// matches system and code exactly: normalising here would hide data
// quality problems in the sending system. A nil table finds nothing.
func (t *Table) Lookup(system, code string) (Entry, bool) {
	if t == nil {
		return Entry{}, false
	}
	i, ok := t.index[key{system, code}]
	if !ok {
		return Entry{}, false
	}
	return t.entries[i], true
}

// Len is the number of codes in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// Entries returns a copy in file order, so callers may sort or filter it
// without disturbing a table other goroutines are reading.
func (t *Table) Entries() []Entry {
	if t == nil {
		return nil
	}
	out := make([]Entry, len(t.entries))
	copy(out, t.entries)
	return out
}

// Source says where the table came from ("embedded" or the name given to
// Load), so that logs and summaries show which table is really in force.
func (t *Table) Source() string {
	if t == nil {
		return ""
	}
	return t.source
}
