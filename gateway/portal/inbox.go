package portal

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-health/signpost/fhir"
	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/query"
	"github.com/signpost-health/signpost/mappings"
)

// The inbox is what a provider's staff see of their referrals: who the
// person is and how to reach them, why they were referred, by whom, and
// where the referral stands. It is read under the provider's own Caller,
// so it shows exactly what the API would show that provider and nothing
// else.

// InboxView picks the referrals a list shows, by where they stand.
type InboxView string

// The inbox lists.
const (
	InboxNew        InboxView = "new"
	InboxInProgress InboxView = "in-progress"
	InboxClosed     InboxView = "closed"
)

// inboxStatuses are the Task statuses of each list.
var inboxStatuses = map[InboxView][]gateway.TaskStatus{
	InboxNew:        {gateway.TaskRequested},
	InboxInProgress: {gateway.TaskAccepted, gateway.TaskInProgress, gateway.TaskOnHold},
	InboxClosed:     {gateway.TaskCompleted, gateway.TaskRejected, gateway.TaskFailed, gateway.TaskCancelled, gateway.TaskEnteredInError},
}

// InboxPageSize is how many referrals one inbox page lists.
const InboxPageSize = 25

// Person is what a provider needs to know to contact someone referred.
type Person struct {
	Name      string
	NHSNumber string
	BirthDate string
	Phone     []string
	Email     []string
	Address   string
}

// ReferralSummary is one referral as the inbox lists it.
type ReferralSummary struct {
	TaskID         string
	Version        int
	Status         gateway.TaskStatus
	BusinessStatus string
	StatusReason   string
	Category       string
	CategoryLabel  string
	Reason         string // what the referral is for: the code table's display for its code, else its text or display
	ReasonText     string // the referrer's own words for it (code.text), when they differ from Reason
	Practice       string // who referred: the requester's display or identifier
	Sent           time.Time
	LastUpdated    time.Time
	Person         Person
}

// InboxPage is one page of a list.
type InboxPage struct {
	Referrals []ReferralSummary
	Total     int
	Offset    int
	// Read lists every resource the page showed (for the audit of who saw
	// whose details).
	Read []string
}

// Inbox lists a provider's referrals in one list, most recently changed first.
func (s *Service) Inbox(ctx context.Context, caller gateway.Caller, view InboxView, offset int) (*InboxPage, error) {
	statuses, ok := inboxStatuses[view]
	if !ok {
		return nil, errors.New("unknown inbox list " + string(view))
	}
	codes := make([]string, len(statuses))
	for i, st := range statuses {
		codes[i] = string(st)
	}
	params := url.Values{"status": {strings.Join(codes, ",")}, "_sort": {"-_lastUpdated"},
		"_count": {strconv.Itoa(InboxPageSize)}, "_offset": {strconv.Itoa(max(0, min(offset, query.MaxOffset)))}}
	res, err := s.search.Search(ctx, caller, gateway.TypeTask, params, false)
	if err != nil {
		return nil, err
	}
	page := &InboxPage{Total: res.Total, Offset: offset}
	for _, task := range res.Matches {
		r, _, read, err := s.summarise(ctx, caller, task)
		if err != nil {
			return nil, err
		}
		page.Referrals = append(page.Referrals, *r)
		page.Read = append(page.Read, read...)
	}
	return page, nil
}

// ReferralDetail is one referral as its page shows it.
type ReferralDetail struct {
	ReferralSummary
	Priority           string
	Notes              []string // ServiceRequest.note texts
	PatientInstruction string
	Outcome            string // the completed Task's outcome text
	// History is the Task's versions the caller may see (VersionSeen) of
	// the newest HistoryWindow holds, oldest first; OlderNotShown says
	// that the window left older versions unread.
	History       []TaskChange
	OlderNotShown bool
	Actions       []Action
	Read          []string
}

// TaskChange is one version of the Task: who moved it where, and when.
type TaskChange struct {
	Version        int
	When           time.Time
	Status         gateway.TaskStatus
	BusinessStatus string
	StatusReason   string
	// By says who made the change: the person signed in to the pages (and
	// the organisation they act for), the organisation whose system called
	// the API, or Signpost itself.
	By string
}

// HistoryWindow is what a referral's page reads of its Task's versions:
// the newest 50, of at most 2 MiB together (the newest whatever its size).
// A Task's versions are as many as its changes, and each may be as large
// as a request's body, so a page that read them all (once 54 MiB for one
// view) cost what the referral's writers chose. A referral's working life
// is a dozen steps and notes of a few KiB, so the window shows all of it;
// a longer history is cut, and the page says so.
var HistoryWindow = gateway.HistoryWindow{Versions: 50, Bytes: 2 << 20}

// Referral reads one referral in full, under the caller's visibility
// (ErrNotFound when the caller may not see it).
func (s *Service) Referral(ctx context.Context, caller gateway.Caller, taskID string) (*ReferralDetail, error) {
	if gateway.CheckID(taskID) != nil {
		return nil, gateway.ErrNotFound
	}
	task, err := s.ReadVisible(ctx, caller, gateway.TypeTask, taskID)
	if err != nil {
		return nil, err
	}
	sum, sr, read, err := s.summarise(ctx, caller, task)
	if err != nil {
		return nil, err
	}
	d := &ReferralDetail{ReferralSummary: *sum, Read: read, Actions: ActionsFor(sum.Status)}
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return nil, err
	}
	for _, o := range view.Outputs {
		if o.Text != "" {
			d.Outcome = o.Text
		}
	}
	if sr != nil {
		var r struct {
			Priority string `json:"priority"`
			Note     []struct {
				Text string `json:"text"`
			} `json:"note"`
			PatientInstruction string `json:"patientInstruction"`
		}
		_ = json.Unmarshal(sr.Body, &r)
		d.Priority, d.PatientInstruction = r.Priority, r.PatientInstruction
		for _, n := range r.Note {
			d.Notes = append(d.Notes, n.Text)
		}
	}
	versions, current, err := s.Store.LatestVersions(ctx, gateway.TypeTask, taskID, HistoryWindow)
	if err != nil {
		return nil, err
	}
	d.OlderNotShown = len(versions) > 0 && versions[0].Version > 1
	// A provider sees the versions that were its own and not withheld:
	// a hold's reason (consent refused) is the GP's, as over the API.
	versions = slices.DeleteFunc(versions, func(v *gateway.Resource) bool { return !gateway.VersionSeen(caller, v, current) })
	actors, err := s.actors(ctx, task.Ref(), len(versions))
	if err != nil {
		return nil, err
	}
	// The outcome measures the Task named so far; unknown (-1) when the
	// version before the first shown was not read.
	responses := 0
	if d.OlderNotShown {
		responses = -1
	}
	for _, v := range versions {
		tv, err := gateway.ParseTask(v.Body)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, o := range tv.Outputs {
			if o.Type.Code == gateway.QuestionnaireResponseOutput && o.Type.System == gateway.SDCTaskCodeSystem {
				n++
			}
		}
		if responses >= 0 && n > responses {
			// A version that added an outcome measure says so, not the
			// business status it kept.
			tv.BusinessStatus, tv.StatusReason = "Outcome measure recorded", ""
		}
		responses = n
		by := actors[v.Version]
		switch {
		case by != "":
		case v.Version == 1:
			by = sum.Practice // the referral as it came: the referrer's
		default:
			by = "Signpost" // a change Signpost made itself (a delivery)
		}
		d.History = append(d.History, TaskChange{Version: v.Version, When: v.LastUpdated, Status: tv.Status,
			BusinessStatus: tv.BusinessStatus, StatusReason: tv.StatusReason, By: by})
	}
	return d, nil
}

// actors reads who made each version of a Task from the Provenance
// recorded with it (in the same commit): version -> who, in words. The
// Provenances of the versions shown are the newest (one a version, with
// the version's time), so the newest are read: twice as many as the
// versions, room for those indexed again since they were written (a
// withdrawal hides them, giving each a later time), so that the page's
// cost is its window's, not the Task's.
func (s *Service) actors(ctx context.Context, taskRef string, versions int) (map[int]string, error) {
	if versions == 0 {
		return nil, nil
	}
	ids, _, err := s.Store.Search(ctx, &gateway.StoreQuery{Type: gateway.TypeProvenance,
		Groups: [][]string{{gateway.TargetTerm(taskRef)}}, Count: 2 * versions, Descending: true})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = gateway.TypeProvenance + "/" + id
	}
	provs, err := s.Store.ReadMany(ctx, refs)
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, p := range provs {
		if p == nil {
			continue
		}
		var prov struct {
			Target []struct {
				Reference string `json:"reference"`
			} `json:"target"`
			Agent []struct {
				Who        party `json:"who"`
				OnBehalfOf party `json:"onBehalfOf"`
			} `json:"agent"`
		}
		if json.Unmarshal(p.Body, &prov) != nil || len(prov.Agent) == 0 {
			continue
		}
		for _, t := range prov.Target {
			_, v, ok := strings.Cut(t.Reference, taskRef+"/_history/")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				continue
			}
			a := prov.Agent[0]
			who := s.partyName(a.Who)
			if org := s.partyName(a.OnBehalfOf); org != "" && who != "" {
				who += ", for " + org
			}
			out[n] = who
		}
	}
	return out, nil
}

// party is a Provenance agent's who or onBehalfOf.
type party struct {
	Display    string `json:"display"`
	Reference  string `json:"reference"`
	Identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

// partyName says who a Provenance agent is in words: a person by their
// account, an organisation by the directory's name for its ODS code, or
// by the name the record gives it.
func (s *Service) partyName(p party) string {
	id := p.Identifier
	switch {
	case id.System == gateway.PortalUserSystem && id.Value != "":
		return id.Value
	case id.System == fhir.ODSSystem && s.Organizations.Name(id.Value) != "":
		return s.Organizations.Label(id.Value)
	case p.Display != "":
		return p.Display
	case id.Value != "":
		return id.Value
	}
	return p.Reference
}

// summarise reads what the inbox shows of a Task: its referral and person,
// and returns the ServiceRequest it read (nil when not held). The
// ServiceRequest is the Task's focus, fixed when the Task was made; the
// Patient is shown only if the caller may see it (a Task may point at a
// Patient of another client).
func (s *Service) summarise(ctx context.Context, caller gateway.Caller, task *gateway.Resource) (*ReferralSummary, *gateway.Resource, []string, error) {
	view, err := gateway.ParseTask(task.Body)
	if err != nil {
		return nil, nil, nil, err
	}
	var t struct {
		AuthoredOn string `json:"authoredOn"`
		Requester  struct {
			Display    string `json:"display"`
			Identifier struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"identifier"`
		} `json:"requester"`
		For struct {
			Identifier struct {
				System, Value string
			} `json:"identifier"`
		} `json:"for"`
		Input []struct {
			ValueCoding struct {
				System, Code string
			} `json:"valueCoding"`
		} `json:"input"`
	}
	_ = json.Unmarshal(task.Body, &t)
	r := &ReferralSummary{TaskID: task.ID, Version: task.Version, Status: view.Status, BusinessStatus: view.BusinessStatus,
		StatusReason: view.StatusReason, LastUpdated: task.LastUpdated, Practice: t.Requester.Display}
	// The identifier is the one Signpost checked against the referring GP
	// system (requester.go); the display is the sender's free text, so the
	// identifier is shown beside it. The directory's name for an ODS code
	// wins over the sender's words: it is the deployment's own.
	if id := t.Requester.Identifier; id.Value != "" && (id.System == fhir.ODSSystem || id.System == "") && s.Organizations.Name(id.Value) != "" {
		r.Practice = s.Organizations.Label(id.Value)
	} else if id := t.Requester.Identifier.Value; id != "" && r.Practice != "" && r.Practice != id {
		r.Practice += " (" + id + ")"
	}
	if r.Practice == "" {
		r.Practice = t.Requester.Identifier.Value
	}
	r.Sent, _ = time.Parse(time.RFC3339Nano, t.AuthoredOn)
	for _, in := range t.Input {
		if in.ValueCoding.System == gateway.CategorySystem {
			r.Category = in.ValueCoding.Code
			r.CategoryLabel = mappings.CategoryLabel(r.Category)
		}
	}
	read := []string{task.Ref()}
	if t.For.Identifier.System == fhir.NHSNumberSystem {
		r.Person.NHSNumber = t.For.Identifier.Value
	}
	sr := s.SharedWith(caller, s.focusOf(ctx, task))
	if sr != nil {
		read = append(read, sr.Ref())
		var body struct {
			Code struct {
				Text   string `json:"text"`
				Coding []struct {
					System  string `json:"system"`
					Code    string `json:"code"`
					Display string `json:"display"`
				} `json:"coding"`
			} `json:"code"`
			Subject struct {
				Reference string `json:"reference"`
			} `json:"subject"`
			Contained []json.RawMessage `json:"contained"`
		}
		_ = json.Unmarshal(sr.Body, &body)
		// What the referral is for, in the words of the code table (the
		// deployment's own, the ones that routed it); else the sender's.
		for _, c := range body.Code.Coding {
			if e, ok := s.Codes.Lookup(c.System, c.Code); ok && e.Display != "" && r.Reason == "" {
				r.Reason = e.Display
			}
		}
		if r.Reason == "" {
			r.Reason = body.Code.Text
		}
		for _, c := range body.Code.Coding {
			if r.Reason == "" {
				r.Reason = c.Display
			}
		}
		// The GP's own words are kept beside the table's when they say more.
		if text := strings.TrimSpace(body.Code.Text); text != "" && !strings.EqualFold(text, r.Reason) {
			r.ReasonText = text
		}
		// A Patient the referral contains: its Task names the patient by
		// identifier only (conform.TaskSubject); an older Task, "#id".
		if id, ok := strings.CutPrefix(body.Subject.Reference, "#"); ok {
			for _, c := range body.Contained {
				var head struct{ ResourceType, ID string }
				if json.Unmarshal(c, &head) == nil && head.ResourceType == gateway.TypePatient && head.ID == id {
					readPerson(c, &r.Person)
				}
			}
		}
	}
	if ref := s.LocalRef(view.For); strings.HasPrefix(ref, gateway.TypePatient+"/") {
		got, err := s.PatientOf(ctx, caller, task, strings.TrimPrefix(ref, gateway.TypePatient+"/"))
		if err != nil {
			return nil, nil, nil, err
		}
		if got != nil {
			readPerson(got.Body, &r.Person)
			read = append(read, ref)
		}
	}
	return r, sr, read, nil
}

// focusOf reads the ServiceRequest a Task is for (nil when not held).
func (s *Service) focusOf(ctx context.Context, task *gateway.Resource) *gateway.Resource {
	got, err := s.FocusesOf(ctx, []*gateway.Resource{task})
	if err != nil || len(got) == 0 {
		return nil
	}
	return got[0]
}

// readPerson fills in what a Patient says about how to reach the person;
// what is already known (an NHS number on the reference) is kept unless
// the Patient says it too.
func readPerson(body []byte, p *Person) {
	var pt struct {
		Identifier []struct{ System, Value string } `json:"identifier"`
		Name       []struct {
			Text   string   `json:"text"`
			Given  []string `json:"given"`
			Family string   `json:"family"`
			Prefix []string `json:"prefix"`
		} `json:"name"`
		Telecom []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"telecom"`
		BirthDate string `json:"birthDate"`
		Address   []struct {
			Text       string   `json:"text"`
			Line       []string `json:"line"`
			City       string   `json:"city"`
			PostalCode string   `json:"postalCode"`
		} `json:"address"`
	}
	if json.Unmarshal(body, &pt) != nil {
		return
	}
	for _, id := range pt.Identifier {
		if id.System == fhir.NHSNumberSystem {
			p.NHSNumber = id.Value
		}
	}
	if len(pt.Name) > 0 {
		n := pt.Name[0]
		p.Name = n.Text
		if p.Name == "" {
			p.Name = strings.TrimSpace(strings.Join(append(append([]string{}, n.Given...), n.Family), " "))
		}
	}
	for _, t := range pt.Telecom {
		switch t.System {
		case "phone", "sms":
			p.Phone = append(p.Phone, t.Value)
		case "email":
			p.Email = append(p.Email, t.Value)
		}
	}
	p.BirthDate = pt.BirthDate
	if len(pt.Address) > 0 {
		a := pt.Address[0]
		p.Address = a.Text
		if p.Address == "" {
			parts := append(append([]string{}, a.Line...), a.City, a.PostalCode)
			var kept []string
			for _, s := range parts {
				if s != "" {
					kept = append(kept, s)
				}
			}
			p.Address = strings.Join(kept, ", ")
		}
	}
}
