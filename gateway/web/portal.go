package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/portal"
)

// The provider inbox.

// caller is the provider a staff member works for, as the domain knows
// callers: the same Caller the provider's own system has on the API.
func (p *Pages) caller(s *account.WebSession) gateway.Caller {
	c := gateway.Caller{ClientID: s.ProviderID, Kind: gateway.CallerProvider, Person: s.Email}
	if prov, ok := p.portal.Router().Provider(s.ProviderID); ok {
		c.Organization = prov.Organization
	}
	return c
}

// lists are the inbox's tabs, in order.
var lists = []struct {
	View  portal.InboxView
	Label string
}{
	{portal.InboxNew, "New"},
	{portal.InboxInProgress, "In progress"},
	{portal.InboxClosed, "Closed"},
}

func (p *Pages) inbox(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	view := portal.InboxView(r.URL.Query().Get("list"))
	if view == "" {
		view = portal.InboxNew
	}
	known := false
	for _, l := range lists {
		known = known || l.View == view
	}
	if !known {
		p.problem(w, r, s, http.StatusNotFound, "There is no such list.")
		return
	}
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	list, err := p.portal.Inbox(r.Context(), p.caller(s), view, max(0, offset))
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	// The list shows people's names and contact details: who saw them is
	// recorded before they are shown, or they are not shown.
	if err := p.audit(r, s, "search-type", "E", http.StatusOK, list.Read, "Task inbox "+string(view)); err != nil {
		p.failed(w, r, s, err)
		return
	}
	pg := page{Title: "Referrals", Session: s, List: view, Inbox: list}
	if list.Offset+len(list.Referrals) < list.Total {
		pg.Next = "?" + url.Values{"list": {string(view)}, "offset": {strconv.Itoa(list.Offset + portal.InboxPageSize)}}.Encode()
	}
	if list.Offset > 0 {
		pg.Previous = "?" + url.Values{"list": {string(view)}, "offset": {strconv.Itoa(max(0, list.Offset-portal.InboxPageSize))}}.Encode()
	}
	p.render(w, r, http.StatusOK, "inbox", pg)
}

func (p *Pages) referral(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	p.showReferral(w, r, s, http.StatusOK, doneMessages[r.URL.Query().Get("done")])
}

// showReferral renders one referral, with a message about the last action.
func (p *Pages) showReferral(w http.ResponseWriter, r *http.Request, s *account.WebSession, status int, message string) {
	id := r.PathValue("id")
	d, err := p.portal.Referral(r.Context(), p.caller(s), id)
	if err != nil {
		if errors.Is(err, gateway.ErrNotFound) && gateway.ValidID(id) {
			// Refused views are audited too: someone looking for referrals
			// that are not theirs is worth knowing about.
			_ = p.audit(r, s, "read", "R", http.StatusNotFound, []string{gateway.TypeTask + "/" + id}, "")
		}
		p.failed(w, r, s, err)
		return
	}
	if err := p.audit(r, s, "read", "R", status, d.Read, ""); err != nil {
		p.failed(w, r, s, err)
		return
	}
	measures, err := p.portal.MeasuresOf(r.Context(), p.caller(s), id)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	p.render(w, r, status, "referral", page{Title: "Referral", Session: s, Referral: d, Message: message,
		DeclineReasons: gateway.DeclineReasons, Outcomes: gateway.Outcomes, Measures: measures})
}

// doneMessages confirm an action after the redirect that follows it.
var doneMessages = map[string]string{
	string(portal.ActionAccept):       "Accepted. The referrer has been told.",
	string(portal.ActionDecline):      "Declined. The referrer has been told, with your reason.",
	string(portal.ActionContact):      "Contact recorded.",
	string(portal.ActionFirstSession): "First session recorded.",
	string(portal.ActionHold):         "Put on hold. The referrer has been told why.",
	string(portal.ActionResume):       "Resumed.",
	string(portal.ActionComplete):     "Completed. The referrer has been told the outcome.",
	string(portal.ActionDidNotAttend): "Recorded that the person did not attend. The referrer has been told.",
	"measure":                         "Answers recorded. The scores are sent to the referrer's record with the referral.",
}

// act takes a provider's step on a referral: the Task transition the API
// would make, then back to the referral (post, redirect, get).
func (p *Pages) act(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	id := r.PathValue("id")
	version, err := strconv.Atoi(r.PostForm.Get("version"))
	if err != nil {
		p.showReferral(w, r, s, http.StatusBadRequest, "The form did not say which version of the referral you were looking at. Reload the page and try again.")
		return
	}
	step := portal.Step{Action: portal.Action(r.PostForm.Get("action")), Version: version,
		Code: r.PostForm.Get("code"), Text: strings.TrimSpace(r.PostForm.Get("text"))}
	// A step that closes the referral is asked again, on a page of its
	// own, before anything changes: a second form, so it needs no script.
	if step.Action.Irreversible() && r.PostForm.Get("confirm") != "yes" {
		p.confirm(w, r, s, step)
		return
	}
	// A step stored has its audit record committed with it: appended
	// after, the record could be lost (a browser gone, Redis refusing the
	// append) with the step stored and the GP told.
	out, err := p.portal.Progress(r.Context(), p.caller(s), id, step, p.auditIntent(r, s, "update", "U", http.StatusSeeOther))
	status := http.StatusSeeOther
	e := gateway.AsError(err)
	switch {
	case err == nil:
	case errors.Is(err, portal.ErrStepInvalid):
		status = http.StatusUnprocessableEntity
	case e.Kind == gateway.KindPreconditionFailed:
		status = http.StatusPreconditionFailed
	case e.Kind == gateway.KindConflict, e.Kind == gateway.KindUnprocessable, e.Kind == gateway.KindForbidden:
		status = http.StatusConflict
	case errors.Is(err, gateway.ErrNotFound) || e.Kind == gateway.KindNotFound:
		status = http.StatusNotFound
	default:
		status = http.StatusInternalServerError
	}
	// Every attempt to change a referral is audited, made or refused (a
	// post at another provider's referral is worth knowing about): one
	// refused changed nothing, so its record is kept apart.
	if (out == nil || !out.Audited) && gateway.ValidID(id) {
		if aerr := p.audit(r, s, "update", "U", status, []string{gateway.TypeTask + "/" + id}, ""); aerr != nil {
			p.log.WarnContext(r.Context(), "auditing a web action", "error", aerr)
		}
	}
	switch status {
	case http.StatusSeeOther:
		http.Redirect(w, r, "/portal/referrals/"+url.PathEscape(id)+"?done="+url.QueryEscape(string(step.Action)), http.StatusSeeOther)
	case http.StatusUnprocessableEntity:
		_, why, _ := strings.Cut(err.Error(), ": ")
		p.showReferral(w, r, s, status, "Nothing was changed: "+why+".")
	case http.StatusPreconditionFailed:
		p.showReferral(w, r, s, status, "Nothing was changed: someone else changed this referral since you opened it. Here it is as it is now.")
	case http.StatusConflict:
		p.showReferral(w, r, s, status, "Nothing was changed: "+e.Error()+".")
	default:
		p.failed(w, r, s, err)
	}
}

// confirmation is the second step of an action that closes a referral:
// what is about to happen, in words, and the form that does it.
type confirmation struct {
	Step     portal.Step
	Question string // the page's heading
	Chosen   string // the reason or outcome chosen, in words
	Yes      string // the confirming button
}

// confirm asks a person to confirm a step that closes a referral. Nothing
// is changed: the step is checked as Progress would check it, and the
// page carries it back in a form with confirm=yes. The referral is read
// (and audited) as its page would be, so the page can name the person and
// the referrer.
func (p *Pages) confirm(w http.ResponseWriter, r *http.Request, s *account.WebSession, step portal.Step) {
	if err := portal.CheckStep(step); err != nil {
		_, why, _ := strings.Cut(err.Error(), ": ")
		p.showReferral(w, r, s, http.StatusUnprocessableEntity, "Nothing was changed: "+why+".")
		return
	}
	d, err := p.portal.Referral(r.Context(), p.caller(s), r.PathValue("id"))
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	if d.Version != step.Version {
		p.showReferral(w, r, s, http.StatusPreconditionFailed, "Nothing was changed: someone else changed this referral since you opened it. Here it is as it is now.")
		return
	}
	if !slices.Contains(d.Actions, step.Action) {
		p.showReferral(w, r, s, http.StatusConflict, "Nothing was changed: that step does not apply to a referral that is "+strings.ToLower(statusLabel(d.Status))+".")
		return
	}
	if err := p.audit(r, s, "read", "R", http.StatusOK, d.Read, ""); err != nil {
		p.failed(w, r, s, err)
		return
	}
	who := d.Person.Name
	if who == "" {
		who = "this person"
	}
	c := &confirmation{Step: step}
	switch step.Action {
	case portal.ActionDecline:
		c.Question, c.Yes = "Decline the referral for "+who+"?", "Yes, decline it"
		if o, ok := gateway.OptionNamed(gateway.DeclineReasons, step.Code); ok {
			c.Chosen = o.Display
		}
	case portal.ActionComplete:
		c.Question, c.Yes = "Complete the referral for "+who+"?", "Yes, complete it"
		if o, ok := gateway.OptionNamed(gateway.Outcomes, step.Code); ok {
			c.Chosen = o.Display
		}
	case portal.ActionDidNotAttend:
		c.Question, c.Yes = "Record that "+who+" did not attend?", "Yes, they did not attend"
	}
	p.render(w, r, http.StatusOK, "confirm", page{Title: "Confirm", Session: s, Referral: d, Confirm: c})
}

// auditIntent is the audit record of a change a person asks for, for the
// use case to commit with the change; answered is the status the page
// answers once it is made. nil when no records are kept.
func (p *Pages) auditIntent(r *http.Request, s *account.WebSession, interaction, action string, answered int) *gateway.AuditIntent {
	if p.auditor == nil {
		return nil
	}
	return &gateway.AuditIntent{Record: gateway.AuditRecord{Recorded: p.now(), Interaction: interaction, Action: action, Address: clientAddress(r), User: s.Email},
		StatusCreated: answered, StatusOther: answered}
}

// audit keeps the record of what a person saw or did.
func (p *Pages) audit(r *http.Request, s *account.WebSession, interaction, action string, status int, what []string, query string) error {
	if p.auditor == nil {
		return nil
	}
	c := p.caller(s)
	return p.auditor.Audit(r.Context(), &gateway.AuditRecord{Recorded: p.now(), Interaction: interaction, Action: action, Status: status,
		Client: c.ClientID, Org: c.Organization, Address: clientAddress(r), What: what, Query: query, User: s.Email})
}
