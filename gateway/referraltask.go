package gateway

import (
	"encoding/json"
	"time"
)

// NewReferralTask is the first version of the referral Task Signpost makes
// for a referral it routed (Gravity's Task for referral management): owned
// by the provider, for the referral's subject, requested, with the
// category it was routed by as its input.
func NewReferralTask(id, serviceRequestID string, subject json.RawMessage, requester any, priority string, rt *Routing, now time.Time) []byte {
	t := referralTask{
		ResourceType: TypeTask, ID: id,
		Meta:   taskMeta{VersionID: "1", LastUpdated: Instant(now), Profile: []string{TaskProfile}},
		Status: TaskRequested, Intent: "order", Code: fulfillCode,
		Focus:        reference{TypeServiceRequest + "/" + serviceRequestID},
		For:          subject,
		AuthoredOn:   Instant(now),
		LastModified: Instant(now),
		Requester:    requester,
		Owner:        rt.Provider.Reference(),
		Input:        make([]categoryInput, 1),
		Priority:     priority,
	}
	t.Input[0].Type.Text = CategoryInputText
	t.Input[0].ValueCoding.Code, t.Input[0].ValueCoding.System = rt.Category, CategorySystem
	body, err := json.Marshal(t)
	if err != nil {
		panic(err) // only strings and raw JSON already validated
	}
	return body
}

// referralTask is the Task Signpost writes for a referral. It is built from
// a struct because Signpost authors it; clients' resources never are.
type referralTask struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	Meta         taskMeta          `json:"meta"`
	Status       TaskStatus        `json:"status"`
	Intent       string            `json:"intent"`
	Priority     string            `json:"priority,omitempty"`
	Code         json.RawMessage   `json:"code"`
	Focus        reference         `json:"focus"`
	For          json.RawMessage   `json:"for"`
	AuthoredOn   string            `json:"authoredOn"`
	LastModified string            `json:"lastModified"`
	Requester    any               `json:"requester"`
	Owner        ProviderReference `json:"owner"`
	Input        []categoryInput   `json:"input"`
}

type taskMeta struct {
	VersionID   string   `json:"versionId"`
	LastUpdated string   `json:"lastUpdated"`
	Profile     []string `json:"profile"`
}

// The parts are structs, not maps, because encoding/json sorts a map's keys
// on every call (a visible cost in the intake profile). Their fields are in
// the order the maps' keys were, so the Task's bytes are the same.
type categoryInput struct {
	Type struct {
		Text string `json:"text"`
	} `json:"type"`
	ValueCoding struct {
		Code   string `json:"code"`
		System string `json:"system"`
	} `json:"valueCoding"`
}

type reference struct {
	Reference string `json:"reference"`
}

var fulfillCode = json.RawMessage(`{"coding":[{"system":"` + TaskCodeSystem + `","code":"fulfill","display":"Fulfill the focal request"}]}`)

// TaskCategory is the social prescribing category a referral Task was
// routed by (its input coded in CategorySystem), or "".
func TaskCategory(task []byte) string {
	var t struct {
		Input []struct {
			ValueCoding struct{ System, Code string } `json:"valueCoding"`
		} `json:"input"`
	}
	_ = json.Unmarshal(task, &t)
	for _, in := range t.Input {
		if in.ValueCoding.System == CategorySystem {
			return in.ValueCoding.Code
		}
	}
	return ""
}
