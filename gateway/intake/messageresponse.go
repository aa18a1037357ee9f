package intake

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// MessageResponse is a provider's NHS BaRS servicerequest-response to a
// servicerequest-request Signpost sent it (delivery kind bars), already
// read as a message by gateway/bars.
type MessageResponse struct {
	// MessageID is the response's Bundle.id: the same response received
	// again changes nothing and is answered as it was.
	MessageID string
	// RequestID is the provider's X-Request-Id ("": none); a repeated one
	// is answered 409 duplicate, as BaRS asks.
	RequestID string
	// Answers is MessageHeader.response.identifier, the id of the message
	// Signpost sent, by which the referral Task is found; AnswersExpr is
	// its place in the message.
	Answers, AnswersExpr string
	// Change is what the response says of the referral Task, as the Task
	// members a provider sets (status, statusReason, businessStatus,
	// output); nil when it says nothing that moves the Task.
	Change map[string]any
	// ChangeExpr is where the change was read from, for errors.
	ChangeExpr string
}

// ReceiveResponse moves the referral Task a provider's response is about,
// exactly as the provider's PUT of that Task would (Update): the same
// status machine and side-of-the-referral rules, the same Provenance, GP
// notifications, write-back and BaRS answer to the referrer. The Task is
// found by the message the response answers, and only among the Tasks the
// provider owns: any other answer is not found, whether or not the message
// or Task exists. It returns the Task as it stands after the response.
func (s *Service) ReceiveResponse(ctx context.Context, caller gateway.Caller, m *MessageResponse, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	notFound := gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, m.AnswersExpr,
		"no referral Signpost sent you was sent in the message this response answers (MessageHeader.response.identifier)")
	holder, err := s.Store.Lookup(ctx, gateway.SentMessageKey(m.Answers))
	if err != nil {
		return nil, err
	}
	id, ok := strings.CutPrefix(holder, gateway.TypeTask+"/")
	if !ok {
		return nil, notFound
	}
	claims := []gateway.UniqueKey{{Key: gateway.MessageKey(caller, m.MessageID)}}
	if m.RequestID != "" {
		claims = append(claims, gateway.UniqueKey{Key: gateway.MessageRequestKey(caller, m.RequestID)})
	}
	// A change read from one version is applied to that version only
	// (If-Match); one made meanwhile (the provider's web inbox, a delivery
	// recorded) sends it round again on the new version.
	for attempt := 0; attempt < 3; attempt++ {
		cur, err := s.ReadVisible(ctx, caller, gateway.TypeTask, id)
		if errors.Is(err, gateway.ErrNotFound) {
			return nil, notFound
		}
		if err != nil {
			return nil, err
		}
		body := cur.Body
		if m.Change != nil {
			members := map[string]any{"lastModified": gateway.Instant(s.Now())}
			for k, v := range m.Change {
				members[k] = v
			}
			body = fhir.ReplaceMembers(body, members)
		}
		r := &Request{Method: "PUT", Type: gateway.TypeTask, ID: id, Body: body, IfMatch: cur.ETag(), Expr: m.ChangeExpr, claims: claims}
		outs, err := s.apply(ctx, caller, []*Request{r}, audit)
		var e *gateway.Error
		if errors.As(err, &e) && e.Kind == gateway.KindPreconditionFailed {
			continue
		}
		if err != nil {
			return nil, err
		}
		if outs[0].Resource == nil {
			outs[0].Resource = cur // nothing to change
		}
		return outs[0], nil
	}
	return nil, gateway.NewError(gateway.KindConflict, fhir.IssueConflict, "", "the referral kept changing while the response was applied; send it again")
}

// resolveClaims answers a request made from a message received before:
// its X-Request-Id used before is 409 duplicate; its message id names the
// version it wrote, which is the answer again. Looked up on every attempt
// (responses are few), all in one round trip, and claimed in the commit
// (claim), so two at once cannot both apply.
func (s *Service) resolveClaims(ctx context.Context, r *Request) error {
	keys := make([]string, len(r.claims))
	for i, c := range r.claims {
		keys[i] = c.Key
	}
	holders, err := s.Store.LookupMany(ctx, keys)
	if err != nil {
		return err
	}
	// claims[0] is the message id's key; any after it, the X-Request-Id's,
	// answered first, as for a request message (resolveMessageKeys).
	for _, holder := range holders[1:] {
		if holder != "" {
			return gateway.NewError(gateway.KindDuplicate, fhir.IssueDuplicate, "",
				"this X-Request-Id was used by an earlier request, which was processed; a new request needs a new X-Request-Id")
		}
	}
	holder := holders[0]
	if holder == "" {
		return nil
	}
	held, err := s.heldMessageChange(ctx, holder)
	if err != nil {
		return err
	}
	r.existing = held
	return nil
}

// claim adds a request's keys to the plan, naming the version it wrote, or
// the version it found when it changed nothing.
func (pl *plan) claim(r *Request, out *gateway.Outcome) {
	if out == nil || out.Resource == nil || len(r.claims) == 0 {
		return
	}
	held := out.Resource.Ref() + "/_history/" + strconv.Itoa(out.Resource.Version)
	for _, c := range r.claims {
		pl.commit.Unique = append(pl.commit.Unique, gateway.UniqueKey{Key: c.Key, Value: held, Of: out.Resource.Ref()})
	}
}
