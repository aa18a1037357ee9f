package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserRecordsAMeasureWithTheKeyboard: the inbox's outcome measure
// form in a real browser, with JavaScript off, used with the keyboard
// alone (Tab to the link and to each question, arrow keys to the answer,
// Enter to send), and on a 360px phone where every answer is a target
// large enough to tap and nothing scrolls sideways.
func TestBrowserRecordsAMeasureWithTheKeyboard(t *testing.T) {
	t.Parallel()
	alloc := browserAllocator(t)
	srv, _ := portalServer(t)
	base := srv.base
	task := referPerson(t, base, "MEASURE-1", "390893007", "Ali Khan", "0113 496 0021")

	sam := newBrowser(t, alloc)
	must(t, chromedp.Do(sam, withoutScripts(), signIn(base, "sam@example.org"), chromedp.WaitVisible(chromedp.CSS("table.referrals")),
		actOn(base, task, "accept")))
	formPath := "/portal/referrals/" + task + "/measures/ons4/first-contact"

	// Tab from the top of the referral page to the ONS4 link, and follow it.
	must(t, chromedp.Do(sam, chromedp.Navigate(base+"/portal/referrals/"+task), chromedp.WaitVisible(chromedp.CSS("h1"))))
	reached := false
	for range 40 {
		must(t, chromedp.Do(sam, chromedp.KeyEvent("\t")))
		if evaluate[bool](t, sam, `document.activeElement.matches('a[href="`+formPath+`"]')`) {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatal("Tab never reaches the link to record ONS4")
	}
	must(t, chromedp.Do(sam, chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("form.measure"))))
	checkAccessible(t, sam, "the measure form")
	screenshot(t, sam, "measure.png")

	// Each question: Tab into its radio group, then arrow keys choose.
	answers := map[string]int{"life-satisfaction": 3, "worthwhile": 4, "happiness": 5, "anxiety": 8}
	for _, link := range []string{"life-satisfaction", "worthwhile", "happiness", "anxiety"} {
		for range 10 {
			must(t, chromedp.Do(sam, chromedp.KeyEvent("\t")))
			if evaluate[bool](t, sam, `document.activeElement.name === 'item.`+link+`'`) {
				break
			}
		}
		if got := evaluate[string](t, sam, `document.activeElement.name`); got != "item."+link {
			t.Fatalf("Tab reached %q, not the question %s", got, link)
		}
		for range answers[link] {
			must(t, chromedp.Do(sam, chromedp.KeyEvent(kb.ArrowRight)))
		}
		if got := evaluate[string](t, sam, `document.querySelector('input[name="item.`+link+`"]:checked').value`); got != strconv.Itoa(answers[link]) {
			t.Errorf("%s: the keyboard chose %s, want %d", link, got, answers[link])
		}
	}
	// Tab on to the button, and send with Enter.
	for range 5 {
		must(t, chromedp.Do(sam, chromedp.KeyEvent("\t")))
		if evaluate[bool](t, sam, `document.activeElement.matches('form.measure button')`) {
			break
		}
	}
	must(t, chromedp.Do(sam, chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(".message"))))
	if msg := text(t, sam, ".message"); !strings.Contains(msg, "Answers recorded") {
		t.Errorf("after sending: %q", msg)
	}
	if section := text(t, sam, "ul.measures"); !strings.Contains(section, "ONS4 life satisfaction 3") || !strings.Contains(section, "ONS4 anxiety yesterday 8") {
		t.Errorf("the referral page's measures: %q", section)
	}
	// The API holds the same: the Task names four scores.
	var got struct {
		Output []struct {
			ValueReference struct{ Reference string }
		}
	}
	getJSON(t, base+"/fhir/Task/"+task, &got)
	scores := 0
	for _, o := range got.Output {
		if strings.HasPrefix(o.ValueReference.Reference, "Observation/") {
			scores++
		}
	}
	if scores != 4 {
		t.Errorf("the Task names %d scores, want 4", scores)
	}

	// On a phone: the UCLA form at completion fits, and every answer is a
	// target at least 44px high.
	must(t, chromedp.Do(sam, actOn(base, task, "first-session"), chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/portal/referrals/"+task+"/measures/ucla3/completion"), chromedp.WaitVisible(chromedp.CSS("form.measure"))))
	fitsTheScreen(t, sam, "the UCLA form")
	checkAccessible(t, sam, "the UCLA form on a phone")
	small := evaluate[[]string](t, sam, `[...document.querySelectorAll('form.measure .choice')].filter(c => c.getBoundingClientRect().height < 44).map(c => c.textContent.trim())`)
	if len(small) > 0 {
		t.Errorf("answers smaller than a finger: %q", small)
	}
	screenshot(t, sam, "measure-phone.png")
	must(t, chromedp.Do(sam, chromedp.Navigate(base+"/portal/referrals/"+task+"/measures/ons4/completion"), chromedp.WaitVisible(chromedp.CSS("form.measure"))))
	fitsTheScreen(t, sam, "the ONS4 form")
	must(t, chromedp.Do(sam, chromedp.EmulateReset()))
}
