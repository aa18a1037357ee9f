package query

import (
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/topic"

	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/fhir"
)

type paramKind int

// searchParam maps a FHIR search parameter onto the index terms of index.go.
type searchParam struct {
	index   string // prefix of the index terms
	kind    paramKind
	targets []string // reference parameters: the types a bare id may name
	// always lists the values every resource of the type has (Task.code is
	// always fulfill): searching for one filters nothing, and the parameter
	// is not indexed.
	always []string
	// systems marks a token indexed under its system (tokenTerms): a value
	// without one is searched in every system (gateway/tokens.go).
	systems bool
}

// searchParams lists every search parameter Signpost supports, by resource
// type. The CapabilityStatement is generated from this table, so it cannot
// claim what search does not do.
var searchParams = map[string]map[string]searchParam{
	gateway.TypeServiceRequest: {
		"_id":        {index: "_id"},
		"identifier": {index: "identifier", systems: true},
		"status":     {index: "status"},
		"code":       {index: "code", systems: true},
		"patient":    {index: "subject", kind: referenceParam, targets: toPatient},
		"subject":    {index: "subject", kind: referenceParam, targets: toSubject},
		"requester":  {index: "requester", kind: referenceParam, targets: toRequester},
		"performer":  {index: "performer", kind: referenceParam, targets: toPerformer},
	},
	gateway.TypeTask: {
		"_id":        {index: "_id"},
		"identifier": {index: "identifier", systems: true},
		"status":     {index: "status"},
		"code":       {index: "code", always: []string{"fulfill", gateway.TaskCodeSystem + "|fulfill"}, systems: true},
		"focus":      {index: "focus", kind: referenceParam, targets: toFocus},
		"owner":      {index: "owner", kind: referenceParam, targets: toPerformer},
		"requester":  {index: "requester", kind: referenceParam, targets: toRequester},
		"patient":    {index: "subject", kind: referenceParam, targets: toPatient},
		"subject":    {index: "subject", kind: referenceParam, targets: toSubject},
	},
	gateway.TypePatient: {
		// Patient ids are each client's own (patients.go): _id is indexed.
		"_id":        {index: "id"},
		"identifier": {index: "identifier", systems: true},
	},
	topic.TypeSubscription: {
		"_id":    {index: "_id"},
		"status": {index: "status"},
	},
	gateway.TypeProvenance: {
		"_id":    {index: "_id"},
		"target": {index: "target", kind: referenceParam, targets: []string{gateway.TypeTask}},
	},
}

// SearchParams returns the names of the search parameters of a type, sorted,
// with whether each is a reference (for the CapabilityStatement).
func SearchParams(typ string) map[string]string {
	out := map[string]string{}
	for name, p := range searchParams[typ] {
		if p.kind == referenceParam {
			out[name] = "reference"
		} else {
			out[name] = "token"
		}
	}
	return out
}

// Paging and size limits. The default keeps a page small enough to be fast;
// the maxima stop one request from making Redis combine an unbounded number
// of index sets (a search is one script, and Redis runs one at a time).
const (
	DefaultCount = 50
	MaxCount     = 500
	// MaxValues bounds the comma-separated values of one parameter.
	MaxValues = 50
	// MaxTerms bounds the index terms of one search, all parameters together
	// (a bare reference id stands for one term per target type).
	MaxTerms = 200
	// MaxExpandedTerms bounds the index sets one search combines once each
	// value without a system is expanded to every system registered for its
	// parameter (up to 66 sets a value; gateway/tokens.go).
	MaxExpandedTerms = 1000
	// MaxUnions bounds the parameters of one search that stand for more
	// than one index set: several distinct values, or a token value
	// without a system (one set per system it may be in). Each is a union
	// the search's script builds, as large as the caller's resources that
	// match it (25 ms for 4,000 on a loaded machine: deploy/BENCHMARKS.md),
	// so it is their number, not the client, that bounds the script: 66
	// unions of two patients' referrals held Redis for 2.3 s.
	MaxUnions = 4
	// MaxOffset bounds paging: past it, narrow the search (by _lastUpdated).
	MaxOffset = 10000
)

// Query is a parsed search.
type Query struct {
	gateway.StoreQuery
	IncludeFocus bool
	// IncludePatient adds the Patients the matched Tasks are for, each read
	// in the Patients of the Task's client: how a provider reads a Patient
	// whose id two of its referring practices both use.
	IncludePatient bool
	Canonical      url.Values // the parameters that define the result, for paging links
	// groupParams names the parameter each of Groups came from, for the
	// errors that say which one to change.
	groupParams []string
}

// IfNoneExistQuery parses an If-None-Exist header: a search with filters only,
// within what the caller may see (a match elsewhere must not show).
// The registry generation its token terms were expanded with is returned too
// (-1: none were), for the commit to re-check.
func IfNoneExist(ctx context.Context, s *gateway.Core, caller gateway.Caller, typ, header string) (*Query, int64, error) {
	params, err := url.ParseQuery(strings.TrimPrefix(header, "?"))
	if err != nil {
		return nil, 0, gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, "", "If-None-Exist must be a search query such as identifier=system|value")
	}
	q, err := Parse(s, typ, params, false)
	if err != nil {
		return nil, 0, err
	}
	if len(q.Groups) == 0 || !q.Since.IsZero() || !q.Until.IsZero() || q.IncludeFocus || q.IncludePatient || params.Has("_id") {
		return nil, 0, gateway.NewError(gateway.KindInvalid, fhir.IssueNotSupported, "", "If-None-Exist takes search filters other than _id (such as identifier=system|value), and at least one")
	}
	gen, err := ExpandTokens(ctx, s, typ, q.Groups)
	if err != nil {
		return nil, 0, err
	}
	if scope := gateway.SearchScope(caller, typ); scope != nil {
		q.Groups = append(q.Groups, scope)
	}
	return q, gen, nil
}

func BadParam(name, format string, args ...any) error {
	return paramError(fhir.IssueNotSupported, name, format, args...)
}

// badValue is a supported parameter with a value that cannot be read.
func badValue(name, format string, args ...any) error {
	return paramError(fhir.IssueValue, name, format, args...)
}

func paramError(code fhir.IssueType, name, format string, args ...any) error {
	e := gateway.NewError(gateway.KindInvalid, code, "", format, args...)
	e.Issues[0].Diagnostics = "search parameter " + strconv.Quote(name) + ": " + e.Issues[0].Diagnostics
	return e
}

func Parse(s *gateway.Core, typ string, params url.Values, lenient bool) (*Query, error) {
	defs := searchParams[typ]
	q := &Query{StoreQuery: gateway.StoreQuery{Type: typ, Count: DefaultCount}, Canonical: url.Values{}}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, value := range params[name] {
			if err := parseParam(s, q, defs, typ, name, value, lenient); err != nil {
				return nil, err
			}
		}
	}
	terms := 0
	for _, g := range q.Groups {
		terms += len(g)
	}
	if terms > MaxTerms {
		return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueTooCostly, "", "the search is too broad to run: at most %d values in all (a bare reference id counts once per type it may name)", MaxTerms)
	}
	q.Groups, q.groupParams = withoutRepeats(q.Groups, q.groupParams)
	unions := 0
	for i, g := range q.Groups {
		if len(g) > 1 || strings.HasPrefix(g[0], gateway.AnySystem) {
			if unions++; unions > MaxUnions {
				return nil, paramError(fhir.IssueTooCostly, q.groupParams[i],
					"the search is too costly to run: at most %d parameters may each stand for several index sets (several values, or a token without its system); give system|code, or fewer values",
					MaxUnions)
			}
		}
	}
	return q, nil
}

func parseParam(s *gateway.Core, q *Query, defs map[string]searchParam, typ, name, value string, lenient bool) error {
	switch name {
	case "_count":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return badValue(name, "expected a whole number of entries per page, 0 to %d", MaxCount)
		}
		q.Count = min(n, MaxCount)
		return nil
	case "_offset":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > MaxOffset {
			return badValue(name, "expected a whole number from 0 to %d; to go further, narrow the search with _lastUpdated", MaxOffset)
		}
		q.Offset = n
		return nil
	case CursorParam:
		ks, err := decodeCursor(value)
		if err != nil {
			return badValue(name, "not a paging cursor Signpost made: follow the next link of the page before")
		}
		q.Keyset = ks
		return nil
	case "_sort":
		switch value {
		case "_lastUpdated":
			q.Descending = false
		case "-_lastUpdated":
			q.Descending = true
		default:
			return BadParam(name, "only _lastUpdated and -_lastUpdated are supported")
		}
		q.Canonical.Add(name, value)
		return nil
	case "_include":
		if typ == gateway.TypeTask && (value == "Task:focus" || value == "Task:focus:ServiceRequest") {
			q.IncludeFocus = true
			q.Canonical.Add(name, value)
			return nil
		}
		if typ == gateway.TypeTask && (value == "Task:patient" || value == "Task:patient:Patient") {
			q.IncludePatient = true
			q.Canonical.Add(name, value)
			return nil
		}
		if lenient {
			return nil
		}
		return BadParam(name, "only Task:focus and Task:patient are supported")
	case "_lastUpdated":
		since, until, err := parseDateParam(value)
		if err != nil {
			return badValue(name, "%v", err)
		}
		if !since.IsZero() && since.After(q.Since) {
			q.Since = since
		}
		if !until.IsZero() && (q.Until.IsZero() || until.Before(q.Until)) {
			q.Until = until
		}
		q.Canonical.Add(name, value)
		return nil
	case "_format", "_total", "_pretty":
		return nil // representation hints: JSON is the only format and totals are always given
	}
	base, modifier, _ := strings.Cut(name, ":")
	def, ok := defs[base]
	if !ok || (modifier != "" && !(modifier == "identifier" && def.kind == referenceParam)) {
		if lenient {
			return nil
		}
		known := make([]string, 0, len(defs))
		for k := range defs {
			known = append(known, k)
		}
		slices.Sort(known)
		return BadParam(name, "not supported for %s; supported: %s, _lastUpdated, _count, _sort%s", typ, strings.Join(known, ", "),
			map[bool]string{true: ", _include=Task:focus, _include=Task:patient", false: ""}[typ == gateway.TypeTask])
	}
	if value == "" {
		return badValue(name, "a value is required")
	}
	values := splitValues(value)
	if len(values) > MaxValues {
		return badValue(name, "at most %d comma-separated values", MaxValues)
	}
	var group []string
	for _, v := range values {
		if slices.Contains(def.always, v) {
			q.Canonical.Add(name, value)
			return nil // every resource matches
		}
		switch {
		case modifier == "identifier" && def.index == "owner":
			// Owners are configured providers, indexed by reference only.
			for _, p := range s.Router().ByOrganization(v) {
				group = append(group, gateway.OwnerTerm(p.ID))
			}
			if len(group) == 0 {
				group = append(group, gateway.MatchNothing)
			}
		case modifier == "identifier":
			group = append(group, tokenTerm(def.index+":identifier", v))
		case def.kind == referenceParam:
			v = s.LocalRef(v)
			if strings.Contains(v, "/") {
				group = append(group, gateway.Term(def.index, v))
				break
			}
			for _, typ := range def.targets { // a bare id: any of the target types
				group = append(group, gateway.Term(def.index, typ+"/"+v))
			}
		case def.systems:
			group = append(group, tokenTerm(def.index, v))
		default:
			group = append(group, gateway.Term(def.index, v))
		}
	}
	q.Groups = append(q.Groups, group)
	q.groupParams = append(q.groupParams, name)
	q.Canonical.Add(name, value)
	return nil
}

// withoutRepeats drops what repeats a search's meaning, with the names of
// the groups it drops: a term already in
// its group (an OR of it twice is it), and a group holding every term of
// another group (an AND of a set and of a union that contains it is the
// set), the first of identical groups kept. Each set combined is work in
// the search's script, so work is spent on what the search asks, not on
// how often the client wrote it. The groups are bounded (MaxTerms) before
// they are compared.
func withoutRepeats(groups [][]string, params []string) ([][]string, []string) {
	for i, g := range groups {
		groups[i] = distinctTerms(g)
	}
	var out [][]string
	var names []string
	for i, g := range groups {
		implied := false
		for j, h := range groups {
			if j != i && containsAll(g, h) && (len(h) < len(g) || j < i) {
				implied = true
				break
			}
		}
		if !implied {
			out, names = append(out, g), append(names, params[i])
		}
	}
	return out, names
}

// distinctTerms returns the terms of g, each once, in their first order.
func distinctTerms(g []string) []string {
	seen := make(map[string]bool, len(g))
	out := g[:0]
	for _, t := range g {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// containsAll reports whether every term of h is in g.
func containsAll(g, h []string) bool {
	for _, t := range h {
		if !slices.Contains(g, t) {
			return false
		}
	}
	return true
}

// tokenTerm is the term a token search value finds: "system|code" and
// "|code" as given, a bare code in any system (expanded later).
func tokenTerm(index, v string) string {
	if strings.Contains(v, "|") {
		return gateway.Term(index, v)
	}
	return gateway.AnySystemTerm(index, v)
}

// splitValues splits a search value on commas (OR), honouring "\," escapes.
func splitValues(v string) []string {
	if !strings.Contains(v, `\`) {
		return strings.Split(v, ",")
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// parseDateParam turns a FHIR date search value into [since, until): a date
// stands for the whole interval its precision names, and the prefix says
// which side of it matches.
func parseDateParam(v string) (since, until time.Time, err error) {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, err := dateRange(v)
	if err != nil {
		return since, until, err
	}
	switch prefix {
	case "eq":
		return lo, hi, nil
	case "gt", "sa":
		return hi, until, nil
	case "ge":
		return lo, until, nil
	case "lt", "eb":
		return since, lo, nil
	case "le":
		return since, hi, nil
	}
	return since, until, errDate
}

func dateRange(v string) (lo, hi time.Time, err error) {
	// Fractions first: time.Parse accepts a fraction after the seconds even
	// when the layout has none, which would widen the interval to a second.
	if dot := strings.IndexByte(v, '.'); dot > 0 {
		t, e := time.Parse(time.RFC3339Nano, v)
		if e != nil {
			return lo, hi, errDate
		}
		digits := 0
		for _, c := range v[dot+1:] {
			if c < '0' || c > '9' {
				break
			}
			digits++
		}
		step := time.Second
		for i := 0; i < digits && step > time.Nanosecond; i++ {
			step /= 10
		}
		return t, t.Add(step), nil
	}
	layouts := []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
		{"2006-01-02T15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05", func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	for _, l := range layouts {
		if t, e := time.Parse(l.layout, v); e == nil {
			return t, l.step(t), nil
		}
	}
	return lo, hi, errDate
}

var errDate = dateError{}

type dateError struct{}

// ExpandTokens replaces every AnySystem term of the groups with the terms
// that find its value in any system: each registered system, no system,
// and the bare term older versions of Signpost indexed. It returns the
// registry generation it used, or -1 when there was nothing to expand.
func ExpandTokens(ctx context.Context, s *gateway.Core, typ string, groups [][]string) (int64, error) {
	if !slices.ContainsFunc(groups, func(g []string) bool {
		return slices.ContainsFunc(g, func(t string) bool { return strings.HasPrefix(t, gateway.AnySystem) })
	}) {
		return -1, nil
	}
	registered, gen, err := s.Store.TokenSystems(ctx)
	if err != nil {
		return 0, err
	}
	for gi, g := range groups {
		var out []string
		for _, t := range g {
			if !strings.HasPrefix(t, gateway.AnySystem) {
				out = append(out, t)
				continue
			}
			index, value, _ := strings.Cut(strings.TrimPrefix(t, gateway.AnySystem), "=")
			out = append(out, gateway.Term(index, "|"+value), gateway.Term(index, value))
			prefix := typ + " " + index + " "
			for _, f := range registered {
				if system, ok := strings.CutPrefix(f, prefix); ok {
					out = append(out, gateway.Term(index, system+"|"+value))
				}
			}
		}
		// "|code" and "system|code" among the values find sets the
		// expansion of the bare code finds too: each is combined once.
		groups[gi] = distinctTerms(out)
	}
	terms := 0
	for _, g := range groups {
		terms += len(g)
	}
	if terms > MaxExpandedTerms {
		return 0, gateway.NewError(gateway.KindInvalid, fhir.IssueTooCostly, "",
			"the search is too broad to run: its values without a system stand for %d index entries, one per system each may be in; expected at most %d: give the system (system|code) or fewer values",
			terms, MaxExpandedTerms)
	}
	return gen, nil
}

const (
	tokenParam paramKind = iota
	referenceParam
)

// Target types of the reference parameters, from the R4 definitions.
var (
	toPatient   = []string{gateway.TypePatient}
	toRequester = []string{"Practitioner", "PractitionerRole", "Organization", gateway.TypePatient, "RelatedPerson", "Device"}
	toPerformer = []string{"Practitioner", "PractitionerRole", "Organization", "CareTeam", "HealthcareService", gateway.TypePatient, "Device", "RelatedPerson"}
	toSubject   = []string{gateway.TypePatient, "Group", "Location", "Device"}
	toFocus     = []string{gateway.TypeServiceRequest}
)

// CursorParam carries a keyset page's position in its next link.
const CursorParam = "_cursor"

// PageCursor is what a next link carries: the search's snapshot and the
// position of the last match returned. It holds store ids and times, no
// patient data, and a forged one only starts the caller's own search
// elsewhere.
type PageCursor struct {
	Snapshot int64  `json:"s"`
	Score    int64  `json:"a"`
	ID       string `json:"i"`
}

func decodeCursor(s string) (*gateway.Keyset, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) > 512 {
		return nil, errors.New("bad cursor")
	}
	var c PageCursor
	if err := json.Unmarshal(raw, &c); err != nil || c.Snapshot <= 0 || c.ID == "" {
		return nil, errors.New("bad cursor")
	}
	return &gateway.Keyset{Snapshot: time.UnixMilli(c.Snapshot).UTC(), After: &gateway.Position{Score: c.Score, ID: c.ID}}, nil
}

func (dateError) Error() string {
	return "expected a FHIR date, dateTime or instant (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss]Z) after an optional prefix eq, gt, ge, lt, le, sa or eb"
}
