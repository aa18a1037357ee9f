package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signpost-health/signpost/gateway"
)

// An export job is updated only while it is held, and its sweep time is
// what the last save said.
func TestExportJobs(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	if held, err := s.UpdateJob(ctx, "gone", []byte(`{}`), at); err != nil || held {
		t.Fatalf("update of a job never saved: %v %v", held, err)
	}
	if _, err := s.LoadJob(ctx, "gone"); !errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("the update brought a job into being: %v", err)
	}
	if err := s.SaveJob(ctx, "a", []byte(`1`), at); err != nil {
		t.Fatal(err)
	}
	if held, err := s.UpdateJob(ctx, "a", []byte(`2`), at.Add(time.Hour)); err != nil || !held {
		t.Fatalf("update: %v %v", held, err)
	}
	if b, err := s.LoadJob(ctx, "a"); err != nil || string(b) != "2" {
		t.Fatalf("load: %s %v", b, err)
	}
	if ids, err := s.ExpiredJobs(ctx, at.Add(time.Minute), 10); err != nil || len(ids) != 0 {
		t.Fatalf("expired before its time: %v %v", ids, err)
	}
	if ids, err := s.ExpiredJobs(ctx, at.Add(2*time.Hour), 10); err != nil || len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("expired: %v %v", ids, err)
	}
	if err := s.DeleteJob(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.ExpiredJobs(ctx, at.Add(2*time.Hour), 10); len(ids) != 0 {
		t.Errorf("a deleted job is still listed: %v", ids)
	}
}
