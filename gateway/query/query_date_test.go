package query

import (
	"testing"
	"time"
)

func TestParseDateParam(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		in           string
		since, until string // "" for unbounded
	}{
		{"2026-11-21", "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"},
		{"eq2026-11", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"gt2026", "2027-01-01T00:00:00Z", ""},
		{"ge2026-11-21T10:00:00Z", "2026-11-21T10:00:00Z", ""},
		{"lt2026-11-21T10:00:00+01:00", "", "2026-11-21T09:00:00Z"},
		{"le2026-11-21T10:00:00Z", "", "2026-11-21T10:00:01Z"},
		{"gt2026-11-21T10:00:00.123Z", "2026-11-21T10:00:00.124Z", ""},
		{"eb2026-11-21T10:00:00.5Z", "", "2026-11-21T10:00:00.5Z"},
		{"sa2026-11-21T10:00Z", "2026-11-21T10:01:00Z", ""},
	} {
		since, until, err := parseDateParam(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if (tc.since == "") != since.IsZero() || (tc.since != "" && !since.Equal(at(tc.since))) {
			t.Errorf("%s: since %v, want %s", tc.in, since, tc.since)
		}
		if (tc.until == "") != until.IsZero() || (tc.until != "" && !until.Equal(at(tc.until))) {
			t.Errorf("%s: until %v, want %s", tc.in, until, tc.until)
		}
	}
	for _, bad := range []string{"", "yesterday", "ne2026", "2026-13-01", "2026-11-21T25:00:00Z", "2026-11-21T10:00:00.Z"} {
		if _, _, err := parseDateParam(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
