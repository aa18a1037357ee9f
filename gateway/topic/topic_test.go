package topic_test

import (
	"strconv"
	"testing"

	"github.com/signpost-health/signpost/gateway/topic"
)

// A subscription stored before the heartbeat floor, asking for one every
// second, is sent them at the floor; asked anew, the same period is
// refused.
func TestHeartbeatPeriodIsAtLeastTheFloor(t *testing.T) {
	t.Parallel()
	for seconds, want := range map[int]int{1: 60, 59: 60, 60: 60, 3600: 3600} {
		body := `{"resourceType":"Subscription","status":"active","criteria":"` + topic.TaskTopic + `","channel":{"type":"rest-hook","endpoint":"https://gp.example/hook",` +
			`"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period","valueUnsignedInt":` + strconv.Itoa(seconds) + `}]}}`
		v, err := topic.ReadSubscription([]byte(body), "s1")
		if err != nil {
			t.Fatal(err)
		}
		if got := int(v.Heartbeat.Seconds()); got != want {
			t.Errorf("a period of %d seconds is sent every %d seconds, want %d", seconds, got, want)
		}
		if refused := v.CheckAsked(false) != nil; refused != (seconds < 60) {
			t.Errorf("a period of %d seconds asked anew: refused %v", seconds, refused)
		}
	}
}
