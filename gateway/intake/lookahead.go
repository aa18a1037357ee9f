package intake

import (
	"context"
	"slices"
	"strings"

	"github.com/signpost-health/signpost/gateway"
)

// lookAhead is the unique keys a plan's entries look up as each is
// planned, listed before planning and read together, in one round trip
// (Store.LookupMany), the first time one of them is needed: a referral
// update's Task, a new Task's referral's, an updated Consent's referral, a
// message entry's holder. Looked up an entry at a time, a transaction (or
// a message's supporting entries) cost one round trip each, in sequence,
// 17 GETs each on a store that spreads referrals. Read at the first need,
// not before planning, so that an entry refused before it looks is
// refused as before, and a plan that looks nothing up reads nothing.
type lookAhead struct {
	keys []string
	// held is what each key holds ("" none), nil until read.
	held map[string]string
}

// lookup returns what key holds: with every key listed, read the first
// time one is needed; a key not listed (or none listed: a plan made
// outside prepare), alone.
func (l *lookAhead) lookup(ctx context.Context, store gateway.Store, key string) (string, error) {
	if l == nil || !slices.Contains(l.keys, key) {
		return store.Lookup(ctx, key)
	}
	if l.held == nil {
		values, err := store.LookupMany(ctx, l.keys)
		if err != nil {
			return "", err
		}
		l.held = make(map[string]string, len(l.keys))
		for i, k := range l.keys {
			l.held[k] = values[i]
		}
	}
	return l.held[key], nil
}

// plannedLookups lists the keys the entries of reqs will look up as they
// are planned (their ids given, references resolved; readSupporting has
// read what supporting entries replace), each where it is looked up:
//   - an update of a referral, its Task (planServiceRequest);
//   - a new Task, its referral's Task (planTask);
//   - an update of a Consent, the referral it came with (planRestConsent);
//   - a supporting entry stored before, the referral it is filed under;
//     one new, on a store that spreads, the resource another referral's
//     entry of its fullUrl made, and, placed in a numbered partition, the
//     referral such an entry stored before spreading is filed under
//     (planSupporting).
func (s *Service) plannedLookups(caller gateway.Caller, reqs []*Request) *lookAhead {
	l := &lookAhead{}
	for _, r := range reqs {
		if r.existing != nil {
			continue // answered by what it resolved to: planned no further
		}
		switch {
		case r.isSupporting() && r.current != nil:
			l.keys = append(l.keys, gateway.SupportingKey(r.current.Ref()))
		case r.isSupporting() && s.Spreads():
			l.keys = append(l.keys, gateway.MessageEntryKey(caller, r.FullURL))
			if r.message.place != "" {
				l.keys = append(l.keys, r.message.keyBeforeSpreading(r.Type, r.FullURL))
			}
		case r.isSupporting():
		case r.Method == "PUT" && r.Type == gateway.TypeServiceRequest:
			l.keys = append(l.keys, gateway.ReferralTaskKey(r.id))
		case r.Method == "PUT" && r.Type == gateway.TypeConsent:
			l.keys = append(l.keys, gateway.SupportingKey(gateway.TypeConsent+"/"+r.id))
		case r.Method == "POST" && r.Type == gateway.TypeTask && r.obj != nil:
			if f, ok := r.obj.Object("focus"); ok {
				ref, _ := f.String("reference")
				if id, ok := strings.CutPrefix(s.LocalRef(ref), gateway.TypeServiceRequest+"/"); ok && gateway.CheckID(id) == nil {
					l.keys = append(l.keys, gateway.ReferralTaskKey(id))
				}
			}
		}
	}
	return l
}
