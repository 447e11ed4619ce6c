package decision

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
	"github.com/arbiter-nba/arbiter/scoring"
)

var channelLabels = [arbiter.NumChannels]string{
	arbiter.Email: "email", arbiter.SMS: "SMS", arbiter.Push: "push notification",
	arbiter.RepVisit: "rep visit", arbiter.RemoteVisit: "remote rep visit",
	arbiter.MSLMeeting: "MSL meeting", arbiter.Webinar: "webinar", arbiter.Portal: "portal content",
	arbiter.DirectMail: "direct mail", arbiter.InApp: "in-app message", arbiter.Chatbot: "chatbot hand-off",
}

func label(c arbiter.Channel) string {
	if l := channelLabels[c]; l != "" {
		return l
	}
	return c.String()
}

// sentence is the one line a rep reads next to a recommendation: what,
// and the strongest reasons that pushed it up (or the caveat that held it
// back), in plain words.
func sentence(a *catalog.Action, contribs []scoring.Contribution, snap *recipient.State, at time.Time, cat *catalog.Catalog) string {
	var b strings.Builder
	b.WriteString(capitalize(label(a.Channel)))
	if a.Topic != "" {
		b.WriteString(" on ")
		b.WriteString(humanize(a.Topic))
	}
	var pros, cons []string
	for _, c := range contribs {
		phrase := describe(c, a, snap, at)
		if phrase == "" {
			continue
		}
		if c.Weight > 0 {
			pros = append(pros, phrase)
		} else {
			cons = append(cons, phrase)
		}
	}
	if len(pros) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(pros, " and "))
	}
	if len(cons) > 0 {
		if len(pros) > 0 {
			b.WriteString("; held back because ")
		} else {
			b.WriteString(": best available, though ")
		}
		b.WriteString(strings.Join(cons, " and "))
	}
	b.WriteString(".")
	return b.String()
}

// describe turns one contribution into words about the HCP ("they").
func describe(c scoring.Contribution, a *catalog.Action, snap *recipient.State, at time.Time) string {
	kind, arg, _ := strings.Cut(c.Feature, ".")
	up := c.Weight > 0
	switch kind {
	case "engagement":
		ch, _ := arbiter.ParseChannel(arg)
		if up {
			return fmt.Sprintf("they engage with %s", plural(label(ch)))
		}
		return fmt.Sprintf("they rarely engage with %s", plural(label(ch)))
	case "fatigue":
		ch, _ := arbiter.ParseChannel(arg)
		return fmt.Sprintf("they have had %.0f %s recently", math.Round(snap.Counters.Sent[ch]), plural(label(ch)))
	case "days_since_contact":
		ch, _ := arbiter.ParseChannel(arg)
		last := snap.Counters.LastContact[ch]
		if last.IsZero() {
			return fmt.Sprintf("they have had no %s yet", label(ch))
		}
		return fmt.Sprintf("their last %s was %s ago", label(ch), roundDuration(at.Sub(last)))
	case "days_since_engagement":
		if snap.Counters.LastEngagement.IsZero() {
			return "they have not engaged yet"
		}
		return fmt.Sprintf("they last engaged %s ago", roundDuration(at.Sub(snap.Counters.LastEngagement)))
	case "segment":
		if up {
			return fmt.Sprintf("it suits their %s profile", humanize(arg))
		}
		return fmt.Sprintf("their %s profile prefers other channels", humanize(arg))
	case "specialty":
		return fmt.Sprintf("it fits %s", humanize(arg))
	case "attr":
		return fmt.Sprintf("their %s is %g", humanize(arg), snap.Profile.Attributes[arg])
	case scoring.FeatureTopicAffinity:
		if up {
			return fmt.Sprintf("they have been reading about %s", humanize(a.Topic))
		}
		return fmt.Sprintf("they show little interest in %s", humanize(a.Topic))
	case scoring.FeatureSpecialtyMatch:
		return fmt.Sprintf("it is made for %s", humanize(snap.Profile.Specialty))
	}
	return ""
}

func humanize(s string) string { return strings.ReplaceAll(s, "_", " ") }

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func plural(s string) string {
	switch {
	case strings.HasSuffix(s, "mail"), strings.HasSuffix(s, "content"), s == "SMS":
		return s
	}
	return s + "s"
}

// roundDuration renders a duration the way people say it: "3 days", "5 hours".
func roundDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= time.Hour:
		return "1 hour"
	default:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
}

// journeySentence names the journey step a recommendation is ("; step 3
// of 'Glucanor launch': ...").
func journeySentence(js *JourneyStep) string {
	if js == nil {
		return ""
	}
	return "; " + js.Sentence()
}

// firewallSentence names the medical/commercial firewall's check on a
// medical recommendation: the model scored it on the medical allowlist's
// features alone (definitions refuse a model that would not), and no
// commercial signal could select or boost it past a medical one.
func firewallSentence(a *catalog.Action) string {
	if a.Purpose != arbiter.Medical {
		return ""
	}
	return " Firewall: medical content, scored without prescribing potential or commercial segment."
}

// ruleSentence names, after a recommendation's reason, the rules that
// boosted or demoted it, in their own words ("; they clicked efficacy
// content: the next content on it builds on that interest").
func ruleSentence(applied []rules.Applied, a *catalog.Action) string {
	var b strings.Builder
	for i := range applied {
		ap := &applied[i]
		if (ap.Rule.Effect == rules.Boost || ap.Rule.Effect == rules.Demote) && ap.Matches(a) {
			b.WriteString("; ")
			b.WriteString(ap.Rule.Description)
		}
	}
	return b.String()
}
