package account

import (
	"strings"
	"testing"
	"time"
)

func TestNewPortalUserRefusesWhatBcryptWouldCut(t *testing.T) {
	if _, err := NewPortalUser("a@example.org", "p", strings.Repeat("x", 73), time.Now()); err == nil {
		t.Error("a 73-byte password was accepted; bcrypt would have read only 72 of it")
	}
	for _, bad := range []string{"", "a", "a@", "A <a@example.org>", "a@example.org, b@example.org"} {
		if _, err := CanonicalEmail(bad); err == nil {
			t.Errorf("%q accepted as an address", bad)
		}
	}
	if got, err := CanonicalEmail(" Sam@Example.ORG "); err != nil || got != "sam@example.org" {
		t.Errorf("CanonicalEmail: %q, %v", got, err)
	}
}
