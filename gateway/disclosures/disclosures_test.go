package disclosures

import (
	"context"
	"errors"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// One question at a time per client: a second while the first is being
// answered is refused (429), another client's is not, and once the first
// is answered the client may ask again.
func TestOneQuestionAtATimePerClient(t *testing.T) {
	t.Parallel()
	s := New(nil, nil)
	if !s.begin("practice-a") {
		t.Fatal("the first question was refused")
	}
	_, err := s.ForReferral(context.Background(), gateway.Caller{ClientID: "practice-a", Kind: gateway.CallerGP}, "ServiceRequest/x")
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Kind != gateway.KindTooManyRequests {
		t.Errorf("a second question at once: %v, want too many requests", err)
	}
	if !s.begin("practice-b") {
		t.Error("another client's question was refused")
	}
	s.end("practice-a")
	if !s.begin("practice-a") {
		t.Error("a question after the first was answered was refused")
	}
}
