package decision_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	_ "github.com/arbiter-nba/arbiter/celrules"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/recipient"
)

type states map[string]*recipient.State

func (s states) Load(_ context.Context, id string, _ time.Time) (*recipient.State, error) {
	st, ok := s[id]
	if !ok {
		return nil, arbiter.ErrNotFound
	}
	return st, nil
}

// The medical/commercial firewall, differentially: randomise every
// commercial feature of a recipient (prescribing potential and every other
// attribute, the commercial segment, engagement with reps, and events on
// promotional content, which rules, personas and journeys read), and the
// medical decision (which medical actions rank, in which order, with which
// scores and reasons) must not move. (Promotional touches are not
// randomised: caps and gaps count every touch, whatever its purpose, as
// the contact policy means them to.) Over the demo population and the demo definitions
// (catalog, model, rules, personas, contact policy), many times over.
func TestMedicalDecisionsIgnoreCommercialFeatures(t *testing.T) {
	defs := definitions.Demo()
	var medical []string
	for i := range defs.Catalog.Actions {
		if a := &defs.Catalog.Actions[i]; a.Purpose == arbiter.Medical {
			medical = append(medical, a.ID)
		}
	}
	if len(medical) < 10 {
		t.Fatalf("the demo catalog has %d medical actions; the test needs them", len(medical))
	}
	var promotional []*catalog.Action
	for i := range defs.Catalog.Actions {
		if a := &defs.Catalog.Actions[i]; a.Purpose == arbiter.Promotional {
			promotional = append(promotional, a)
		}
	}
	commercialEvents := []arbiter.EventType{arbiter.EventOpened, arbiter.EventClicked, arbiter.EventAttended, arbiter.EventNoShow,
		arbiter.EventRegistered, arbiter.EventVideoWatched, arbiter.EventDownload}
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(13, 17))
	segments := []string{"", "digital_savvy", "traditional", "scientific_first", "low_engagement"}
	var compared, ranked int
	for i := 1; i <= 200; i++ {
		item := demo.HCP(i, now)
		base := stateOf(item)
		for round := range 5 {
			alt := stateOf(item)
			alt.Profile.Attributes = map[string]float64{"decile": float64(r.IntN(11)), "writes": r.Float64() * 100}
			alt.Profile.Segment = segments[r.IntN(len(segments))]
			for _, ch := range []arbiter.Channel{arbiter.RepVisit, arbiter.RemoteVisit, arbiter.DirectMail} {
				alt.Counters.Engagement[ch] = r.Float64() * 5
			}
			// Commercial activity: events on promotional content (opens,
			// clicks, attendances, no-shows), which rules and journeys read.
			for range r.IntN(15) {
				a := promotional[r.IntN(len(promotional))]
				alt.Recent = append(alt.Recent, recipient.RecentEvent{At: now.Add(-time.Duration(1+r.IntN(30*24)) * time.Hour),
					Type: commercialEvents[r.IntN(len(commercialEvents))], Channel: a.Channel, ActionID: a.ID, Topic: a.Topic})
			}
			got := decideMedical(t, defs, base, medical, now)
			want := decideMedical(t, defs, alt, medical, now)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s, round %d: commercial features moved the medical decision:\n%v\nwith them changed:\n%v",
					item.Profile.HCPID, round, got, want)
			}
			compared++
			if len(got) > 0 {
				ranked++
			}
		}
	}
	// The comparison means something only if medical actions rank.
	if ranked < compared/2 {
		t.Fatalf("only %d of %d medical decisions recommended anything", ranked, compared)
	}
}

// The commercial features do move promotional decisions: the test above
// would catch a leak, because the features it randomises matter.
func TestCommercialFeaturesMovePromotionalScores(t *testing.T) {
	defs := definitions.Demo()
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	item := demo.HCP(7, now)
	a, b := stateOf(item), stateOf(item)
	a.Profile.Attributes = map[string]float64{"decile": 1}
	b.Profile.Attributes = map[string]float64{"decile": 10}
	e, err := decision.New(states{"A": a, "B": b}, defs.Model, defs.Catalog, defs.Policy, decision.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	var promotional []string
	for i := range defs.Catalog.Actions {
		if a := &defs.Catalog.Actions[i]; a.Purpose == arbiter.Promotional && a.Channel == arbiter.RepVisit {
			promotional = append(promotional, a.ID)
		}
	}
	score := func(id string) float64 {
		res, err := e.Decide(context.Background(), decision.Request{HCPID: id, Limit: 1, Candidates: promotional})
		if err != nil || len(res.Recommendations) != 1 {
			t.Fatalf("Decide: %v %+v", err, res)
		}
		return res.Recommendations[0].Score
	}
	if sa, sb := score("A"), score("B"); sa == sb {
		t.Fatalf("decile 1 and 10 score promotional rep visits the same (%v): the model does not use it", sa)
	}
}

type medicalRank struct {
	ID    string
	Score float64
	Why   string
}

func decideMedical(t *testing.T, defs *definitions.Set, st *recipient.State, candidates []string, now time.Time) []medicalRank {
	t.Helper()
	e, err := decision.New(states{"R": st}, defs.Model, defs.Catalog, defs.Policy,
		decision.WithClock(func() time.Time { return now }), decision.WithContactPolicy(defs.Contact), decision.WithRules(defs.Rules))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Decide(context.Background(), decision.Request{HCPID: "R", Limit: 5, Candidates: candidates, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []medicalRank
	for _, rec := range res.Recommendations {
		out = append(out, medicalRank{rec.Action.ID, rec.Score, fmt.Sprint(rec.Reason, rec.Contributions, rec.Rules)})
	}
	return out
}

func stateOf(item recipient.ImportItem) *recipient.State {
	st := &recipient.State{Profile: item.Profile, Counters: *item.Counters}
	st.Profile.Attributes = map[string]float64{}
	for k, v := range item.Profile.Attributes {
		st.Profile.Attributes[k] = v
	}
	st.Consent = consent.State{Complete: item.ConsentComplete, Records: item.Consent}
	st.Touches.Touches = item.Touches
	return st
}
