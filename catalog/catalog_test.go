package catalog

import (
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
)

func TestCheck(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	approved := Approval{Status: ApprovalApproved, ID: "MLR-1", ValidFrom: from, ValidUntil: until, Markets: []string{"US"}}
	email := Action{ID: "a", Channel: arbiter.Email, ContentID: "C-1", Audience: arbiter.HCP, Approval: approved}
	us := Recipient{Market: "US", Specialty: "oncology", Audience: arbiter.HCP}
	mid := from.AddDate(0, 6, 0)

	with := func(f func(a *Action)) Action { a := email; f(&a); return a }
	tests := []struct {
		name string
		a    Action
		r    Recipient
		at   time.Time
		want Ineligibility
	}{
		{"approved", email, us, mid, Eligible},
		{"valid from is inclusive", email, us, from, Eligible},
		{"valid until is exclusive", email, us, until, ContentExpired},
		{"one ns before until", email, us, until.Add(-time.Nanosecond), Eligible},
		{"not yet valid", email, us, from.Add(-time.Second), ContentExpired},
		{"other market", email, Recipient{Market: "EU", Audience: arbiter.HCP}, mid, ContentNotApproved},
		{"pending", with(func(a *Action) { a.Approval.Status = ApprovalPending }), us, mid, ContentNotApproved},
		{"withdrawn", with(func(a *Action) { a.Approval.Status = ApprovalWithdrawn }), us, mid, ContentNotApproved},
		{"missing", with(func(a *Action) { a.Approval = Approval{} }), us, mid, ContentNotApproved},
		{"no content needs no approval", with(func(a *Action) { a.ContentID = ""; a.Approval = Approval{} }), us, mid, Eligible},
		{"patient action", with(func(a *Action) { a.Audience = arbiter.Patient }), us, mid, WrongAudience},
		{"specialty", with(func(a *Action) { a.Specialties = []string{"cardiology"} }), us, mid, WrongSpecialty},
		{"action market", with(func(a *Action) { a.Markets = []string{"EU"} }), us, mid, WrongMarket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Check(tt.r, tt.at); got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	ok := `{"id":"a","channel":"email","content_id":"C","purpose":"promotional","audience":"hcp","value":1,
	  "approval":{"status":"approved","valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z","markets":["US"]}}`
	tests := []struct{ name, doc, want string }{
		{"no version", `{"actions":[` + ok + `]}`, "version: required"},
		{"no actions", `{"version":"v"}`, "at least one action"},
		{"unknown field", `{"version":"v","actions":[],"x":1}`, "unknown field"},
		{"duplicate id", `{"version":"v","actions":[` + ok + `,` + ok + `]}`, "duplicate id"},
		{"bad channel", `{"version":"v","actions":[{"id":"a","channel":"fax","purpose":"promotional","audience":"hcp","value":1}]}`, `unknown channel "fax"`},
		{"zero value", `{"version":"v","actions":[{"id":"a","channel":"email","purpose":"promotional","audience":"hcp","value":0}]}`, "value must be > 0"},
		{"content without approval", `{"version":"v","actions":[{"id":"a","channel":"email","content_id":"C","purpose":"promotional","audience":"hcp","value":1}]}`, "needs an approval block"},
		{"approved without window", `{"version":"v","actions":[{"id":"a","channel":"email","content_id":"C","purpose":"promotional","audience":"hcp","value":1,"approval":{"status":"approved","markets":["US"]}}]}`, "needs valid_until"},
		{"approved without markets", `{"version":"v","actions":[{"id":"a","channel":"email","content_id":"C","purpose":"promotional","audience":"hcp","value":1,"approval":{"status":"approved","valid_until":"2027-01-01T00:00:00Z"}}]}`, "needs the markets"},
		{"bad gap", `{"version":"v","min_gap":{"email":"soon"},"actions":[` + ok + `]}`, "min_gap.email"},
		{"set with an unknown action", `{"version":"v","actions":[` + ok + `],"candidate_sets":{"wave":["a","b"]}}`, `candidate_sets["wave"][1]: unknown action id "b"`},
		{"set with a repeat", `{"version":"v","actions":[` + ok + `],"candidate_sets":{"wave":["a","a"]}}`, `candidate_sets["wave"][1]: duplicate action id`},
		{"empty set", `{"version":"v","actions":[` + ok + `],"candidate_sets":{"wave":[]}}`, "at least one action id"},
		{"set name with a space", `{"version":"v","actions":[` + ok + `],"candidate_sets":{"q4 wave":["a"]}}`, "a name must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDemoCatalog(t *testing.T) {
	c := Demo()
	if len(c.Actions) < 50 {
		t.Errorf("demo catalog has %d actions; benchmarks need at least 50", len(c.Actions))
	}
	for i, a := range c.Actions {
		if j, ok := c.Lookup(a.ID); !ok || j != i {
			t.Errorf("Lookup(%q) = %d, %v; want %d", a.ID, j, ok, i)
		}
		if a.Topic != "" && c.Topics[a.TopicIndex] != a.Topic {
			t.Errorf("%s: topic index %d names %q, want %q", a.ID, a.TopicIndex, c.Topics[a.TopicIndex], a.Topic)
		}
	}
	set, ok := c.Set("hcp-email")
	if !ok || len(set) == 0 {
		t.Fatalf("demo candidate set hcp-email: %v, %d actions", ok, len(set))
	}
	for _, ai := range set {
		if a := c.Actions[ai]; a.Channel != arbiter.Email || a.Audience != arbiter.HCP {
			t.Errorf("hcp-email holds %s (%v, %v)", a.ID, a.Channel, a.Audience)
		}
	}
	if _, ok := c.Set("no-such-set"); ok {
		t.Error(`Set("no-such-set") found a set`)
	}
	if c.MinGap[arbiter.Email] != 48*time.Hour {
		t.Errorf("email min gap = %v, want 48h", c.MinGap[arbiter.Email])
	}
}
