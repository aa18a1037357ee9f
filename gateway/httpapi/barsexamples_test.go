package httpapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/signpost-health/signpost/gateway"
)

// Every servicerequest-request NHS England has published as an example
// (fhir/testdata/conformance/MANIFEST.md), sent unmodified.
var barsPublished = []struct {
	file string
	// refused: an example that breaks R4 or BaRS is answered with status
	// and exactly these issues, each at the element it breaks.
	refused []issueAt
	status  int
}{
	// The current validation request (definition ...-request-validation, 19 entries).
	{file: "servicerequest-request-ValidationRequest.json"},
	// A referral with no MessageHeader.definition (26 entries, among them
	// MedicationStatement, AllergyIntolerance and QuestionnaireResponses) whose
	// destination endpoint separates system and value with ":".
	{file: "servicerequest-request-POST-body.json"},
	// The validation request as first published: it breaks R4. Its
	// MessageHeader.destination has no endpoint (R4: 1..1), and two
	// QuestionnaireResponses carry an extension whose url is a placeholder with
	// a space in it ("...questionnaireresponse-reason <TBC>"), which no R4 uri
	// may have. (Its event is coded in the pre-BaRS system
	// message-event-servicerequest too; the answer does not say so, as a
	// message that is not valid R4 is refused before its BaRS rules are read.)
	{file: "servicerequest-request-ValidationRequest-2022-01.json", status: http.StatusBadRequest, refused: []issueAt{
		{barsHeader + ".destination[0].endpoint", "endpoint is required"},
		{"Bundle.entry[14].resource.extension[0].url", "not a valid uri"},
		{"Bundle.entry[20].resource.extension[0].url", "not a valid uri"},
	}},
	// Published among the responses though it is a request: it codes its
	// event in https://fhir.nhs.uk/CodeSystem/message-event-servicerequest, a
	// system from before BaRS 1.x. The BaRS MessageDefinitions (and the current
	// examples) code servicerequest-request in
	// https://fhir.nhs.uk/CodeSystem/message-events-bars; a message coded
	// otherwise is not a BaRS message, so Signpost refuses it rather than guess.
	{file: "servicerequest-request-ValidationRequest-HTTP-Response.json", status: http.StatusBadRequest, refused: []issueAt{
		{barsHeader + ".eventCoding.system", "message-events-bars"},
	}},
}

type issueAt struct{ expr, says string }

// withServiceOf makes the walking provider serve the destination a message
// names first.
func withServiceOf(endpoint string) func(*options) {
	return func(o *options) {
		ps := make([]gateway.Provider, len(testProviders))
		copy(ps, testProviders)
		ps[0].Services = []string{endpoint}
		o.providers = ps
	}
}

func TestBaRSPublishedExamples(t *testing.T) {
	for _, c := range barsPublished {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			message, err := os.ReadFile(filepath.Join(filepath.Dir(barsExamplePath), c.file))
			if err != nil {
				t.Fatal(err)
			}
			var msg struct {
				ID    string `json:"id"`
				Entry []struct {
					Resource struct {
						Destination []struct {
							Endpoint string `json:"endpoint"`
						} `json:"destination"`
					} `json:"resource"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(message, &msg); err != nil {
				t.Fatal(err)
			}
			endpoint := ""
			if d := msg.Entry[0].Resource.Destination; len(d) > 0 {
				endpoint = d[0].Endpoint
			}
			e := setup(t, withServiceOf(endpoint), withWarnNHS)
			if c.refused != nil {
				r := e.post("/$process-message", message, as("practice-a")...).must(t, c.status)
				issues := readOutcome(t, r)
				if len(issues) != len(c.refused) {
					t.Errorf("want %d issues; got %s", len(c.refused), r.body)
				}
				for i := range min(len(issues), len(c.refused)) {
					want, is := c.refused[i], issues[i]
					if len(is.Expression) != 1 || is.Expression[0] != want.expr || !strings.Contains(is.Diagnostics, want.says) {
						t.Errorf("issue %d: want one at %s saying %q; got %s", i, want.expr, want.says, r.body)
					}
				}
				if !strings.Contains(string(r.body), `"system":"https://fhir.nhs.uk/CodeSystem/http-error-codes","code":"REC_BAD_REQUEST"`) {
					t.Errorf("no BaRS error code REC_BAD_REQUEST: %s", r.body)
				}
				if n := e.countServiceRequests(t); n != 0 {
					t.Errorf("%d ServiceRequests stored after a refused message", n)
				}
				return
			}

			r := e.post("/$process-message", message, as("practice-a")...).must(t, http.StatusOK)
			answer, _, task := readBaRSAnswer(t, r)
			if !strings.Contains(string(answer.Entry[0].Resource), `"identifier":"`+msg.ID+`"`) {
				t.Errorf("the answer does not name the message (Bundle.id %s): %s", msg.ID, answer.Entry[0].Resource)
			}
			if owner, _ := task["owner"].(map[string]any); owner["reference"] != "Organization/walking" {
				t.Errorf("Task.owner = %v, want Organization/walking (serves %s)", task["owner"], endpoint)
			}
			sent, stored := auditedEntries(t, e, message)
			for _, entry := range sent {
				ref := stored[entry.FullURL]
				got := e.get("/"+ref, as("practice-a")...).must(t, http.StatusOK)
				if !reflect.DeepEqual(asSent(t, got.body, stored), asSent(t, entry.Resource, nil)) {
					t.Errorf("%s is not stored as received:\nsent   %s\nstored %s", entry.FullURL, entry.Resource, got.body)
				}
				// Routed: the provider serving the destination reads it; no other does.
				e.get("/"+ref, as("walking")...).must(t, http.StatusOK)
				e.get("/"+ref, as("advice")...).must(t, http.StatusNotFound)
			}
		})
	}
}
