package httpapi_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

const hookSubscription = `{"resourceType":"Subscription","status":"active","reason":"closed loop","criteria":"http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task",` +
	`"channel":{"type":"rest-hook","endpoint":"https://gp.example/notify","payload":"application/fhir+json","header":["Authorization: Bearer abc",HEADER]}}`

// Subscription.channel.header values are sent as HTTP headers with every
// notification: one with a control character, or not "Name: value" with a
// token name, is refused and named.
func TestSubscriptionHeadersAreHTTPHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	for name, header := range map[string]string{
		"NUL in the value":     `"X-Key: a\u0000b"`,
		"CR LF in the value":   `"X-Key: a\r\nX-Other: b"`,
		"LF alone":             `"X-Key: a\nb"`,
		"another C0 character": `"X-Key: a\u0007b"`,
		"DEL":                  `"X-Key: a\u007fb"`,
		"no colon":             `"X-Key a"`,
		"space in the name":    `"X Key: a"`,
		"empty name":           `": a"`,
		"NUL in the name":      `"X-K\u0000ey: a"`,
	} {
		r := e.post("/Subscription", []byte(strings.Replace(hookSubscription, "HEADER", header, 1)), a...)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"Subscription.channel.header[1]"`) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if n := total(t, e.get("/Subscription", a...)); n != 0 {
		t.Errorf("%d subscriptions stored from refused requests", n)
	}
	e.post("/Subscription", []byte(strings.Replace(hookSubscription, "HEADER", `"X-Key: a\tb"`, 1)), a...).must(t, http.StatusCreated)
}

// A GP system has at most its cap of subscriptions not ended, however many
// it asks for at once; ending one makes room for another.
func TestSubscriptionsPerClientAreCapped(t *testing.T) {
	t.Parallel()
	testSubscriptionsPerClientAreCapped(t)
}

// A store that spreads referrals over partitions places all of a client's
// subscriptions in one partition, chosen by the client, so that its cap is
// still checked in the one atomic step that stores a new one.
func TestSpreadSubscriptionsPerClientAreCapped(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		testSubscriptionsPerClientAreCapped(t, on, spread)
	})
}

func testSubscriptionsPerClientAreCapped(t *testing.T, opts ...func(*options)) {
	const limit = 3
	e := setup(t, append(opts, func(o *options) { o.maxSubs = limit })...)
	a, b := as("practice-a"), as("practice-b")
	body := []byte(strings.Replace(hookSubscription, ",HEADER", "", 1))

	var wg sync.WaitGroup
	statuses := make(chan int, 12)
	for range 12 {
		wg.Go(func() { statuses <- e.post("/Subscription", body, a...).status })
	}
	wg.Wait()
	close(statuses)
	created := 0
	for s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusUnprocessableEntity, http.StatusConflict:
		default:
			t.Errorf("status %d", s)
		}
	}
	if created != limit {
		t.Fatalf("%d subscriptions created by 12 concurrent requests, want the cap, %d", created, limit)
	}
	if n := total(t, e.get("/Subscription", a...)); n != limit {
		t.Fatalf("%d subscriptions held, want %d", n, limit)
	}
	over := e.post("/Subscription", body, a...)
	over.mustName(t, http.StatusUnprocessableEntity, "Subscription")
	if !strings.Contains(string(over.body), "at most 3 subscriptions") {
		t.Errorf("the refusal does not say the limit: %s", over.body)
	}
	// Another client has its own cap.
	e.post("/Subscription", body, b...).must(t, http.StatusCreated)
	// Ending one makes room.
	id := bundleEntries(t, e.get("/Subscription", a...), "match")[0]["id"].(string)
	e.do(http.MethodDelete, "/Subscription/"+id, nil, a...).must(t, http.StatusNoContent)
	e.post("/Subscription", body, a...).must(t, http.StatusCreated)
	// An ended one is not started again over the cap.
	withID := strings.Replace(string(body), `{"resourceType":"Subscription",`, `{"resourceType":"Subscription","id":"`+id+`",`, 1)
	e.put("/Subscription/"+id, []byte(withID), a...).mustName(t, http.StatusUnprocessableEntity, "Subscription")
}

// A client's subscriptions made before the store spread stay where they
// are (legacy): once it spreads, its new ones all go to one partition and
// are counted with the old ones against the cap, however many are asked
// for at once; each is read by its id.
func TestSubscriptionsMadeBeforeSpreadingCountTowardsTheCap(t *testing.T) {
	t.Parallel()
	onEachRedis(t, func(t *testing.T, on func(*options)) {
		const limit = 3
		e := setup(t, on, unspread, func(o *options) { o.maxSubs = limit })
		a := as("practice-a")
		body := []byte(strings.Replace(hookSubscription, ",HEADER", "", 1))
		var ids []string
		for range 2 {
			ids = append(ids, e.post("/Subscription", body, a...).must(t, http.StatusCreated).json(t)["id"].(string))
		}
		e.store.SpreadReferrals() // as a deployment that starts spreading

		var wg sync.WaitGroup
		created := make(chan string, 16)
		for range 16 {
			wg.Go(func() {
				if r := e.post("/Subscription", body, a...); r.status == http.StatusCreated {
					created <- r.json(t)["id"].(string)
				}
			})
		}
		wg.Wait()
		close(created)
		var made []string
		for id := range created {
			made = append(made, id)
		}
		if len(made) != 1 {
			t.Fatalf("%d subscriptions created by 16 concurrent requests beside 2 made before spreading, want 1 (the cap is %d)", len(made), limit)
		}
		if !partitionedID.MatchString(made[0]) {
			t.Errorf("a spreading store's subscription has id %q", made[0])
		}
		for _, id := range append(ids, made...) {
			e.get("/Subscription/"+id, a...).must(t, http.StatusOK)
		}
		if n := total(t, e.get("/Subscription", a...)); n != limit {
			t.Errorf("%d subscriptions held, want %d", n, limit)
		}
		// The new ones share one partition, the client's.
		next := e.post("/Subscription", body, as("practice-b")...).must(t, http.StatusCreated).json(t)["id"].(string)
		again := e.post("/Subscription", body, as("practice-b")...).must(t, http.StatusCreated).json(t)["id"].(string)
		if next[:4] != again[:4] {
			t.Errorf("one client's subscriptions in two partitions: %s and %s", next, again)
		}
	})
}
