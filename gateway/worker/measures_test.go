package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/topic"
)

// recordONS4 records an ONS4 response for a Task's referral as its
// provider would.
func (e *env) recordONS4(taskID, point string, life int) {
	e.t.Helper()
	task := e.task(taskID)
	body := `{"resourceType":"QuestionnaireResponse","questionnaire":"https://signpost.health/fhir/Questionnaire/ons4","status":"completed",` +
		`"extension":[{"url":"` + gateway.MeasurePointExtension + `","valueCode":"` + point + `"}],` +
		`"basedOn":[{"reference":"` + task.Focus + `"}],"item":[` +
		`{"linkId":"life-satisfaction","answer":[{"valueInteger":` + string(rune('0'+life)) + `}]},` +
		`{"linkId":"worthwhile","answer":[{"valueInteger":5}]},{"linkId":"happiness","answer":[{"valueInteger":5}]},{"linkId":"anxiety","answer":[{"valueInteger":5}]}]}`
	caller := gateway.Caller{ClientID: "walking", Kind: gateway.CallerProvider}
	if _, err := e.svc.Measures.Record(context.Background(), caller, []byte(body), nil); err != nil {
		e.t.Fatal(err)
	}
}

// A full-resource subscription gets the scores the Task names with it.
func TestFullResourceNotificationCarriesTheScores(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var mu sync.Mutex
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mustBeR4(t, "a notification", b)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	e.startSubscriptions()
	sub := e.subscribe("practice-a", hook.URL, topic.PayloadFullResource)
	eventually(t, "the handshake", func() bool { return e.subStatus(sub) == "active" })
	task := e.refer("SUB-M", "390893007")
	e.move(task, "accepted", "")
	e.recordONS4(task, "first-contact", 3)
	e.move(task, "in-progress", "")
	e.recordONS4(task, "completion", 7)

	eventually(t, "a notification with both scores", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bodies {
			var bundle struct {
				Entry []struct {
					FullURL  string
					Resource struct {
						ResourceType string
						Code         struct{ Coding []struct{ Code string } }
						ValueInteger int
						Extension    []struct{ ValueCode string }
					}
				}
			}
			_ = json.Unmarshal(b, &bundle)
			got := map[string]int{}
			for _, en := range bundle.Entry {
				r := en.Resource
				if r.ResourceType == "Observation" && len(r.Code.Coding) > 0 && r.Code.Coding[0].Code == "ons4-life-satisfaction" &&
					strings.HasPrefix(en.FullURL, "http://signpost.test/fhir/Observation/") {
					got[r.Extension[0].ValueCode] = r.ValueInteger
				}
			}
			if got["first-contact"] == 3 && got["completion"] == 7 {
				return true
			}
		}
		return false
	})
	// What the notifications disclosed is recorded, the scores included.
	eventually(t, "the record of a notification with the scores", func() bool {
		for _, d := range e.disclosures() {
			if strings.Contains(d, "rest-hook full-resource Subscription/"+sub) && strings.Contains(d, " Observation/") {
				return true
			}
		}
		return false
	})
}
