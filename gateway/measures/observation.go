package measures

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// ObservationFacts are what one score's Observation says.
type ObservationFacts struct {
	ID      string
	Version int
	At      time.Time
	Point   gateway.MeasurePoint
	Score   *mappings.Score
	Value   int
	// Subject is the referral Task's for, as it is stored (the patient).
	Subject json.RawMessage
	// TaskRef, ServiceRequestRef and ResponseRef name the referral Task, the
	// referral and the response the score was read from.
	TaskRef, ServiceRequestRef, ResponseRef string
	Effective                               string
	Performer                               *gateway.Provider // nil: not named
}

// Observation is a score as a FHIR Observation: survey category, coded by
// the scores table (a verified SNOMED CT or LOINC code, else Signpost's
// own code system), the patient as subject, the referral as basedOn, the
// referral Task as focus, the response it was read from as derivedFrom, and
// the point it was taken at as an extension.
func Observation(f ObservationFacts) []byte {
	o := observation{
		ResourceType: gateway.TypeObservation, ID: f.ID,
		Meta:         meta{VersionID: strconv.Itoa(f.Version), LastUpdated: gateway.Instant(f.At)},
		Extension:    []codeExtension{{URL: gateway.MeasurePointExtension, ValueCode: string(f.Point)}},
		BasedOn:      []ref{{Reference: f.ServiceRequestRef}},
		Status:       "final",
		Category:     []concept{{Coding: []coding{{System: gateway.ObservationCategorySystem, Code: gateway.ObservationCategorySurvey, Display: "Survey"}}}},
		Code:         concept{Coding: []coding{{System: f.Score.Code.System, Code: f.Score.Code.Code, Display: f.Score.Code.Display}}, Text: f.Score.Code.Display},
		Subject:      f.Subject,
		Focus:        []ref{{Reference: f.TaskRef}},
		Effective:    f.Effective,
		Issued:       gateway.Instant(f.At),
		ValueInteger: f.Value,
		DerivedFrom:  []ref{{Reference: f.ResponseRef}},
	}
	if f.Version > 1 {
		o.Status = "amended" // a correction of a score recorded before
	}
	o.ReferenceRange = []referenceRange{{Low: quantity{Value: f.Score.Min}, High: quantity{Value: f.Score.Max},
		Text: "from " + strconv.Itoa(f.Score.Min) + " to " + strconv.Itoa(f.Score.Max) + "; " + string(f.Score.Better) + " is better"}}
	if f.Performer != nil {
		o.Performer = []gateway.ProviderReference{f.Performer.Reference()}
	}
	body, err := json.Marshal(o)
	if err != nil {
		panic(err) // strings, numbers and stored JSON only
	}
	return body
}

// The Observation's parts, as structs so that its bytes are always the same.
type observation struct {
	ResourceType   string                      `json:"resourceType"`
	ID             string                      `json:"id"`
	Meta           meta                        `json:"meta"`
	Extension      []codeExtension             `json:"extension"`
	BasedOn        []ref                       `json:"basedOn"`
	Status         string                      `json:"status"`
	Category       []concept                   `json:"category"`
	Code           concept                     `json:"code"`
	Subject        json.RawMessage             `json:"subject,omitempty"`
	Focus          []ref                       `json:"focus"`
	Effective      string                      `json:"effectiveDateTime"`
	Issued         string                      `json:"issued"`
	Performer      []gateway.ProviderReference `json:"performer,omitempty"`
	ValueInteger   int                         `json:"valueInteger"`
	ReferenceRange []referenceRange            `json:"referenceRange"`
	DerivedFrom    []ref                       `json:"derivedFrom"`
}

type meta struct {
	VersionID   string `json:"versionId"`
	LastUpdated string `json:"lastUpdated"`
}

type codeExtension struct {
	URL       string `json:"url"`
	ValueCode string `json:"valueCode"`
}

type ref struct {
	Reference string `json:"reference"`
}

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text,omitempty"`
}

type quantity struct {
	Value int `json:"value"`
}

type referenceRange struct {
	Low  quantity `json:"low"`
	High quantity `json:"high"`
	Text string   `json:"text"`
}
