package search

import (
	"context"
	"errors"
	"strconv"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
)

// Read returns the current version of a resource.
func (s *Service) Read(ctx context.Context, caller gateway.Caller, typ, id string) (*gateway.Resource, error) {
	if err := gateway.CheckID(id); err != nil {
		return nil, err
	}
	r, err := s.ReadVisible(ctx, caller, typ, id)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, gateway.NotFound(typ, id)
	}
	return r, err
}

// ReadVersion returns one version of a resource.
func (s *Service) ReadVersion(ctx context.Context, caller gateway.Caller, typ, id, vid string) (*gateway.Resource, error) {
	if err := gateway.CheckID(id); err != nil {
		return nil, err
	}
	v, err := strconv.Atoi(vid)
	if err != nil || v < 1 || strconv.Itoa(v) != vid {
		return nil, gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, "", "version ids are positive whole numbers")
	}
	key := id
	if typ == gateway.TypePatient {
		key, err = s.PatientKeyFor(ctx, caller, id)
	}
	var r *gateway.Resource
	if err == nil {
		r, err = s.Store.ReadVersion(ctx, typ, key, v)
	}
	if err == nil {
		var ok bool
		if ok, err = s.Visible(ctx, caller, r); err == nil && !ok {
			err = gateway.ErrNotFound
		}
	}
	if err == nil && caller.Kind == gateway.CallerProvider {
		// Which versions of what it may see are the provider's
		// (gateway.VersionSeen) depends on the current one.
		var cur *gateway.Resource
		if cur, err = s.Store.Read(ctx, typ, key); err == nil && !gateway.VersionSeen(caller, r, cur.Version) {
			err = gateway.ErrNotFound
		}
	}
	if err == nil {
		if r = s.SharedWith(caller, r); r == nil {
			err = gateway.ErrNotFound
		}
	}
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, gateway.NewError(gateway.KindNotFound, fhir.IssueNotFound, "", "no such version of a %s is known to this client", typ)
	}
	return r, err
}
