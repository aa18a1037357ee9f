package measures

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/fhir/structure"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/queue"
	"github.com/signpost-health/signpost/mappings"
)

// A measure is recorded for a referral the provider is working: accepted,
// in progress, on hold, or completed (the last answers are often taken at
// the closing session, and typed in after the referral is closed). Not for
// one still requested, nor one that ended without the person (declined,
// failed, cancelled, entered in error).
var recordable = []gateway.TaskStatus{gateway.TaskAccepted, gateway.TaskInProgress, gateway.TaskOnHold, gateway.TaskCompleted}

// Record stores a provider's QuestionnaireResponse for a referral (POST
// QuestionnaireResponse): checked against its Questionnaire, scored into
// coded Observations and linked to the referral Task, with the Task's new
// version, its Provenance, the GP side's notifications and audit's record
// in one commit. The same response sent again is answered with the one
// stored (200); another response for the same measure and point is a
// conflict (409): it is corrected with Correct.
func (s *Service) Record(ctx context.Context, caller gateway.Caller, body []byte, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	return s.apply(ctx, caller, "", body, "", audit)
}

// Correct stores a new version of a recorded response (PUT
// QuestionnaireResponse/{id}, If-Match the version corrected), and new
// versions of the Observations scored from it. The measure, the point and
// the referral stay as they were. If-Match is required (428 without): a
// correction replaces answers someone recorded, so it says which it read.
// A correction with the answers and time as stored changes nothing, and is
// answered with the response stored.
func (s *Service) Correct(ctx context.Context, caller gateway.Caller, id string, body []byte, ifMatch string, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	if err := gateway.CheckID(id); err != nil {
		return nil, err
	}
	if strings.TrimSpace(ifMatch) == "" {
		return nil, gateway.NewError(gateway.KindPreconditionRequired, fhir.IssueRequired, "",
			"a correction names the version it replaces: If-Match with the ETag of the QuestionnaireResponse as read (W/\"n\")")
	}
	return s.apply(ctx, caller, id, body, ifMatch, audit)
}

// response is what Signpost reads of a QuestionnaireResponse.
type response struct {
	Questionnaire string            `json:"questionnaire"`
	Status        string            `json:"status"`
	Authored      string            `json:"authored"`
	BasedOn       []json.RawMessage `json:"basedOn"`
	Subject       json.RawMessage   `json:"subject"`
	Author        json.RawMessage   `json:"author"`
	Extension     []struct {
		URL       string `json:"url"`
		ValueCode string `json:"valueCode"`
	} `json:"extension"`
	Item []struct {
		LinkID string                       `json:"linkId"`
		Item   json.RawMessage              `json:"item"`
		Answer []map[string]json.RawMessage `json:"answer"`
	} `json:"item"`
}

const qr = gateway.TypeQuestionnaireResponse

func (s *Service) apply(ctx context.Context, caller gateway.Caller, id string, body []byte, ifMatch string, audit *gateway.AuditIntent) (*gateway.Outcome, error) {
	if caller.Kind == gateway.CallerGP {
		return nil, gateway.NewError(gateway.KindForbidden, fhir.IssueForbidden, "", "outcome measures are recorded by the provider a referral was sent to; the referrer reads them")
	}
	obj, err := s.parser.Parse(body, qr)
	if err != nil {
		return nil, err
	}
	var r response
	if err := gateway.DecodeView(obj.Bytes(), qr, &r); err != nil {
		return nil, err
	}
	if id != "" {
		if bid, _ := obj.String("id"); bid != id {
			return nil, gateway.NewError(gateway.KindInvalid, fhir.IssueInvalid, qr+".id", "an update must carry the resource's id, the same as in the URL")
		}
	}
	q, point, srID, err := s.readHeader(&r, id != "")
	if err != nil {
		return nil, err
	}
	if len(r.Item) > len(q.Items) {
		// Each item of the Questionnaire is answered at most once: more is
		// refused before any is read, whatever they hold.
		return nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueTooCostly, qr+".item",
			"%s has %d items, each listed at most once; %d were sent", q.ID, len(q.Items), len(r.Item))
	}
	kept := gateway.Problems{Max: structure.MaxIssues}
	checkKept(obj.Bytes(), q, &kept)
	if err := kept.Err(gateway.KindUnprocessable); err != nil {
		return nil, err
	}
	scores, err := score(q, &r)
	if err != nil {
		return nil, err
	}
	for attempt := 1; attempt <= queue.MaxAttempts; attempt++ {
		pl, out, err := s.plan(ctx, caller, obj, &r, q, point, srID, scores, id, ifMatch)
		if err != nil || pl == nil {
			return out, err
		}
		if audit != nil {
			rec := audit.Record
			rec.Client, rec.Org = caller.ClientID, caller.Organization
			for _, w := range pl.Writes {
				if w.Resource.Type != gateway.TypeProvenance {
					rec.What = append(rec.What, w.Resource.Ref())
				}
			}
			rec.Status = audit.StatusOther
			if out.Created {
				rec.Status = audit.StatusCreated
			}
			pl.Audit = &rec
		}
		res, err := s.Commit(ctx, pl)
		if err != nil {
			return nil, err
		}
		if res.OK() {
			out.Audited = pl.Audit != nil
			return out, nil
		}
		if st := res.Stale; st != nil && st.Index == 0 && ifMatch != "" {
			return nil, gateway.NewError(gateway.KindPreconditionFailed, fhir.IssueConflict, "",
				"version conflict: If-Match named version %d of the QuestionnaireResponse but version %d is current; read it again and reapply the change", pl.Writes[0].Expect, st.Current)
		}
		// Another request changed what this plan read (the Task moved on, or
		// the same measure was recorded meanwhile): plan again.
	}
	return nil, gateway.NewError(gateway.KindConflict, fhir.IssueConflict, "", "the referral changed concurrently while the measure was recorded; retry it")
}

// readHeader checks what the response says about itself: which measure,
// at which point, for which referral, and that it is finished.
func (s *Service) readHeader(r *response, update bool) (*mappings.Questionnaire, gateway.MeasurePoint, string, error) {
	var p gateway.Problems
	q, known := s.Measures.ByCanonical(r.Questionnaire)
	if !known {
		var urls []string
		for _, m := range s.Measures.List() {
			urls = append(urls, m.URL)
		}
		p.Add(fhir.IssueRequired, qr+".questionnaire", "questionnaire must name one of the measures Signpost holds (GET /fhir/Questionnaire): %s", strings.Join(urls, ", "))
	}
	switch {
	case r.Status == "completed":
	case r.Status == "amended" && update:
	default:
		p.Add(fhir.IssueValue, qr+".status", "a measure is recorded once the person has answered it: status completed (amended for a correction)")
	}
	var point gateway.MeasurePoint
	for i, e := range r.Extension {
		if e.URL == gateway.MeasurePointExtension {
			point = gateway.MeasurePoint(e.ValueCode)
			if !point.Valid() {
				p.Add(fhir.IssueValue, fmt.Sprintf("%s.extension[%d].valueCode", qr, i), "the measure point is first-contact or completion")
			}
		}
	}
	if point == "" {
		p.Add(fhir.IssueRequired, qr+".extension", "say when the measure was taken: an extension %s with valueCode first-contact or completion", gateway.MeasurePointExtension)
	}
	srID := ""
	for _, raw := range r.BasedOn {
		var ref struct{ Reference string }
		_ = json.Unmarshal(raw, &ref)
		if id, ok := strings.CutPrefix(s.LocalRef(ref.Reference), gateway.TypeServiceRequest+"/"); ok && gateway.ValidID(id) && srID == "" {
			srID = id
		}
	}
	if srID == "" {
		p.Add(fhir.IssueRequired, qr+".basedOn", "basedOn must name the referral the measure is for: a reference ServiceRequest/{id}")
	}
	return q, point, srID, p.Err(gateway.KindUnprocessable)
}

// scored is one score read from a response.
type scored struct {
	score *mappings.Score
	value int
}

// score checks the answers against the Questionnaire — every item known,
// answered once with the type it takes, within its range or among its
// options, every required item answered — and reads the scores. Every
// problem is reported at once, each at its item.
func score(q *mappings.Questionnaire, r *response) ([]scored, error) {
	p := gateway.Problems{Max: structure.MaxIssues}
	values := map[string]int{}
	listed := map[string]bool{}
	for i, it := range r.Item {
		at := fmt.Sprintf("%s.item[%d]", qr, i)
		item, ok := q.Item(it.LinkID)
		switch {
		case ok && listed[it.LinkID]:
			// No item of a measure repeats: each is listed once, answered
			// or not, text items too.
			p.Add(fhir.IssueInvalid, at+".linkId", "item %q is listed twice; each item of %s is listed once", it.LinkID, q.ID)
			continue
		case !ok:
			// The client's linkId is not repeated back: the position names it.
			p.Add(fhir.IssueInvalid, at+".linkId", "the linkId is not an item of Questionnaire %s (its items: %s)", q.ID, strings.Join(q.LinkIDs(), ", "))
			continue
		}
		listed[it.LinkID] = true
		if len(it.Item) > 0 {
			p.Add(fhir.IssueNotSupported, at+".item", "item %q: nested items are not part of %s", it.LinkID, q.ID)
			continue
		}
		if item.Type == mappings.ItemDisplay {
			if len(it.Answer) > 0 {
				p.Add(fhir.IssueInvalid, at+".answer", "item %q is text shown to the person; it takes no answer", it.LinkID)
			}
			continue
		}
		if len(it.Answer) != 1 {
			if len(it.Answer) > 1 {
				p.Add(fhir.IssueInvalid, at+".answer", "item %q takes one answer", it.LinkID)
			}
			continue // no answer: reported below if it is required
		}
		ans := it.Answer[0]
		if _, nested := ans["item"]; nested {
			p.Add(fhir.IssueNotSupported, at+".answer[0].item", "item %q: nested items are not part of %s", it.LinkID, q.ID)
			continue
		}
		v, err := answerValue(item, ans)
		if err != nil {
			p.Add(fhir.IssueValue, at+".answer[0]"+err.where, "item %q: %s", it.LinkID, err.msg)
			continue
		}
		values[it.LinkID] = v
	}
	for _, item := range q.Items {
		if _, answered := values[item.LinkID]; !answered && item.Required && !answeredWrongly(r, item.LinkID) {
			p.Add(fhir.IssueRequired, qr+".item", "item %q (%s) is required and has no answer", item.LinkID, item.Text)
		}
	}
	if err := p.Err(gateway.KindUnprocessable); err != nil {
		return nil, err
	}
	out := make([]scored, 0, len(q.Scores))
	for i := range q.Scores {
		sc := &q.Scores[i]
		total := 0
		for _, linkID := range sc.Items {
			total += values[linkID]
		}
		out = append(out, scored{score: sc, value: total})
	}
	return out, nil
}

// answeredWrongly reports an item that is present with an answer already
// refused, so it is not reported missing as well.
func answeredWrongly(r *response, linkID string) bool {
	for _, it := range r.Item {
		if it.LinkID == linkID && len(it.Answer) > 0 {
			return true
		}
	}
	return false
}

type answerError struct{ where, msg string }

// answerValue reads one answer as its item's type takes it. A value of
// another type is refused by name (not by content: answers are patient data).
func answerValue(item *mappings.Item, ans map[string]json.RawMessage) (int, *answerError) {
	var valueKey string
	for k := range ans {
		if strings.HasPrefix(k, "value") {
			valueKey = k
		}
	}
	switch item.Type {
	case mappings.ItemInteger:
		raw, ok := ans["valueInteger"]
		if !ok {
			return 0, &answerError{"." + orValue(valueKey), fmt.Sprintf("takes valueInteger, a whole number from %d to %d%s", item.Min, item.Max, notType(valueKey))}
		}
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < item.Min || n > item.Max {
			return 0, &answerError{".valueInteger", fmt.Sprintf("the answer is outside %d to %d", item.Min, item.Max)}
		}
		return n, nil
	case mappings.ItemChoice:
		raw, ok := ans["valueCoding"]
		if !ok {
			return 0, &answerError{"." + orValue(valueKey), "takes valueCoding, one of its answerOptions" + notType(valueKey)}
		}
		var c struct{ System, Code string }
		_ = json.Unmarshal(raw, &c)
		opt, ok := item.Option(c.System, c.Code)
		if !ok {
			codes := make([]string, len(item.Options))
			for i, o := range item.Options {
				codes[i] = o.Code
			}
			return 0, &answerError{".valueCoding", fmt.Sprintf("the answer is not one of its options (%s, system %s)", strings.Join(codes, ", "), item.Options[0].System)}
		}
		return opt.Value, nil
	}
	return 0, &answerError{"", "takes no answer"}
}

func orValue(k string) string {
	if k == "" {
		return "value[x]"
	}
	return k
}

func notType(k string) string {
	if k == "" {
		return "; the answer has no value"
	}
	return ", not " + k
}

// plan reads the referral and what is recorded already, and builds the
// commit. A response identical to the one stored is answered with it and
// no commit (nil).
func (s *Service) plan(ctx context.Context, caller gateway.Caller, obj *fhir.Object, r *response, q *mappings.Questionnaire, point gateway.MeasurePoint,
	srID string, scores []scored, id, ifMatch string) (*gateway.Commit, *gateway.Outcome, error) {
	srRef := gateway.TypeServiceRequest + "/" + srID
	notSent := gateway.NewError(gateway.KindUnprocessable, fhir.IssueNotFound, qr+".basedOn", "basedOn names no referral this provider was sent")
	if _, err := s.ReadVisible(ctx, caller, gateway.TypeServiceRequest, srID); errors.Is(err, gateway.ErrNotFound) {
		return nil, nil, notSent
	} else if err != nil {
		return nil, nil, err
	}
	holder, err := s.Store.Lookup(ctx, gateway.ReferralTaskKey(srID))
	if err != nil {
		return nil, nil, err
	}
	taskID, ok := strings.CutPrefix(holder, gateway.TypeTask+"/")
	if !ok {
		return nil, nil, notSent
	}
	task, err := s.ReadVisible(ctx, caller, gateway.TypeTask, taskID)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, nil, notSent
	} else if err != nil {
		return nil, nil, err
	}
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return nil, nil, err
	}
	// One response per referral, measure and point: its id says which, so
	// the commit's "must not exist yet" is what keeps it one. The same
	// response sent again is answered with the one stored whatever the
	// referral has become since (a retry after the Task was cancelled).
	cur, err := s.Store.Read(ctx, qr, s.MeasureResponseIDOf(srID, q.ID, point))
	if errors.Is(err, gateway.ErrNotFound) {
		cur = nil
	} else if err != nil {
		return nil, nil, err
	}
	if id == "" && cur != nil && sameAnswers(cur.Body, obj.Bytes()) {
		return nil, &gateway.Outcome{Resource: cur}, nil // sent again: the one stored
	}
	if !slices.Contains(recordable, view.Status) {
		return nil, nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, qr+".basedOn",
			"the referral is %s: measures are recorded for a referral the provider has accepted (accepted, in-progress, on-hold or completed)", view.Status)
	}
	category := gateway.TaskCategory(task.Body)
	provider := strings.TrimPrefix(view.Owner, gateway.TypeOrganization+"/")
	asked := s.MeasuresAsked(category, provider, point)
	if !slices.Contains(asked, q.ID) {
		what := "none"
		if len(asked) > 0 {
			what = strings.Join(asked, ", ")
		}
		return nil, nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, qr+".questionnaire",
			"%s is not asked of this referral at %s (configuration measures:); asked there: %s", q.ID, point, what)
	}
	forRaw := fhir.Member(task.Body, "for")
	if len(r.Subject) > 0 && !sameJSON(r.Subject, forRaw) {
		return nil, nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, qr+".subject",
			"subject must be the referral's patient, as its Task's for names it (or be left out for Signpost to fill in)")
	}
	if len(r.Author) > 0 && !s.namesProvider(r.Author, provider) {
		return nil, nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, qr+".author",
			"author is the provider recording the measure, which Signpost fills in; leave it out (or name this provider)")
	}
	now := s.Now().UTC().Truncate(time.Millisecond)
	switch {
	case id == "" && cur != nil:
		return nil, nil, gateway.NewError(gateway.KindConflict, fhir.IssueDuplicate, qr,
			"%s at %s is recorded for this referral already (%s); correct it with PUT and If-Match", q.ID, point, cur.Ref())
	case id != "" && (cur == nil || cur.ID != id):
		// The stored response, if any, is of another measure, point or
		// referral (or of none): a correction keeps all three.
		if _, err := s.ReadVisible(ctx, caller, qr, id); err == nil {
			return nil, nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueBusinessRule, qr,
				"a correction keeps the response's questionnaire, measure point and referral (basedOn); record another measure with POST")
		}
		return nil, nil, gateway.NotFound(qr, id)
	}
	version, expect := 1, 0
	if cur != nil {
		version, expect = cur.Version+1, cur.Version
		if ifMatch != "" && strings.TrimSpace(ifMatch) != "*" {
			want, err := gateway.ParseIfMatch(ifMatch)
			if err != nil {
				return nil, nil, err
			}
			if want != cur.Version {
				return nil, nil, gateway.NewError(gateway.KindPreconditionFailed, fhir.IssueConflict, "",
					"version conflict: If-Match named version %d of the QuestionnaireResponse but version %d is current; read it again and reapply the change", want, cur.Version)
			}
		}
		if sameAnswers(cur.Body, obj.Bytes()) && sameJSON(orNull(fhir.Member(cur.Body, "authored")), orNull(fhir.Member(obj.Bytes(), "authored"))) {
			// Nothing to correct: no new version of the response, its
			// scores or the Task (nor a Provenance saying it changed).
			return nil, &gateway.Outcome{Resource: cur}, nil
		}
	} else {
		id = s.MeasureResponseIDOf(srID, q.ID, point)
	}
	if cur == nil {
		n, err := s.SupportingCount(ctx, srRef)
		if err != nil {
			return nil, nil, err
		}
		if n+1+len(scores) > gateway.MaxSupporting {
			return nil, nil, gateway.NewError(gateway.KindUnprocessable, fhir.IssueTooCostly, qr,
				"the referral holds %d resources beside its ServiceRequest and Patient; at most %d are kept for one referral, so the measure was not recorded", n, gateway.MaxSupporting)
		}
	}

	// The response as stored: the client's bytes, with the server's fields,
	// and the patient and author filled in when left out.
	extra := map[string]any{}
	if len(r.Subject) == 0 {
		extra["subject"] = json.RawMessage(forRaw)
	}
	prov, _ := s.Router().Provider(provider)
	if prov != nil {
		// The author is the provider recording the measure, whatever form
		// the client named it in: Signpost's to set.
		extra["author"] = prov.Reference()
	}
	stamp := now
	if cur != nil {
		stamp = gateway.NextVersionTime(now, cur.LastUpdated)
	}
	respBody := fhir.ReplaceMembers(obj.WithServerFields(id, strconv.Itoa(version), gateway.Instant(stamp)), extra)
	resp := &gateway.Resource{Type: qr, ID: id, Version: version, LastUpdated: stamp, Body: respBody, Owner: task.Owner}
	terms := []string{gateway.ReferralTerm(srRef), gateway.ClientTerm(task.Owner)}
	c := &gateway.Commit{Writes: []gateway.Write{{Resource: resp, Expect: expect, Terms: terms}}}
	if cur == nil {
		c.Unique = append(c.Unique, gateway.UniqueKey{Key: gateway.SupportingKey(resp.Ref()), Value: srRef})
	}

	effective := r.Authored
	if effective == "" {
		effective = gateway.Instant(now)
	}
	var outputs []any
	for _, sc := range scores {
		obsID := s.PlaceOf(id) + gateway.DerivedID("measure-score", id, sc.score.ID) // beside its response
		obsVersion, obsExpect, obsStamp := 1, 0, now
		if cur != nil {
			old, err := s.Store.Read(ctx, gateway.TypeObservation, obsID)
			if err == nil {
				obsVersion, obsExpect, obsStamp = old.Version+1, old.Version, gateway.NextVersionTime(now, old.LastUpdated)
			} else if !errors.Is(err, gateway.ErrNotFound) {
				return nil, nil, err
			}
		}
		obs := &gateway.Resource{Type: gateway.TypeObservation, ID: obsID, Version: obsVersion, LastUpdated: obsStamp, Owner: task.Owner,
			Body: Observation(ObservationFacts{ID: obsID, Version: obsVersion, At: obsStamp, Point: point, Score: sc.score, Value: sc.value,
				Subject: forRaw, TaskRef: task.Ref(), ServiceRequestRef: srRef, ResponseRef: resp.Ref(), Effective: effective, Performer: prov})}
		c.Writes = append(c.Writes, gateway.Write{Resource: obs, Expect: obsExpect, Terms: terms})
		if obsExpect == 0 {
			c.Unique = append(c.Unique, gateway.UniqueKey{Key: gateway.SupportingKey(obs.Ref()), Value: srRef})
		}
		outputs = append(outputs, output(gateway.MeasureOutputSystem, gateway.MeasureScoreOutput, "Outcome measure score", obs.Ref()))
	}

	// The Task names the response and its scores among its outputs, once.
	members := map[string]any{}
	if cur == nil {
		existing := fhir.Member(task.Body, "output")
		var list []any
		if len(existing) > 0 {
			_ = json.Unmarshal(existing, &list)
		}
		list = append(list, output(gateway.SDCTaskCodeSystem, gateway.QuestionnaireResponseOutput, "Questionnaire Response", resp.Ref()))
		members["output"] = append(list, outputs...)
	}
	taskWrites := s.TaskVersionBy(task, view, members, s.AgentOf(caller), now)
	c.Writes = append(c.Writes, taskWrites...)
	next := taskWrites[0].Resource
	c.Jobs = queue.NotifyJobs(s.Core, next, view.Status, view.Status)
	if queue.Answered(view.Status) {
		// A BaRS sender hears of the measure too, with the Task as it
		// stands (NotifyJobs answers only a change of status).
		c.Jobs = append(c.Jobs, queue.BarsResponse{TaskChanged: queue.TaskChanged{TaskID: next.ID, Version: next.Version, Status: view.Status, Client: next.Owner, At: next.LastUpdated}}.Job())
	}
	return c, &gateway.Outcome{Resource: resp, Created: cur == nil}, nil
}

// namesProvider reports whether an author Reference names the provider
// (its id) the referral was sent to: by reference, or by its organisation
// identifier.
func (s *Service) namesProvider(raw json.RawMessage, provider string) bool {
	var a struct {
		Reference  string
		Identifier struct{ System, Value string }
	}
	if json.Unmarshal(raw, &a) != nil {
		return false
	}
	prov, ok := s.Router().Provider(provider)
	if !ok {
		return false
	}
	if a.Reference != "" {
		return s.LocalRef(a.Reference) == gateway.TypeOrganization+"/"+prov.ID
	}
	return a.Identifier.Value != "" && a.Identifier.System == prov.Organization.System && a.Identifier.Value == prov.Organization.Value
}

func output(system, code, display, ref string) map[string]any {
	return map[string]any{
		"type":           map[string]any{"coding": []map[string]string{{"system": system, "code": code, "display": display}}},
		"valueReference": map[string]string{"reference": ref},
	}
}

// sameJSON compares two JSON values as canonical JSON.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ca, _ := json.Marshal(x)
	cb, _ := json.Marshal(y)
	return bytes.Equal(ca, cb)
}

// orNull is a member's JSON, or null when it is absent.
func orNull(raw []byte) []byte {
	if len(raw) == 0 {
		return []byte("null")
	}
	return raw
}

// sameAnswers reports a response sent again: the same items and answers.
func sameAnswers(stored, sent []byte) bool {
	return sameJSON(fhir.Member(stored, "item"), fhir.Member(sent, "item"))
}
