package query

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

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
