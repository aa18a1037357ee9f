package mappings

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
)

// What a referrer's coded attestation says about the patient's consent to
// share their details with the provider.
const (
	ConsentGiven   = "given"
	ConsentRefused = "refused"
)

// ConsentHeader is the header row of a consent attestation code table. The
// source column says where each code was checked: CSV has no comments, and
// a code nobody can trace back to a published code set is not one to trust.
const ConsentHeader = "system,code,display,consent,source"

// ConsentTable holds the codes by which a referrer attests, in the
// referral, that the patient gave (or refused) consent to share their
// details. Only codes checked against published code sets belong in it.
type ConsentTable struct {
	byCode map[key]Entry // Entry.Category holds given or refused
}

//go:embed consent-codes.csv
var embeddedConsent string

// DefaultConsent is the embedded consent attestation table.
var DefaultConsent = embeddedTable(LoadConsent, embeddedConsent, "consent-codes.csv")

// LoadConsent reads a consent attestation table, reporting every problem
// with its line.
func LoadConsent(r io.Reader, name string) (*ConsentTable, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != ConsentHeader {
		return nil, &LoadError{Problems: []Problem{{File: name, Line: 1, Message: "the header must be " + ConsentHeader}}}
	}
	var problems []Problem
	t := &ConsentTable{byCode: map[key]Entry{}}
	for i, row := range rows[1:] {
		line := i + 2
		if len(row) != 5 {
			problems = append(problems, Problem{File: name, Line: line, Message: "expected 5 fields"})
			continue
		}
		e := Entry{System: strings.TrimSpace(row[0]), Code: strings.TrimSpace(row[1]), Display: strings.TrimSpace(row[2]), Category: strings.TrimSpace(row[3]), Line: line}
		if e.Category != ConsentGiven && e.Category != ConsentRefused {
			problems = append(problems, Problem{File: name, Line: line, Message: fmt.Sprintf("consent %q is not one of given, refused", e.Category)})
			continue
		}
		if strings.TrimSpace(row[4]) == "" {
			problems = append(problems, Problem{File: name, Line: line, Message: "source is empty: say where the code was checked"})
			continue
		}
		if e.System == SystemSNOMED {
			if err := ValidSCTID(e.Code); err != nil {
				problems = append(problems, Problem{File: name, Line: line, Message: err.Error()})
				continue
			}
		}
		k := key{e.System, e.Code}
		if prev, dup := t.byCode[k]; dup {
			problems = append(problems, Problem{File: name, Line: line, Message: fmt.Sprintf("code %s is already on line %d", e.Code, prev.Line)})
			continue
		}
		t.byCode[k] = e
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return t, nil
}

// Lookup says whether a code attests consent given or refused ("" when the
// table does not hold it).
func (t *ConsentTable) Lookup(system, code string) string {
	return t.byCode[key{system, code}].Category
}
