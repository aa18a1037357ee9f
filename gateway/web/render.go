package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/insights"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/mappings"
)

// page is everything a template may show. One type for all pages keeps the
// templates' contract in one place.
type page struct {
	Title   string
	Session *account.WebSession
	// Organisation is who the signed-in person works for, for the header.
	Organisation string
	CSRF         string // the sign-in form's token; signed-in forms use Session.CSRF
	Message      string
	Email        string

	List           portal.InboxView
	Inbox          *portal.InboxPage
	Next, Previous string
	Referral       *portal.ReferralDetail
	DeclineReasons []gateway.CodeOption
	Outcomes       []gateway.CodeOption

	// Confirm is the step a confirmation page asks about.
	Confirm *confirmation

	Report                   *insights.Report
	From, To                 string // the period's UK dates, inclusive (YYYY-MM-DD, for the form)
	FromText, ToText         string // the same, as people read them (3 December 2026)
	Funnel, Endings, Reasons chart
	OverTime                 columns
	Changes                  changes

	// Measures are the outcome measures of the referral shown; Measure is
	// the form of one.
	Measures []portal.MeasureDue
	Measure  *measureForm
}

// Lists are the inbox's tabs, for the template.
func (page) Lists() any { return lists }

// Stages are the funnel's stages, for the tables.
func (page) Stages() any { return insights.Stages }

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(insights.UKTime).Format("2 January 2006, 15:04")
	},
	"day": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(insights.UKTime).Format("2 January 2006")
	},
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"status":   statusLabel,
	"action":   actionLabel,
	"category": mappings.CategoryLabel,
	"median":   func(d insights.Durations) string { return humanDuration(d.N, d.Median) },
	"p90":      func(d insights.Durations) string { return humanDuration(d.N, d.P90) },
	"number":   insights.Number,
	// lowerFirst starts a phrase in lower case, to go mid-sentence.
	"lowerFirst": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToLower(s[:1]) + s[1:]
	},
	"signed": insights.Signed,
	"tel":    func(s string) string { return strings.Map(telRune, s) },
	// mailable is an address fit for a mailto: link: a bare address with
	// nothing after it (no ?bcc= another recipient).
	"mailable": func(s string) bool {
		a, err := mail.ParseAddress(s)
		return err == nil && a.Name == "" && a.Address == s && !strings.ContainsAny(s, "?&")
	},
	"choice": func(action, label, prompt string, options []gateway.CodeOption) choice {
		return choice{action, label, prompt, options}
	},
	"args": func(heading, key string, rows []insights.ReportRow, p page) breakdown {
		return breakdown{heading, key, rows, p}
	},
}

// choice is a coded choice in an action's form.
type choice struct {
	Action, Label, Prompt string
	Options               []gateway.CodeOption
}

// breakdown is one table of the outcomes view.
type breakdown struct {
	Heading, Key string
	Rows         []insights.ReportRow
	Page         page
}

// humanDuration says how long something took in the unit people would
// use: minutes, hours or days ("–" when nothing was timed).
func humanDuration(n int, d time.Duration) string {
	switch {
	case n == 0:
		return "–"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	default:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	}
}

// telRune keeps the characters of a telephone number for a tel: link.
func telRune(r rune) rune {
	if r == '+' || (r >= '0' && r <= '9') {
		return r
	}
	return -1
}

// statusLabels are Task statuses in words.
var statusLabels = map[gateway.TaskStatus]string{
	gateway.TaskRequested: "New", gateway.TaskAccepted: "Accepted", gateway.TaskInProgress: "In progress",
	gateway.TaskOnHold: "On hold", gateway.TaskCompleted: "Completed", gateway.TaskRejected: "Declined",
	gateway.TaskFailed: "Closed: not carried out", gateway.TaskCancelled: "Cancelled",
	gateway.TaskEnteredInError: "Entered in error", gateway.TaskDraft: "Draft",
}

func statusLabel(s gateway.TaskStatus) string {
	if l, ok := statusLabels[s]; ok {
		return l
	}
	return string(s)
}

// actionLabels are the buttons of the actions.
var actionLabels = map[portal.Action]string{
	portal.ActionAccept: "Accept", portal.ActionDecline: "Decline", portal.ActionContact: "Record contact",
	portal.ActionFirstSession: "First session attended", portal.ActionHold: "Put on hold", portal.ActionResume: "Resume",
	portal.ActionComplete: "Complete", portal.ActionDidNotAttend: "Did not attend",
}

func actionLabel(a portal.Action) string { return actionLabels[a] }

func parseTemplates() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"welcome", "sign-in", "inbox", "referral", "confirm", "insights", "problem", "measure"} {
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}

// render writes a page. It is rendered to a buffer first, so a template
// failure is a clean 500 rather than half a page.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name string, data page) {
	if data.Session != nil && data.Organisation == "" {
		data.Organisation = p.organisation(data.Session)
	}
	var b bytes.Buffer
	if err := p.pages[name].Execute(&b, data); err != nil {
		p.log.ErrorContext(r.Context(), "rendering a page", "page", name, "error", err)
		http.Error(w, "Something went wrong on Signpost's side.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// organisation names the organisation a signed-in person works for: their
// provider's name ("" for an operator, who works for none in particular).
func (p *Pages) organisation(s *account.WebSession) string {
	if s.Operator() || p.portal == nil {
		return ""
	}
	if prov, ok := p.portal.Router().Provider(s.ProviderID); ok {
		return prov.DisplayName()
	}
	return s.ProviderID
}
