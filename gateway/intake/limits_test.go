package intake

import (
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// The versions a commit's script checks (one read each) are bounded per
// request: a request whose consent decisions read more stored Consents
// than that is refused before anything is written, not sent to Redis.
func TestRequestReadingTooManyConsentsIsRefused(t *testing.T) {
	t.Parallel()
	pl := &plan{}
	for i := range maxDecidedOn {
		pl.decidedOn(&gateway.Resource{Type: gateway.TypeConsent, ID: "c" + strconv.Itoa(i), Version: 1})
	}
	pl.decidedOn(&gateway.Resource{Type: gateway.TypeConsent, ID: "c0", Version: 1}) // read again: counted once
	if err := pl.checkRequestBounds(); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	pl.decidedOn(&gateway.Resource{Type: gateway.TypeConsent, ID: "one-more", Version: 1})
	err := pl.checkRequestBounds()
	if e := gateway.AsError(err); err == nil || e.Kind != gateway.KindTooLarge || !strings.Contains(e.Error(), "several transactions") {
		t.Errorf("over the bound: %v, want too large, saying what to do", err)
	}
}
