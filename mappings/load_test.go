package mappings

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const hdr = "system,code,display,category\n"

// row builds a SNOMED CT line; the tests below mostly vary one field.
func row(code, display, category string) string {
	return SystemSNOMED + "," + code + "," + display + "," + category + "\n"
}

func loadProblems(t *testing.T, in string) []Problem {
	t.Helper()
	tab, err := Load(strings.NewReader(in), "test.csv")
	if err == nil {
		t.Fatalf("Load succeeded with %d entries, want an error", tab.Len())
	}
	if tab != nil {
		t.Errorf("Load returned a table alongside an error")
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load error is %T (%v), want *LoadError", err, err)
	}
	if len(le.Problems) == 0 {
		t.Fatal("LoadError has no problems")
	}
	for _, p := range le.Problems {
		if p.File != "test.csv" {
			t.Errorf("problem %q names file %q, want test.csv", p.Message, p.File)
		}
	}
	return le.Problems
}

// TestLoadErrors gives one file per kind of problem and checks that
// exactly one problem is reported, on the right line, saying the right
// thing.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	good := row("390893007", "Referral to physical activity program", "physical-activity")
	tests := []struct {
		name     string
		in       string
		wantLine int
		wantMsg  string // substring of the message
	}{
		{"header columns reordered", "system,code,category,display\n" + good, 1, `header must be "system,code,display,category"`},
		{"header missing", good + row("315232003", "x", "healthy-lifestyle"), 1, "header must be"},
		{"header wrong case", "System,Code,Display,Category\n" + good, 1, "header must be"},
		{"header comma inside quotes", `"system,code",display,category` + "\n" + good, 1, "header must be"},
		{"too few fields", hdr + good + SystemSNOMED + ",315232003,x\n", 3, "has 3 fields, want 4"},
		{"too many fields", hdr + SystemSNOMED + ",315232003,x,healthy-lifestyle,extra\n" + good, 2, "has 5 fields, want 4"},
		{"empty system", hdr + good + ",315232003,x,healthy-lifestyle\n", 3, "system is empty"},
		{"empty code", hdr + good + row("", "x", "healthy-lifestyle"), 3, "code is empty"},
		{"empty display", hdr + good + row("315232003", "", "healthy-lifestyle"), 3, "display is empty"},
		{"blank display", hdr + good + row("315232003", "   ", "healthy-lifestyle"), 3, "display is empty"},
		{"empty category", hdr + good + row("315232003", "x", ""), 3, "category is empty"},
		{"check digit", hdr + good + row("390893008", "x", "physical-activity"), 3, `code "390893008": SNOMED CT check digit is wrong (Verhoeff)`},
		{"sctid too short", hdr + good + row("10005", "x", "food"), 3, `code "10005": SNOMED CT identifier must be 6 to 18 digits long`},
		{"sctid too long", hdr + good + row("1234567890123456789", "x", "food"), 3, "must be 6 to 18 digits long"},
		{"sctid not digits", hdr + good + row("39O893007", "x", "food"), 3, "must contain only the digits"},
		{"sctid leading zero", hdr + good + row("0390893007", "x", "food"), 3, "must not start with 0"},
		{"description id", hdr + good + row("1234567011", "x", "food"), 3, "partition 01 is a description identifier"},
		{"unknown category", hdr + good + row("315232003", "x", "gardening"), 3, `unknown category "gardening"`},
		{"category wrong case", hdr + good + row("315232003", "x", "Food"), 3, `unknown category "Food"`},
		{"system not absolute", hdr + good + "snomed,315232003,x,food\n", 3, `system "snomed" is not an absolute URI`},
		{"system with space", hdr + good + "http://snomed.info/ sct,315232003,x,food\n", 3, "contains white space"},
		{"invalid UTF-8", hdr + good + row("315232003", "Referral \xff", "healthy-lifestyle"), 3, "display is not valid UTF-8"},
		{"invalid UTF-8 in header", "system,code,display,categ\xffory\n" + good, 1, "header must be"},
		{"bare quote", hdr + good + row("315232003", `the "x`, "food"), 3, "malformed CSV"},
		{"header only", hdr, 1, "table has no codes"},
		{"header only after blank lines", "\n\n" + hdr, 3, "table has no codes"},
		{"empty file", "", 1, "file is empty"},
		{"only a BOM", "\uFEFF", 1, "file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps := loadProblems(t, tt.in)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ps), (&LoadError{ps}).Error())
			}
			p := ps[0]
			if p.Line != tt.wantLine || !strings.Contains(p.Message, tt.wantMsg) {
				t.Errorf("got %s\nwant test.csv:%d: ...%s...", p, tt.wantLine, tt.wantMsg)
			}
		})
	}
}

func TestLoadErrorMessageFormat(t *testing.T) {
	t.Parallel()
	in := hdr + row("390893007", "a", "physical-activity") + row("390893008", "b", "physical-activity")
	_, err := Load(strings.NewReader(in), "referral-codes.csv")
	want := `referral-codes.csv:3: code "390893008": SNOMED CT check digit is wrong (Verhoeff)`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

// TestLoadReportsEverything makes sure the loader does not stop at the
// first problem, and that problems come out in file order.
func TestLoadReportsEverything(t *testing.T) {
	t.Parallel()
	in := "" +
		hdr + // 1
		row("390893007", "fine", "physical-activity") + // 2
		row("390893008", "bad check digit", "physical-activity") + // 3
		row("315232003", "fine", "healthy-lifestyle") + // 4
		row("413125004", "bad category", "gardening") + // 5
		SystemSNOMED + ",710915002,too few\n" + // 6
		row("390893007", "duplicate of 2", "physical-activity") + // 7
		row("", "no code", "food") + // 8
		row("0390893007", "two problems", "nope") // 9
	ps := loadProblems(t, in)
	wantLines := []int{3, 5, 6, 7, 8, 9, 9}
	var got []int
	for _, p := range ps {
		got = append(got, p.Line)
	}
	if !slices.Equal(got, wantLines) {
		t.Fatalf("problem lines = %v, want %v\n%v", got, wantLines, (&LoadError{ps}).Error())
	}
	msg := (&LoadError{ps}).Error()
	lines := strings.Split(msg, "\n")
	if len(lines) != len(ps) {
		t.Fatalf("Error() has %d lines for %d problems", len(lines), len(ps))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "test.csv:") {
			t.Errorf("Error() line %d = %q: does not name the file", i+1, l)
		}
	}
}

func TestLoadDuplicates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		in         string
		wantLine   int
		firstLine  string
		secondLine string
	}{
		{
			name:     "identical rows",
			in:       hdr + row("390893007", "a", "physical-activity") + row("315232003", "b", "healthy-lifestyle") + row("390893007", "a", "physical-activity"),
			wantLine: 4, firstLine: "2", secondLine: "4",
		},
		{
			name:     "same code, different category",
			in:       hdr + row("390893007", "a", "physical-activity") + row("390893007", "a", "arts"),
			wantLine: 3, firstLine: "2", secondLine: "3",
		},
		{
			name:     "duplicate only after trimming",
			in:       hdr + row("390893007", "a", "physical-activity") + row("390893007  ", "a", "physical-activity"),
			wantLine: 3, firstLine: "2", secondLine: "3",
		},
		{
			name:     "first copy has another problem",
			in:       hdr + row("390893007", "a", "gardening") + row("315232003", "b", "food") + row("390893007", "a", "physical-activity"),
			wantLine: 4, firstLine: "2", secondLine: "4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var dup *Problem
			for _, p := range loadProblems(t, tt.in) {
				if strings.Contains(p.Message, "duplicate") {
					dup = &p
				}
			}
			if dup == nil {
				t.Fatal("no duplicate reported")
			}
			want := "lines " + tt.firstLine + " and " + tt.secondLine
			if dup.Line != tt.wantLine || !strings.Contains(dup.Message, want) {
				t.Errorf("got %s, want line %d naming %q", dup, tt.wantLine, want)
			}
		})
	}
}

func TestLoadAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		wantLines []int
	}{
		{"plain", hdr + row("390893007", "Referral to physical activity program", "physical-activity"), []int{2}},
		{"BOM", "\uFEFF" + hdr + row("390893007", "Referral to physical activity program", "physical-activity"), []int{2}},
		{"CRLF", strings.ReplaceAll(hdr+row("390893007", "Referral to physical activity program", "physical-activity")+row("315232003", "Referral to stop-smoking clinic", "healthy-lifestyle"), "\n", "\r\n"), []int{2, 3}},
		{"BOM and CRLF, no final newline", "\uFEFFsystem,code,display,category\r\n" + SystemSNOMED + ",390893007,Referral to physical activity program,physical-activity", []int{2}},
		{"trailing white space", "system ,code\t,display,category  \n" + SystemSNOMED + "  ,390893007 ,Referral to physical activity program\t,physical-activity \n", []int{2}},
		{"quoted fields", hdr + `"` + SystemSNOMED + `","390893007","Referral to physical activity program","physical-activity"` + "\n", []int{2}},
		{"blank lines skipped", hdr + "\n" + row("390893007", "Referral to physical activity program", "physical-activity") + "\n", []int{3}},
		{"other system, no check digit", hdr + row("390893007", "Referral to physical activity program", "physical-activity") + "urn:oid:2.16.840.1.113883.2.1.3.2.4.15,Y1234,Local code,food\n", []int{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tab, err := Load(strings.NewReader(tt.in), "ok.csv")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tab.Len() != len(tt.wantLines) || tab.Source() != "ok.csv" {
				t.Fatalf("Len() = %d, Source() = %q; want %d, ok.csv", tab.Len(), tab.Source(), len(tt.wantLines))
			}
			for i, e := range tab.Entries() {
				if e.Line != tt.wantLines[i] {
					t.Errorf("entry %d on line %d, want %d", i, e.Line, tt.wantLines[i])
				}
				got, ok := tab.Lookup(e.System, e.Code)
				if !ok || got != e {
					t.Errorf("Lookup(%q, %q) = %+v, %v; want %+v", e.System, e.Code, got, ok, e)
				}
			}
			want := Entry{SystemSNOMED, "390893007", "Referral to physical activity program", "physical-activity", tt.wantLines[0]}
			if got, ok := tab.Lookup(SystemSNOMED, "390893007"); !ok || got != want {
				t.Errorf("Lookup = %+v, %v; want %+v (fields trimmed)", got, ok, want)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	d := Default()
	if d != Default() {
		t.Error("Default() parses the table more than once")
	}
	if d.Source() != "embedded" {
		t.Errorf("Source() = %q, want embedded", d.Source())
	}
	if d.Len() != len(wantDefault) || len(d.Entries()) != len(wantDefault) {
		t.Fatalf("Len() = %d, want %d", d.Len(), len(wantDefault))
	}
	for code, cat := range wantDefault {
		e, ok := d.Lookup(SystemSNOMED, code)
		if !ok {
			t.Errorf("%s missing", code)
			continue
		}
		if e.Category != cat || e.Code != code || e.System != SystemSNOMED || e.Display == "" {
			t.Errorf("%s: got %+v, want category %s", code, e, cat)
		}
	}
	for i, e := range d.Entries() {
		if e.Line != i+2 {
			t.Errorf("entry %d (%s) is on line %d, want file order", i, e.Code, e.Line)
		}
	}
	// Deliberately absent: they are referrals, but not social prescribing.
	for _, code := range []string{"306238000", "2140231000000104"} {
		if ValidSCTID(code) != nil {
			t.Errorf("%s should be a valid SCTID", code)
		}
		if _, ok := d.Lookup(SystemSNOMED, code); ok {
			t.Errorf("%s should not be in the default table", code)
		}
	}
	if _, ok := d.Lookup("http://snomed.info/sct/", "390893007"); ok {
		t.Error("Lookup matched a different system")
	}
}

func TestTableIsolation(t *testing.T) {
	t.Parallel()
	d := Default()
	es := d.Entries()
	es[0].Category = "mutated"
	if e, _ := d.Lookup(es[0].System, es[0].Code); e.Category == "mutated" {
		t.Error("Entries() exposes the table's storage")
	}
	var nilTable *Table
	if _, ok := nilTable.Lookup(SystemSNOMED, "390893007"); ok || nilTable.Len() != 0 || nilTable.Entries() != nil {
		t.Error("nil table is not empty")
	}
}

// TestLookupDoesNotAllocate is not parallel: allocation counts are
// process-wide, so other tests running at the same time would be counted.
func TestLookupDoesNotAllocate(t *testing.T) {
	d := Default()
	code := strings.Clone("390893007") // not a constant, as in real requests
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := d.Lookup(SystemSNOMED, code); !ok {
			t.Fatal("lookup failed")
		}
		d.Lookup(SystemSNOMED, "000000000")
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times per call", allocs)
	}
}

func BenchmarkLookup(b *testing.B) {
	d := Default()
	b.ReportAllocs()
	for b.Loop() {
		d.Lookup(SystemSNOMED, "390893007")
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		content   string // "" means the file does not exist
		wantErr   bool
		wantLoad  bool     // the error should be a *LoadError
		wantInOut []string // substrings of stdout on success
	}{
		{
			name:      "good",
			content:   hdr + row("390893007", "Referral to physical activity program", "physical-activity") + row("710911006", "Referral to housing service", "housing"),
			wantInOut: []string{"good.csv", "Codes: 2", "physical-activity", "housing"},
		},
		{
			name:     "bad",
			content:  hdr + row("390893008", "x", "physical-activity"),
			wantErr:  true,
			wantLoad: true,
		},
		{name: "missing", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "missing.csv")
			if tt.content != "" {
				path = writeFile(t, tt.name+".csv", tt.content)
			}
			var out bytes.Buffer
			err := Check(path, &out)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				for _, s := range tt.wantInOut {
					if !strings.Contains(out.String(), s) {
						t.Errorf("output lacks %q:\n%s", s, out.String())
					}
				}
				return
			}
			if err == nil {
				t.Fatal("Check succeeded, want an error")
			}
			if out.Len() != 0 {
				t.Errorf("Check wrote to stdout on failure:\n%s", out.String())
			}
			var le *LoadError
			if got := errors.As(err, &le); got != tt.wantLoad {
				t.Errorf("error %v: *LoadError = %v, want %v", err, got, tt.wantLoad)
			}
			if tt.wantLoad && !strings.HasPrefix(err.Error(), path+":2: ") {
				t.Errorf("error %q does not start with the path and line", err)
			}
			if !tt.wantLoad && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v, want not-exist", err)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	small, err := Load(strings.NewReader(hdr+
		row("390893007", "a", "physical-activity")+
		row("306158008", "b", "arts")+
		row("306156007", "c", "arts")+
		"urn:example:local,L1,d,arts\n"), "local.csv")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		table   *Table
		want    []string // regular expressions, each matching one line
		notWant []string
	}{
		{
			name:  "small",
			table: small,
			want: []string{
				`^Referral code table: local\.csv$`,
				`^Codes: 4$`,
				`^\s+http://snomed\.info/sct\s+3$`,
				`^\s+urn:example:local\s+1$`,
				`^\s+Physical activity\s+physical-activity\s+1$`,
				`^\s+Arts and creativity\s+arts\s+3$`,
				`^Categories with no codes: 15$`,
				`^\s+Link worker / general social needs\s+link-worker$`,
				`^\s+Housing\s+housing$`,
			},
			notWant: []string{`^\s+Housing\s+housing\s+\d+$`},
		},
		{
			name:  "default",
			table: Default(),
			want: []string{
				`^Referral code table: embedded$`,
				`^Codes: 24$`,
				`^\s+Link worker / general social needs\s+link-worker\s+3$`,
				`^\s+Arts and creativity\s+arts\s+3$`,
				`^\s+Alcohol and substance use\s+substance-use\s+1$`,
				`^Categories with no codes: none$`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			tt.table.Summary(&b)
			out := b.String()
			for _, re := range tt.want {
				if !regexp.MustCompile(`(?m)` + re).MatchString(out) {
					t.Errorf("summary has no line matching %s:\n%s", re, out)
				}
			}
			for _, re := range tt.notWant {
				if regexp.MustCompile(`(?m)` + re).MatchString(out) {
					t.Errorf("summary has a line matching %s:\n%s", re, out)
				}
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestCheckReportsWriteError(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "ok.csv", hdr+row("390893007", "a", "physical-activity"))
	if err := Check(path, failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Check = %v, want the write error", err)
	}
}
