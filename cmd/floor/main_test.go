package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/signpost-health/signpost/cmd/load/benchkit"
	"github.com/signpost-health/signpost/gateway/redisstore/redistest"
)

// S+V (-mode validated) stores what S stores for a valid referral, and for
// a body the FHIR R4 definitions refuse answers 400 and writes nothing, as
// Signpost does: otherwise it would not be the check Signpost must make.
func TestValidatedFloorRefusesWhatTheDefinitionsRefuse(t *testing.T) {
	r := redistest.Start(t)
	rdb := r.Client()
	ctx := context.Background()
	handler, err := handlerFor("validated")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler(rdb, 1<<20))
	t.Cleanup(srv.Close)
	post := func(body []byte) int {
		t.Helper()
		res, err := http.Post(srv.URL+"/fhir/ServiceRequest", "application/fhir+json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	keys := func() int64 {
		t.Helper()
		n, err := rdb.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	bodies := benchkit.NewBodies("floor")
	if code := post(bodies.Append(nil, 1)); code != http.StatusCreated {
		t.Fatalf("the load generator's referral: %d, want 201", code)
	}
	stored := keys()
	if stored == 0 {
		t.Fatal("a valid referral wrote nothing")
	}
	for name, body := range map[string][]byte{
		// An element R4's ServiceRequest does not have.
		"unknown element": bytes.Replace(bodies.Append(nil, 2), []byte(`"status":"active"`), []byte(`"status":"active","colour":"red"`), 1),
		// A dateTime that is not one (the samply model takes any string).
		"bad dateTime": bytes.Replace(bodies.Append(nil, 3), []byte(`"authoredOn":"2026-11-20T09:30:00Z"`), []byte(`"authoredOn":"yesterday"`), 1),
		// The narrative's div in no namespace.
		"bad narrative": bytes.Replace(bodies.Append(nil, 4), []byte(` xmlns=\"http://www.w3.org/1999/xhtml\"`), nil, 1),
	} {
		if code := post(body); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
	if got := keys(); got != stored {
		t.Errorf("%d keys after the refused bodies, %d before: a refused body wrote", got, stored)
	}
}

func TestUnknownModeIsRefused(t *testing.T) {
	if _, err := handlerFor("fastest"); err == nil {
		t.Error("-mode fastest accepted")
	}
}
