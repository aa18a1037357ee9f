package search

import (
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
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/query"
)

// Search runs a search. lenient ignores unknown parameters (Prefer:
// handling=lenient); by default they are refused, because silently ignoring
// a filter returns more than the caller asked for.
func (s *Service) Search(ctx context.Context, caller gateway.Caller, typ string, params url.Values, lenient bool) (*gateway.SearchResult, error) {
	return s.search(ctx, caller, typ, params, lenient, true)
}

// search runs a search; hide lets a provider's Provenance search that
// meets Provenances of a Task the provider may not see finish hiding them
// and run once more.
func (s *Service) search(ctx context.Context, caller gateway.Caller, typ string, params url.Values, lenient, hide bool) (*gateway.SearchResult, error) {
	q, err := query.Parse(s.Core, typ, params, lenient)
	if err != nil {
		return nil, err
	}
	if _, err := query.ExpandTokens(ctx, s.Core, typ, q.Groups); err != nil {
		return nil, err
	}
	if scope := gateway.SearchScope(caller, typ); scope != nil {
		q.Groups = append(q.Groups, scope)
	}
	// Paging is by keyset, in the order the search had when its first page
	// was read, unless the caller asked for an offset (the web inbox's
	// numbered pages): a match that changes between pages then neither
	// shifts others out of reach nor comes round again.
	if q.Keyset == nil && q.Offset == 0 && q.Count > 0 {
		q.Keyset = &gateway.Keyset{Snapshot: s.Now().UTC().Truncate(time.Millisecond)}
	}
	if q.Keyset != nil && q.Offset > 0 {
		return nil, query.BadParam("_offset", "a page reached by its next link continues from where the last ended; _offset cannot be combined with it")
	}
	want := q.Count
	if q.Keyset != nil {
		q.Count++ // one more than the page, to know whether there is a next
	}
	ids, total, err := s.Store.Search(ctx, &q.StoreQuery)
	if errors.Is(err, gateway.ErrSnapshotStale) {
		return nil, gateway.NewError(gateway.KindGone, fhir.IssueNotFound, "",
			"more matches changed since this search's first page than a paging link can follow (%d); run the search again from its first page", gateway.MaxChangedFollowed)
	}
	if err != nil {
		return nil, err
	}
	more := false
	if q.Keyset != nil {
		q.Count = want
		if len(ids) > want {
			ids, more = ids[:want], true
		}
	}
	res := &gateway.SearchResult{Total: total}
	if len(ids) > 0 {
		refs := make([]string, len(ids))
		for i, id := range ids {
			refs[i] = typ + "/" + id
		}
		if res.Matches, err = s.Store.ReadMany(ctx, refs); err != nil {
			return nil, err
		}
	}
	if typ == gateway.TypeProvenance {
		// A provider finds a Provenance by its index, which a withdrawal
		// changes in steps: one met of a Task the provider may not see is
		// left out, and its Task's are hidden for good (the process that
		// withdrew it stopped between its steps) before the search runs
		// again, so that its count and pages leave them out too.
		seen, unseen, err := s.ProvenancesSeen(ctx, caller, res.Matches)
		if err != nil {
			return nil, err
		}
		if len(unseen) > 0 && hide {
			for _, id := range unseen {
				if err := s.HideRemainingProvenances(ctx, id); err != nil {
					return nil, err
				}
			}
			return s.search(ctx, caller, typ, params, lenient, false)
		}
		res.Total -= len(res.Matches) - len(seen)
		res.Matches = seen
	}
	if q.IncludeFocus {
		if res.Included, err = s.FocusesOf(ctx, res.Matches); err != nil {
			return nil, err
		}
	}
	if q.IncludePatient {
		for _, task := range res.Matches {
			view, err := gateway.ParseTask(task.Body)
			if err != nil {
				return nil, err
			}
			id, ok := strings.CutPrefix(s.LocalRef(view.For), gateway.TypePatient+"/")
			if !ok {
				continue
			}
			p, err := s.PatientOf(ctx, caller, task, id)
			if err != nil {
				return nil, err
			}
			if p != nil && !slices.ContainsFunc(res.Included, func(r *gateway.Resource) bool {
				return r.Type == gateway.TypePatient && r.ID == p.ID && r.Owner == p.Owner
			}) {
				res.Included = append(res.Included, p)
			}
		}
	}
	// A provider sees what its share profile lets it (gateway/share.go).
	res.Matches, res.Included = s.SharedAll(caller, res.Matches), s.SharedAll(caller, res.Included)
	if ks := q.Keyset; ks != nil {
		res.Self = pageQuery(q.Canonical, 0, q.Count)
		if ks.After != nil {
			res.Self = cursorQuery(q.Canonical, q.Count, ks.Snapshot, ks.After)
		}
		if more {
			res.Next = cursorQuery(q.Canonical, q.Count, ks.Snapshot, &ks.Positions[want-1])
		}
		return res, nil
	}
	res.Self = pageQuery(q.Canonical, q.Offset, q.Count)
	if q.Count > 0 && q.Offset+q.Count < total {
		res.Next = pageQuery(q.Canonical, q.Offset+q.Count, q.Count)
	}
	if q.Offset > 0 && q.Count > 0 {
		res.Previous = pageQuery(q.Canonical, max(0, q.Offset-q.Count), q.Count)
	}
	return res, nil
}

func cursorQuery(canonical url.Values, count int, snapshot time.Time, after *gateway.Position) string {
	b, _ := json.Marshal(query.PageCursor{Snapshot: snapshot.UnixMilli(), Score: after.Score, ID: after.ID})
	v := url.Values{}
	for k, vs := range canonical {
		v[k] = vs
	}
	v.Set("_count", strconv.Itoa(count))
	v.Set(query.CursorParam, base64.RawURLEncoding.EncodeToString(b))
	return v.Encode()
}

func pageQuery(canonical url.Values, offset, count int) string {
	v := url.Values{}
	for k, vs := range canonical {
		v[k] = vs
	}
	v.Set("_count", strconv.Itoa(count))
	if offset > 0 {
		v.Set("_offset", strconv.Itoa(offset))
	}
	return v.Encode()
}
