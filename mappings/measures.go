package mappings

import (
	"embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
)

// Outcome measures are what a provider asks a person at first contact and
// again at completion, so that the change can be counted and coded back to
// the GP record. Each measure is a FHIR Questionnaire kept as a data file
// (measures/*.json), beside a table of the scores read from its answers
// (measures/scores.csv) and the code each score is recorded under. Like the
// referral code table they are data, so a deployment can add its own
// measure; they are checked hard at load, because a response is validated
// against them and a score's code reaches GP records.

// SystemLOINC is the FHIR system URI for LOINC. Codes in this system are
// checked for their mod 10 check digit.
const SystemLOINC = "http://loinc.org"

// MeasureCodeSystem is Signpost's own code system for the scores of
// outcome measures that have no verified SNOMED CT or LOINC code.
const MeasureCodeSystem = "https://signpost.health/fhir/CodeSystem/outcome-measure"

// ScoresHeader is the header row of a measure's scores table.
const ScoresHeader = "questionnaire,score,items,better,system,code,display,source"

// ItemType is the kind of answer a Questionnaire item takes. Only the kinds
// a score can be read from are supported; a free-text item would carry
// what the person said into every export.
type ItemType string

const (
	// ItemInteger is a whole number within the item's minValue and maxValue.
	ItemInteger ItemType = "integer"
	// ItemChoice is one of the item's answerOptions (valueCoding), each with
	// an ordinalValue that is its score.
	ItemChoice ItemType = "choice"
	// ItemDisplay is text shown to the person; it takes no answer.
	ItemDisplay ItemType = "display"
)

// Direction says which way a score improves: ONS4 anxiety and loneliness
// get better as they fall, life satisfaction as it rises.
type Direction string

const (
	HigherIsBetter Direction = "higher"
	LowerIsBetter  Direction = "lower"
)

// Questionnaire is one outcome measure: the FHIR resource as shipped
// (Body, served as it is) and what Signpost reads from it.
type Questionnaire struct {
	ID, URL, Version, Title string
	Body                    []byte
	Items                   []Item
	Scores                  []Score
}

// Item is one question.
type Item struct {
	LinkID, Text string
	Type         ItemType
	Required     bool
	// Min and Max bound an integer answer, and are the lowest and highest
	// ordinal of a choice item.
	Min, Max int
	Options  []Option
}

// Option is one answer a choice item offers.
type Option struct {
	System, Code, Display string
	Value                 int // its ordinalValue, what it adds to a score
}

// Score is a number read from a response: one item's answer, or the sum of
// several (the UCLA scale). It is recorded as an Observation coded Code.
type Score struct {
	ID     string
	Items  []string // linkIds, summed
	Better Direction
	Code   Entry // System, Code, Display
	Source string
	// Min and Max are the lowest and highest score the items allow.
	Min, Max int
}

// Item returns the item with a linkId.
func (q *Questionnaire) Item(linkID string) (*Item, bool) {
	for i := range q.Items {
		if q.Items[i].LinkID == linkID {
			return &q.Items[i], true
		}
	}
	return nil, false
}

// LinkIDs are the linkIds of the items, in order.
func (q *Questionnaire) LinkIDs() []string {
	out := make([]string, len(q.Items))
	for i := range q.Items {
		out[i] = q.Items[i].LinkID
	}
	return out
}

// Option returns the option a coding names.
func (it *Item) Option(system, code string) (Option, bool) {
	for _, o := range it.Options {
		if o.System == system && o.Code == code {
			return o, true
		}
	}
	return Option{}, false
}

// Measures is the set of outcome measures a deployment offers. It is
// immutable once loaded.
type Measures struct {
	byID  map[string]*Questionnaire
	order []string
}

// List returns the measures in id order.
func (m *Measures) List() []*Questionnaire {
	out := make([]*Questionnaire, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, m.byID[id])
	}
	return out
}

// ByID returns a measure by its Questionnaire id.
func (m *Measures) ByID(id string) (*Questionnaire, bool) {
	q, ok := m.byID[id]
	return q, ok
}

// Has reports whether a Questionnaire id is known.
func (m *Measures) Has(id string) bool { _, ok := m.byID[id]; return ok }

// ByCanonical returns the measure a QuestionnaireResponse.questionnaire
// names: its url, optionally with "|version" (which must be the version
// shipped).
func (m *Measures) ByCanonical(canonical string) (*Questionnaire, bool) {
	url, version, versioned := strings.Cut(canonical, "|")
	for _, id := range m.order {
		q := m.byID[id]
		if q.URL == url && (!versioned || version == q.Version) {
			return q, true
		}
	}
	return nil, false
}

// ScoreByCode finds the measure and score recorded under a code.
func (m *Measures) ScoreByCode(system, code string) (*Questionnaire, *Score, bool) {
	for _, id := range m.order {
		q := m.byID[id]
		for i := range q.Scores {
			if q.Scores[i].Code.System == system && q.Scores[i].Code.Code == code {
				return q, &q.Scores[i], true
			}
		}
	}
	return nil, nil, false
}

//go:embed measures/*.json measures/scores.csv
var embeddedMeasures embed.FS

var (
	defaultMeasuresOnce sync.Once
	defaultMeasures     *Measures
)

// DefaultMeasures are the measures shipped with Signpost (ONS4 and the
// three-item UCLA loneliness scale).
func DefaultMeasures() *Measures {
	defaultMeasuresOnce.Do(func() {
		sub, _ := fs.Sub(embeddedMeasures, "measures")
		m, err := LoadMeasures(sub, "measures")
		if err != nil {
			panic(err) // guarded by a test
		}
		defaultMeasures = m
	})
	return defaultMeasures
}

// LoadMeasuresDir reads a deployment's measures from a directory: its
// *.json Questionnaires and scores.csv.
func LoadMeasuresDir(dir string) (*Measures, error) {
	return LoadMeasures(os.DirFS(dir), dir)
}

// LoadMeasures reads every *.json Questionnaire of fsys and its
// scores.csv, reporting every problem with its file (and line) at once.
func LoadMeasures(fsys fs.FS, name string) (*Measures, error) {
	var problems []Problem
	m := &Measures{byID: map[string]*Questionnaire{}}
	files, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	if len(files) == 0 {
		problems = append(problems, Problem{File: name, Message: "holds no Questionnaire (*.json)"})
	}
	urls := map[string]string{}
	for _, f := range files {
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		q, ps := readQuestionnaire(body, path.Join(name, f))
		problems = append(problems, ps...)
		if q == nil {
			continue
		}
		if _, dup := m.byID[q.ID]; dup {
			problems = append(problems, Problem{File: path.Join(name, f), Message: fmt.Sprintf("id %q is used by another Questionnaire", q.ID)})
			continue
		}
		if other, dup := urls[q.URL]; dup {
			problems = append(problems, Problem{File: path.Join(name, f), Message: fmt.Sprintf("url is used by Questionnaire %q too", other)})
			continue
		}
		urls[q.URL] = q.ID
		m.byID[q.ID] = q
		m.order = append(m.order, q.ID)
	}
	slices.Sort(m.order)
	scores, err := fs.ReadFile(fsys, "scores.csv")
	if err != nil {
		problems = append(problems, Problem{File: path.Join(name, "scores.csv"), Message: "is missing: every measure needs the scores read from it"})
	} else {
		problems = append(problems, m.readScores(scores, path.Join(name, "scores.csv"))...)
	}
	for _, id := range m.order {
		if len(m.byID[id].Scores) == 0 && len(problems) == 0 {
			problems = append(problems, Problem{File: path.Join(name, "scores.csv"), Message: fmt.Sprintf("gives no score for Questionnaire %q", id)})
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return m, nil
}

// questionnaireJSON is what Signpost reads of a Questionnaire file.
type questionnaireJSON struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	URL          string `json:"url"`
	Version      string `json:"version"`
	Title        string `json:"title"`
	Status       string `json:"status"`
	Copyright    string `json:"copyright"`
	Item         []struct {
		LinkID    string          `json:"linkId"`
		Text      string          `json:"text"`
		Type      string          `json:"type"`
		Required  bool            `json:"required"`
		Repeats   bool            `json:"repeats"`
		Extension []extensionJSON `json:"extension"`
		Item      json.RawMessage `json:"item"`
		Options   []struct {
			Extension   []extensionJSON `json:"extension"`
			ValueCoding *struct {
				System, Code, Display string
			} `json:"valueCoding"`
		} `json:"answerOption"`
	} `json:"item"`
}

type extensionJSON struct {
	URL          string   `json:"url"`
	ValueInteger *int     `json:"valueInteger"`
	ValueDecimal *float64 `json:"valueDecimal"`
}

// The extensions a measure's items are read through (FHIR R4 core).
const (
	extMinValue     = "http://hl7.org/fhir/StructureDefinition/minValue"
	extMaxValue     = "http://hl7.org/fhir/StructureDefinition/maxValue"
	extOrdinalValue = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
)

func intExtension(exts []extensionJSON, url string) (int, bool) {
	for _, e := range exts {
		if e.URL != url {
			continue
		}
		switch {
		case e.ValueInteger != nil:
			return *e.ValueInteger, true
		case e.ValueDecimal != nil && *e.ValueDecimal == float64(int(*e.ValueDecimal)):
			return int(*e.ValueDecimal), true
		}
	}
	return 0, false
}

func readQuestionnaire(body []byte, file string) (*Questionnaire, []Problem) {
	var problems []Problem
	add := func(format string, args ...any) {
		problems = append(problems, Problem{File: file, Message: fmt.Sprintf(format, args...)})
	}
	var j questionnaireJSON
	if err := json.Unmarshal(body, &j); err != nil {
		add("is not a JSON Questionnaire: %v", err)
		return nil, problems
	}
	if j.ResourceType != "Questionnaire" {
		add("resourceType must be Questionnaire")
	}
	if !validMeasureID(j.ID) {
		add("id must be 1 to 64 lower-case letters, digits and '-'")
	}
	if !strings.HasPrefix(j.URL, "https://") && !strings.HasPrefix(j.URL, "http://") {
		add("url must be an absolute http(s) URL: responses name the measure by it")
	}
	if j.Version == "" || strings.Contains(j.Version, "|") {
		add("version is required and may not hold '|'")
	}
	if j.Title == "" {
		add("title is required: people read it")
	}
	if j.Status != "active" {
		add("status must be active")
	}
	if strings.TrimSpace(j.Copyright) == "" {
		add("copyright must cite the measure's source and licence")
	}
	q := &Questionnaire{ID: j.ID, URL: j.URL, Version: j.Version, Title: j.Title, Body: body}
	seen := map[string]bool{}
	for i, it := range j.Item {
		where := fmt.Sprintf("item[%d]", i)
		if it.LinkID == "" {
			add("%s has no linkId", where)
			continue
		}
		if seen[it.LinkID] {
			add("%s: linkId %q is used twice", where, it.LinkID)
		}
		seen[it.LinkID] = true
		if len(it.Item) > 0 || it.Repeats {
			add("%s: nested or repeating items are not supported", where)
		}
		item := Item{LinkID: it.LinkID, Text: it.Text, Type: ItemType(it.Type), Required: it.Required}
		switch item.Type {
		case ItemDisplay:
		case ItemInteger:
			lo, okLo := intExtension(it.Extension, extMinValue)
			hi, okHi := intExtension(it.Extension, extMaxValue)
			if !okLo || !okHi || lo > hi {
				add("%s: an integer item needs minValue and maxValue extensions (valueInteger), min not above max", where)
			}
			item.Min, item.Max = lo, hi
		case ItemChoice:
			if len(it.Options) == 0 {
				add("%s: a choice item needs answerOptions", where)
			}
			for k, o := range it.Options {
				v, ok := intExtension(o.Extension, extOrdinalValue)
				if o.ValueCoding == nil || o.ValueCoding.System == "" || o.ValueCoding.Code == "" || !ok {
					add("%s.answerOption[%d] needs a valueCoding with system and code, and an ordinalValue extension (its score)", where, k)
					continue
				}
				if k == 0 || v < item.Min {
					item.Min = v
				}
				if k == 0 || v > item.Max {
					item.Max = v
				}
				item.Options = append(item.Options, Option{System: o.ValueCoding.System, Code: o.ValueCoding.Code, Display: o.ValueCoding.Display, Value: v})
			}
		default:
			add("%s: type %q is not supported; measures take integer and choice items (and display text)", where, it.Type)
		}
		q.Items = append(q.Items, item)
	}
	if len(q.Items) == 0 {
		add("has no items")
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return q, nil
}

func validMeasureID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// readScores reads the scores table into the measures it names.
func (m *Measures) readScores(data []byte, file string) []Problem {
	var problems []Problem
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(data), "\ufeff"))).ReadAll()
	if err != nil {
		return []Problem{{File: file, Message: err.Error()}}
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != ScoresHeader {
		return []Problem{{File: file, Line: 1, Message: "the header must be " + ScoresHeader}}
	}
	codes := map[key]int{}
	for i, row := range rows[1:] {
		line := i + 2
		add := func(format string, args ...any) {
			problems = append(problems, Problem{File: file, Line: line, Message: fmt.Sprintf(format, args...)})
		}
		if len(row) != 8 {
			add("expected 8 fields")
			continue
		}
		for k := range row {
			row[k] = strings.TrimSpace(row[k])
		}
		q, ok := m.byID[row[0]]
		if !ok {
			add("questionnaire %q is no Questionnaire of this set", row[0])
			continue
		}
		s := Score{ID: row[1], Better: Direction(row[3]), Code: Entry{System: row[4], Code: row[5], Display: row[6], Line: line}, Source: row[7]}
		if !validMeasureID(s.ID) {
			add("score %q must be lower-case letters, digits and '-'", s.ID)
		}
		for _, other := range q.Scores {
			if other.ID == s.ID {
				add("score %q of %q is listed twice", s.ID, q.ID)
			}
		}
		if s.Better != HigherIsBetter && s.Better != LowerIsBetter {
			add("better %q is not one of higher, lower", row[3])
		}
		for _, linkID := range strings.Split(row[2], "+") {
			it, ok := q.Item(strings.TrimSpace(linkID))
			if !ok || it.Type == ItemDisplay {
				add("item %q is no answered item of %q", linkID, q.ID)
				continue
			}
			if !it.Required {
				add("item %q of %q is not required, so the score could not always be read", linkID, q.ID)
			}
			s.Items = append(s.Items, it.LinkID)
			s.Min += it.Min
			s.Max += it.Max
		}
		if s.Code.Display == "" || s.Source == "" {
			add("display and source are required: the display is what a GP reads, the source says where the code comes from")
		}
		if err := checkMeasureCode(s.Code.System, s.Code.Code); err != nil {
			add("code %q: %v", s.Code.Code, err)
		}
		if prev, dup := codes[key{s.Code.System, s.Code.Code}]; dup {
			add("code %q is used on line %d too: each score has a code of its own", s.Code.Code, prev)
		}
		codes[key{s.Code.System, s.Code.Code}] = line
		q.Scores = append(q.Scores, s)
	}
	return problems
}

// checkMeasureCode holds a score's code to what can be verified: an SCTID
// must pass its Verhoeff check, a LOINC code its mod 10 check digit, and
// any other system must be an absolute URI.
func checkMeasureCode(system, code string) error {
	switch {
	case code == "":
		return fmt.Errorf("is empty")
	case system == SystemSNOMED:
		return ValidSCTID(code)
	case system == SystemLOINC:
		return ValidLOINC(code)
	case !strings.HasPrefix(system, "http://") && !strings.HasPrefix(system, "https://") && !strings.HasPrefix(system, "urn:"):
		return fmt.Errorf("system %q is not an absolute URI", system)
	}
	return nil
}

// ValidLOINC reports why s cannot be a LOINC code: digits, a hyphen and a
// check digit computed by LOINC's mod 10 algorithm (Luhn's) over the digits
// before the hyphen.
func ValidLOINC(s string) error {
	body, check, ok := strings.Cut(s, "-")
	if !ok || body == "" || len(body) > 7 || len(check) != 1 {
		return fmt.Errorf("a LOINC code is 1 to 7 digits, a hyphen and a check digit")
	}
	sum := 0
	for i := 0; i < len(body); i++ {
		c := body[len(body)-1-i]
		if c < '0' || c > '9' {
			return fmt.Errorf("a LOINC code holds only digits before its hyphen")
		}
		d := int(c - '0')
		if i%2 == 0 { // the rightmost digit and every second one left of it are doubled
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	if want := (10 - sum%10) % 10; check[0] != byte('0'+want) {
		return fmt.Errorf("the LOINC check digit is wrong (mod 10)")
	}
	return nil
}
