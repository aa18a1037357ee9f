package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/signpost-health/signpost/gateway"
	"github.com/signpost-health/signpost/gateway/account"
	"github.com/signpost-health/signpost/gateway/portal"
	"github.com/signpost-health/signpost/mappings"
)

// Outcome measures in the inbox: a plain form per measure and point, one
// fieldset of radio buttons per question (keyboard: Tab to a question,
// arrows to an answer), no script; answers missing or out of range are
// named at the top and at each question, and nothing is recorded.

// measureForm is the form of one measure, as the template draws it.
type measureForm struct {
	TaskID        string
	Questionnaire *mappings.Questionnaire
	Point         gateway.MeasurePoint
	PointText     string
	Items         []formItem
	Problems      []formProblem
}

type formItem struct {
	LinkID, Text string
	Display      bool // text shown, no answer
	Problem      string
	// Scale lays the answers out in a row (0 to 10), else one under another.
	Scale   bool
	Choices []formChoice
}

type formChoice struct {
	ID, Value, Label string
	Checked          bool
}

type formProblem struct{ LinkID, Text, Problem string }

func buildMeasureForm(taskID string, q *mappings.Questionnaire, point gateway.MeasurePoint, values map[string]string, problems portal.MeasureProblems) *measureForm {
	f := &measureForm{TaskID: taskID, Questionnaire: q, Point: point, PointText: point.Display()}
	for _, it := range q.Items {
		fi := formItem{LinkID: it.LinkID, Text: it.Text, Display: it.Type == mappings.ItemDisplay, Problem: problems[it.LinkID], Scale: it.Type == mappings.ItemInteger}
		switch it.Type {
		case mappings.ItemInteger:
			for v := it.Min; v <= it.Max; v++ {
				value := strconv.Itoa(v)
				fi.Choices = append(fi.Choices, formChoice{ID: "item-" + it.LinkID + "-" + value, Value: value, Label: value, Checked: values[it.LinkID] == value})
			}
		case mappings.ItemChoice:
			for _, o := range it.Options {
				fi.Choices = append(fi.Choices, formChoice{ID: "item-" + it.LinkID + "-" + o.Code, Value: o.Code, Label: o.Display, Checked: values[it.LinkID] == o.Code})
			}
		}
		if fi.Problem != "" {
			f.Problems = append(f.Problems, formProblem{LinkID: it.LinkID, Text: it.Text, Problem: fi.Problem})
		}
		f.Items = append(f.Items, fi)
	}
	return f
}

// measure shows the form of a measure at a point, if it can be recorded now.
func (p *Pages) measure(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	id, qid, point := r.PathValue("id"), r.PathValue("questionnaire"), gateway.MeasurePoint(r.PathValue("point"))
	due, err := p.portal.OpenMeasure(r.Context(), p.caller(s), id, qid, point)
	if err != nil {
		p.measureRefused(w, r, s, id, err)
		return
	}
	p.render(w, r, http.StatusOK, "measure", page{Title: due.Questionnaire.Title, Session: s,
		Measure: buildMeasureForm(id, due.Questionnaire, point, nil, nil)})
}

// recordMeasure records the answers sent, then back to the referral
// (post, redirect, get); answers that need attention come back on the form.
func (p *Pages) recordMeasure(w http.ResponseWriter, r *http.Request, s *account.WebSession) {
	id, qid, point := r.PathValue("id"), r.PathValue("questionnaire"), gateway.MeasurePoint(r.PathValue("point"))
	due, err := p.portal.OpenMeasure(r.Context(), p.caller(s), id, qid, point)
	if err != nil {
		p.measureRefused(w, r, s, id, err)
		return
	}
	values := map[string]string{}
	for _, it := range due.Questionnaire.Items {
		values[it.LinkID] = r.PostForm.Get("item." + it.LinkID)
	}
	c := p.caller(s)
	_, err = p.portal.RecordMeasure(r.Context(), c, id, qid, point, values, p.auditIntent(r, s, "create", "C", http.StatusSeeOther))
	var problems portal.MeasureProblems
	switch {
	case err == nil:
		http.Redirect(w, r, "/portal/referrals/"+url.PathEscape(id)+"?done=measure", http.StatusSeeOther)
	case errors.As(err, &problems):
		p.render(w, r, http.StatusUnprocessableEntity, "measure", page{Title: due.Questionnaire.Title, Session: s,
			Measure: buildMeasureForm(id, due.Questionnaire, point, values, problems)})
	default:
		p.measureRefused(w, r, s, id, err)
	}
}

// measureRefused answers a measure that cannot be recorded: not found, not
// asked or recorded already (back to the referral, saying so), or a failure.
func (p *Pages) measureRefused(w http.ResponseWriter, r *http.Request, s *account.WebSession, id string, err error) {
	e := gateway.AsError(err)
	switch {
	case errors.Is(err, portal.ErrMeasureNotOpen), e.Kind == gateway.KindConflict, e.Kind == gateway.KindUnprocessable:
		if gateway.ValidID(id) && r.Method == http.MethodPost {
			_ = p.audit(r, s, "create", "C", http.StatusConflict, []string{gateway.TypeTask + "/" + id}, "")
		}
		message := "That measure is recorded already, or is not asked of this referral now."
		if r.Method == http.MethodPost {
			message = "Nothing was recorded: that measure is recorded already, or is not asked of this referral now."
		}
		p.showReferral(w, r, s, http.StatusConflict, message)
	default:
		p.failed(w, r, s, err)
	}
}
