package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/signpost-health/signpost/gateway"
)

// scopedPatientsDone is the value of the migration's marker once every
// Patient is kept under its owner.
const scopedPatientsDone = "done"

// ScopePatients moves the Patients stored before Patient ids were each
// client's own (see gateway.PatientKey) to their owners' keys, and reports
// how many it moved and how many it left where they were because their
// owner already holds a Patient of that id (made after the upgrade, before
// the move; nothing is lost, both are kept). It is idempotent and safe to
// stop at any point: each Patient moves in one script, and a run finds what
// is left; once a run finds nothing left it marks the store, and later runs
// cost one read. Serve and worker run it at start.
func (s *Store) ScopePatients(ctx context.Context) (moved, left int, err error) {
	marker := s.keys.migration("patient-scope")
	done, err := s.rdb.Get(ctx, marker).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, classify(err)
	}
	if done == scopedPatientsDone {
		return 0, 0, nil
	}
	all := s.keys.all(gateway.TypePatient)
	var cursor uint64
	for {
		members, next, err := s.rdb.ZScan(ctx, all, cursor, "", 500).Result()
		if err != nil {
			return moved, left, classify(err)
		}
		for i := 0; i < len(members); i += 2 { // member, score
			id := members[i]
			if gateway.IsPatientKey(id) {
				continue // kept under its owner already
			}
			switch outcome, err := s.scopePatient(ctx, id); {
			case err != nil:
				return moved, left, err
			case outcome == "moved":
				moved++
			case outcome == "taken":
				left++
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if left == 0 {
		if err := s.rdb.Set(ctx, marker, scopedPatientsDone, 0).Err(); err != nil {
			return moved, left, classify(err)
		}
	}
	return moved, left, nil
}

// scopePatient moves one legacy Patient, reading its owner and index keys
// first (the script checks they are still the ones read, so the keys it was
// given hold).
func (s *Store) scopePatient(ctx context.Context, id string) (string, error) {
	for attempt := 0; attempt < maxRereads; attempt++ {
		old := s.keys.resource(gateway.TypePatient, id)
		got, err := s.rdb.HMGet(ctx, old, "o", "x").Result()
		if err != nil {
			return "", classify(err)
		}
		// A field that is not there reads as nil: the Patient is gone
		// meanwhile (the script tidies the set of all), or has no terms.
		owner, _ := got[0].(string)
		x, _ := got[1].(string)
		scoped := gateway.PatientKey(owner, id)
		keys := []string{old, s.keys.resource(gateway.TypePatient, scoped),
			s.keys.all(gateway.TypePatient), s.keys.term(gateway.TypePatient, gateway.PatientIDTerm(id))}
		for _, t := range strings.Split(x, "\n") {
			if t != "" {
				keys = append(keys, t)
			}
		}
		s.raced()
		out, err := scopePatientScript.Run(ctx, s.rdb, keys, id, scoped, owner, x, len(keys)-4).Text()
		if err != nil {
			return "", classify(err)
		}
		if out != "changed" {
			return out, nil
		}
	}
	return "", fmt.Errorf("moving a legacy Patient: %w", ErrKeptChanging)
}
