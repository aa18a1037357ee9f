package mappings

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
)

// The outcomes a GP record codes: the referral accepted by the person,
// declined, completed, or not attended.
const (
	OutcomeAccepted     = "accepted"
	OutcomeDeclined     = "declined"
	OutcomeCompleted    = "completed"
	OutcomeDidNotAttend = "did-not-attend"
)

// OutcomeHeader is the header row of an outcome code table.
const OutcomeHeader = "system,code,display,outcome"

// OutcomeTable maps an outcome onto the code written back to the GP record.
// It holds only codes checked against published code sets: an outcome with
// no code is written back without one, never with an invented code.
type OutcomeTable struct {
	byOutcome map[string]Entry // Entry.Category holds the outcome
}

//go:embed outcome-codes.csv
var embeddedOutcomes string

// DefaultOutcomes is the embedded outcome table.
var DefaultOutcomes = embeddedTable(LoadOutcomes, embeddedOutcomes, "outcome-codes.csv")

// LoadOutcomes reads an outcome table, reporting every problem with its line.
func LoadOutcomes(r io.Reader, name string) (*OutcomeTable, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var problems []Problem
	if len(rows) == 0 || strings.Join(rows[0], ",") != OutcomeHeader {
		return nil, &LoadError{Problems: []Problem{{File: name, Line: 1, Message: "the header must be " + OutcomeHeader}}}
	}
	t := &OutcomeTable{byOutcome: map[string]Entry{}}
	for i, row := range rows[1:] {
		line := i + 2
		if len(row) != 4 {
			problems = append(problems, Problem{File: name, Line: line, Message: "expected 4 fields"})
			continue
		}
		e := Entry{System: strings.TrimSpace(row[0]), Code: strings.TrimSpace(row[1]), Display: strings.TrimSpace(row[2]), Category: strings.TrimSpace(row[3]), Line: line}
		switch e.Category {
		case OutcomeAccepted, OutcomeDeclined, OutcomeCompleted, OutcomeDidNotAttend:
		default:
			problems = append(problems, Problem{File: name, Line: line, Message: fmt.Sprintf("outcome %q is not one of accepted, declined, completed, did-not-attend", e.Category)})
			continue
		}
		if e.System == SystemSNOMED {
			if err := ValidSCTID(e.Code); err != nil {
				problems = append(problems, Problem{File: name, Line: line, Message: err.Error()})
				continue
			}
		}
		if prev, dup := t.byOutcome[e.Category]; dup {
			problems = append(problems, Problem{File: name, Line: line, Message: fmt.Sprintf("outcome %q already has a code on line %d", e.Category, prev.Line)})
			continue
		}
		t.byOutcome[e.Category] = e
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return t, nil
}

// Code returns the code of an outcome, if the table has one.
func (t *OutcomeTable) Code(outcome string) (Entry, bool) {
	e, ok := t.byOutcome[outcome]
	return e, ok
}
