package measures

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/mappings"
)

// What a recorded QuestionnaireResponse may hold. A recording is kept for
// years, travels to evaluators in the de-identified export and is read by
// the GP side, so it holds only what Signpost checks and needs: which
// measure, its status, when it was answered, the referral, the patient,
// the provider, the point, and the answers. Anything else (a client number
// in identifier, who answered in source, an extension of the provider's
// own) is refused by name rather than dropped, so that the sender learns
// it was not kept.
var (
	keptMembers     = []string{"resourceType", "id", "meta", "questionnaire", "status", "authored", "basedOn", "subject", "author", "extension", "item"}
	keptMetaMembers = []string{"versionId", "lastUpdated"}         // replaced by Signpost's own
	keptItemMembers = []string{"linkId", "text", "answer", "item"} // item: nested, refused by score
	keptValues      = []string{"valueInteger", "valueCoding", "item"}
	keptCoding      = []string{"system", "code", "display"}
)

const keptList = "questionnaire, status, authored, basedOn, subject, author, the measure-point extension, and each item's linkId and answer"

// checkKept refuses every element of a recording that is not kept, each
// at its place. Which items and answers the Questionnaire takes is
// score's to say; the item text and an option's display, when sent, must
// be the Questionnaire's own (they are not the client's free text).
func checkKept(body []byte, q *mappings.Questionnaire, p *gateway.Problems) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return // the parser took it: not reached
	}
	for _, name := range sortedKeys(top) {
		if !slices.Contains(keptMembers, name) {
			p.Add(fhir.IssueNotSupported, qr+"."+name, "%s is not kept with a recorded measure, which holds %s; leave it out", name, keptList)
		}
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(top["meta"], &meta) == nil {
		for _, name := range sortedKeys(meta) {
			if !slices.Contains(keptMetaMembers, name) {
				p.Add(fhir.IssueNotSupported, qr+".meta."+name, "meta.%s is not kept with a recorded measure; Signpost sets meta", name)
			}
		}
	}
	var exts []map[string]json.RawMessage
	_ = json.Unmarshal(top["extension"], &exts)
	points := 0
	for i, e := range exts {
		var url string
		_ = json.Unmarshal(e["url"], &url)
		_, coded := e["valueCode"]
		switch {
		case url != gateway.MeasurePointExtension:
			p.Add(fhir.IssueNotSupported, fmt.Sprintf("%s.extension[%d]", qr, i), "the only extension kept with a recorded measure is %s (valueCode); leave others out", gateway.MeasurePointExtension)
		case len(e) != 2 || !coded:
			p.Add(fhir.IssueNotSupported, fmt.Sprintf("%s.extension[%d]", qr, i), "the measure-point extension holds url and valueCode only")
		default:
			if points++; points == 2 {
				p.Add(fhir.IssueInvalid, fmt.Sprintf("%s.extension[%d]", qr, i), "a response is recorded at one measure point: one measure-point extension")
			}
		}
	}
	var basedOn []map[string]json.RawMessage
	_ = json.Unmarshal(top["basedOn"], &basedOn)
	if len(basedOn) > 1 {
		p.Add(fhir.IssueInvalid, qr+".basedOn", "basedOn names the one referral the measure is for (ServiceRequest/{id}); %d references were sent", len(basedOn))
	}
	for i, ref := range basedOn {
		if _, ok := ref["reference"]; !ok || len(ref) != 1 {
			p.Add(fhir.IssueNotSupported, fmt.Sprintf("%s.basedOn[%d]", qr, i), "basedOn holds reference only: ServiceRequest/{id}")
		}
	}
	var items []map[string]json.RawMessage
	_ = json.Unmarshal(top["item"], &items)
	for i, it := range items {
		at := fmt.Sprintf("%s.item[%d]", qr, i)
		var linkID string
		_ = json.Unmarshal(it["linkId"], &linkID)
		known, _ := q.Item(linkID)
		for _, name := range sortedKeys(it) {
			if !slices.Contains(keptItemMembers, name) {
				p.Add(fhir.IssueNotSupported, at+"."+name, "an item of a recorded measure holds linkId and answer only; leave %s out", name)
			}
		}
		if raw, ok := it["text"]; ok && known != nil {
			var text string
			if json.Unmarshal(raw, &text) != nil || text != known.Text {
				p.Add(fhir.IssueValue, at+".text", "text, when sent, is the Questionnaire's text of the item as it stands; leave it out or send it unchanged")
			}
		}
		var answers []map[string]json.RawMessage
		_ = json.Unmarshal(it["answer"], &answers)
		for j, ans := range answers {
			for _, name := range sortedKeys(ans) {
				if !slices.Contains(keptValues, name) && !strings.HasPrefix(name, "value") {
					p.Add(fhir.IssueNotSupported, fmt.Sprintf("%s.answer[%d].%s", at, j, name), "an answer of a recorded measure holds its value only; leave %s out", name)
				}
			}
			var coding map[string]json.RawMessage
			if json.Unmarshal(ans["valueCoding"], &coding) != nil {
				continue
			}
			for _, name := range sortedKeys(coding) {
				if !slices.Contains(keptCoding, name) {
					p.Add(fhir.IssueNotSupported, fmt.Sprintf("%s.answer[%d].valueCoding.%s", at, j, name), "an answer's valueCoding holds system, code and display only")
				}
			}
			if raw, ok := coding["display"]; ok && known != nil {
				var c struct{ System, Code, Display string }
				_ = json.Unmarshal(ans["valueCoding"], &c)
				if opt, ok := known.Option(c.System, c.Code); ok {
					var display string
					if json.Unmarshal(raw, &display) != nil || display != opt.Display {
						p.Add(fhir.IssueValue, fmt.Sprintf("%s.answer[%d].valueCoding.display", at, j), "display, when sent, is the option's display in the Questionnaire; leave it out or send it unchanged")
					}
				}
			}
		}
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
