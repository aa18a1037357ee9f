package query

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// A value repeated within a parameter, a parameter repeated, and one
// whose values include all of another's change nothing a search finds,
// so they add no set for its script to combine: the search a security
// review sent (four parameters of status=requested fifty times over, 200
// sets combined one by one, seconds of Redis for every client) is one set.
func TestParseDropsRepeatedValuesAndGroups(t *testing.T) {
	t.Parallel()
	many := strings.TrimSuffix(strings.Repeat("requested,", 50), ",")
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"status=" + many + "&status=" + many + "&status=" + many + "&status=" + many, "[[status=requested]]"},
		{"status=requested,accepted,requested&status=accepted,requested", "[[status=requested status=accepted]]"},
		// A union holding all of another group is implied by it.
		{"status=requested&status=requested,accepted&status=accepted,requested,cancelled", "[[status=requested]]"},
		// Different unions both stay: neither implies the other.
		{"status=requested,accepted&status=requested,cancelled", "[[status=requested status=accepted] [status=requested status=cancelled]]"},
		{"identifier=a|1,a|1&status=requested", "[[identifier=a|1] [status=requested]]"},
	} {
		params, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(nil, gateway.TypeTask, params, false)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if got := fmt.Sprint(q.Groups); got != tc.want {
			t.Errorf("%.80s: groups %s, want %s", tc.query, got, tc.want)
		}
	}
}

// Each parameter that stands for several index sets (several values, or
// a token value without a system) is a union the search's script builds,
// about as large as the caller's resources: past MaxUnions of them the
// search is refused, naming the parameter, before anything reaches
// Redis. Repeats of one union count once.
func TestParseBoundsTheUnions(t *testing.T) {
	t.Parallel()
	parse := func(params []string) error {
		values, err := url.ParseQuery(strings.Join(params, "&"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(nil, gateway.TypeTask, values, false)
		return err
	}
	tooCostly := func(err error, param string) bool {
		var e *gateway.Error
		return errors.As(err, &e) && e.Issues[0].Code == fhir.IssueTooCostly && strings.Contains(e.Issues[0].Diagnostics, `"`+param+`"`)
	}
	var unions, bare []string
	for i := range MaxUnions {
		n := strconv.Itoa(i)
		unions = append(unions, "status=requested,x"+n, "status=x"+n+",requested")
		bare = append(bare, "identifier=y"+n, "identifier=a|1,y"+n)
	}
	if err := parse(unions); err != nil {
		t.Fatalf("%d unions, each twice: %v", MaxUnions, err)
	}
	if err := parse(append(unions, "status=requested,z")); !tooCostly(err, "status") {
		t.Errorf("%d unions and one more: %v, want too-costly naming status", MaxUnions, err)
	}
	// identifier=yN and identifier=a|1,yN: both a union, the second implied by the first.
	if err := parse(append(bare, "status=requested,z")); !tooCostly(err, "status") {
		t.Errorf("%d bare tokens and a union: %v, want too-costly naming status", MaxUnions, err)
	}
	if err := parse(append(bare, "status=requested")); err != nil {
		t.Errorf("%d bare tokens and a value: %v", MaxUnions, err)
	}
}
