package httpapi_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// A heartbeat period under the floor (a minute) is refused at the door,
// naming the extension asking it: each GP system could otherwise keep
// Signpost POSTing to a URL of its choosing every second from each of its
// subscriptions. Every problem of what it asks is named at once. The floor
// itself is accepted.
func TestSubscriptionHeartbeatPeriodHasAFloor(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := as("practice-a")
	every := func(seconds int) string {
		return strings.Replace(strings.Replace(hookSubscription, ",HEADER", "", 1), `"payload":"application/fhir+json"`,
			`"payload":"application/fhir+json","extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period","valueUnsignedInt":`+strconv.Itoa(seconds)+`}]`, 1)
	}
	for _, seconds := range []int{1, 59} {
		r := e.post("/Subscription", []byte(every(seconds)), a...)
		r.mustName(t, http.StatusUnprocessableEntity, "Subscription.channel.extension[0]")
		if !strings.Contains(string(r.body), "60 or more") {
			t.Errorf("the refusal of %d seconds does not say what is expected: %s", seconds, r.body)
		}
	}
	both := strings.Replace(every(1), "https://gp.example/notify", "http://127.0.0.1:9/notify", 1)
	e.post("/Subscription", []byte(both), a...).mustName(t, http.StatusUnprocessableEntity, "Subscription.channel.extension[0]", "Subscription.channel.endpoint")
	if n := total(t, e.get("/Subscription", a...)); n != 0 {
		t.Errorf("%d subscriptions stored from refused requests", n)
	}
	e.post("/Subscription", []byte(every(60)), a...).must(t, http.StatusCreated)
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

// internalService stands for a service on an address outbound_allow admits
// for Signpost's configured destinations (an on-premises GP FHIR server, a
// provider's webhook, an admin API on the same network): it records what
// reached it, and refuses it.
type internalService struct {
	srv   *httptest.Server
	mu    sync.Mutex
	heard []http.Header
}

func newInternalService(t *testing.T) *internalService {
	s := &internalService{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.heard = append(s.heard, r.Header.Clone())
		s.mu.Unlock()
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *internalService) calls() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.heard...)
}

// A Subscription's endpoint, and the headers sent to it, are the GP
// system's choice: it does not gain outbound_allow, the operator's
// allowance for the endpoints it configured (here loopback, as for the
// tests' deliveries). Only an origin the operator registered for that GP
// system (clients[].subscription_origins) may be on a private network. One
// that is not public is refused when the Subscription is stored (422
// naming channel.endpoint), and again at each send (a registration
// withdrawn since, or a name resolving elsewhere). Subscription.error does
// not tell an endpoint that answered (403) from a closed port, nor either
// from an address refused; the operator's log keeps the detail.
func TestSubscriptionEndpointReachesNoPrivateAddressUnlessRegistered(t *testing.T) {
	t.Parallel()
	e := setup(t)
	internal := newInternalService(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()
	_, internalPort, _ := net.SplitHostPort(internal.srv.Listener.Addr().String())
	b := as("practice-b")
	subscribe := func(endpoint string) *response {
		sub := `{"resourceType":"Subscription","status":"requested","reason":"probe","criteria":"http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task",` +
			`"channel":{"type":"rest-hook","endpoint":"` + endpoint + `","payload":"application/fhir+json","header":["X-Admin-Override: 1","Authorization: Bearer chosen-by-practice-b"]}}`
		return e.post("/Subscription", []byte(sub), b...)
	}
	errorOf := func(id string) string {
		got, _ := e.get("/Subscription/"+id, b...).json(t)["error"].(string)
		return got
	}
	inError := func(id string) func() bool {
		return func() bool { return e.get("/Subscription/"+id, b...).json(t)["status"] == "error" }
	}

	// At the door. Another GP system's registration is not practice-b's.
	e.origins.register("practice-a", internal.srv.URL, true)
	for _, endpoint := range []string{internal.srv.URL + "/admin/reindex", closedURL, "http://localhost:" + internalPort + "/",
		"http://[::1]:" + internalPort + "/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7:8080/"} {
		r := subscribe(endpoint)
		r.mustName(t, http.StatusUnprocessableEntity, "Subscription.channel.endpoint")
		if !strings.Contains(string(r.body), "public address") {
			t.Errorf("the refusal of %s does not say what is expected: %s", endpoint, r.body)
		}
	}
	if n := total(t, e.get("/Subscription", b...)); n != 0 {
		t.Errorf("%d subscriptions stored from refused requests", n)
	}

	// At each send: registered when it was stored, withdrawn before the
	// handshake.
	e.origins.register("practice-b", internal.srv.URL, true)
	withdrawn := subscribe(internal.srv.URL+"/admin/reindex").must(t, http.StatusCreated).json(t)["id"].(string)
	e.origins.register("practice-b", internal.srv.URL, false)
	e.startSubscriptionWorker()
	eventually(t, "the handshake of the withdrawn origin", inError(withdrawn))
	if heard := internal.calls(); len(heard) > 0 {
		t.Errorf("a Subscription whose origin is no longer registered made Signpost POST to an internal address %d times, with its headers (X-Admin-Override %q, Authorization %q)",
			len(heard), heard[0].Get("X-Admin-Override"), heard[0].Get("Authorization"))
	}

	// Registered for practice-b: the service is reached (with the
	// subscriber's headers, its own choice for its own server) and refuses
	// the handshake; a closed port cannot either. Both read the same.
	e.origins.register("practice-b", internal.srv.URL, true)
	e.origins.register("practice-b", closedURL, true)
	open := subscribe(internal.srv.URL+"/notify").must(t, http.StatusCreated).json(t)["id"].(string)
	shut := subscribe(closedURL).must(t, http.StatusCreated).json(t)["id"].(string)
	eventually(t, "both handshakes", func() bool { return inError(open)() && inError(shut)() })
	if n := len(internal.calls()); n != 1 {
		t.Errorf("the registered origin was sent %d handshakes, want 1", n)
	}
	opened, refused, notAllowed := errorOf(open), errorOf(shut), errorOf(withdrawn)
	if opened == "" || opened != refused || opened != notAllowed {
		t.Errorf("Subscription.error tells endpoints apart: answered 403 %q, closed port %q, address not allowed %q", opened, refused, notAllowed)
	}
	logs := e.logs.String()
	for _, detail := range []string{"403 Forbidden", "connection refused", "not allowed"} {
		if !strings.Contains(logs, detail) {
			t.Errorf("the log does not keep %q for the operator", detail)
		}
	}
	if strings.Contains(logs, "/admin/reindex") || strings.Contains(logs, "chosen-by-practice-b") {
		t.Errorf("the log holds a subscriber's URL or headers")
	}
}
