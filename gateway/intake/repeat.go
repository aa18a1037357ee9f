package intake

import (
	"slices"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/conform"
	"github.com/signpost-health/signpost/gateway/topic"
)

// checkUnchanged reports conform.ErrUnchanged for an update whose content is the
// current version's. A Subscription's update is never a no-op: sending it
// again is how its owner asks for a new handshake (and how one in error is
// made active again), a change of state its body does not show.
func checkUnchanged(r *Request, cur *gateway.Resource) error {
	if cur == nil || r.Type == topic.TypeSubscription {
		return nil
	}
	diff, err := conform.Differences(r.obj.Bytes(), cur.Body, false)
	if err != nil || len(diff) > 0 {
		return nil
	}
	r.existing = cur
	return conform.ErrUnchanged
}

// repeatDiffers refuses a create that names a held resource (the same
// referral identifier, a Task for a referral that has its Task) but says
// something else: what it says would otherwise be dropped without a word.
func repeatDiffers(r *Request, held *gateway.Resource, what string, onlySent bool, skip ...string) error {
	sent := r.obj.Bytes()
	if m := r.message; m != nil {
		if r == m.focus && m.placeOf != nil {
			m.place = m.placeOf(held.ID) // its entries are beside the referral held
		}
		// Compared as it would be stored: its references to the message's
		// supporting entries resolved.
		var err error
		if sent, err = fhir.RewriteReferences(sent, r.message.entryRefs()); err != nil {
			return err
		}
	}
	diff, err := conform.Differences(sent, held.Body, onlySent)
	if err != nil {
		return err
	}
	diff = slices.DeleteFunc(diff, func(n string) bool { return slices.Contains(skip, n) })
	if len(diff) == 0 {
		return nil
	}
	return gateway.NewError(gateway.KindConflict, fhir.IssueConflict, r.Type,
		"%s is held already as %s, and this %s differs from it in %s; it was not applied. To change it, PUT %s with If-Match naming its current version",
		what, held.Ref(), r.Type, strings.Join(diff, ", "), held.Ref())
}
