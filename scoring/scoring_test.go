package scoring

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/arbiter-nba/arbiter"
)

const testModel = `{
  "version": "t1",
  "channels": {
    "email": {"bias": -1, "weights": {"engagement.email": 0.5, "segment.digital": 1, "topic_affinity": 0.25, "specialty_match": 0.1}},
    "rep_visit": {"bias": 0.5, "weights": {"fatigue.rep_visit": -1, "attr.decile": 0.2, "days_since_contact.rep_visit": 0.01}}
  },
  "context": {"rep_tool": {"rep_visit": 2}},
  "levers": {"purpose": {"medical": 1.5}}
}`

func mustParse(t testing.TB, s string) *Model {
	t.Helper()
	m, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestScoreMatchesFormula(t *testing.T) {
	m := mustParse(t, testModel)
	p := &Profile{Segment: "digital", Attributes: map[string]float64{"decile": 7}}
	p.Engagement[arbiter.Email] = 2
	p.Sent[arbiter.RepVisit] = 1
	p.DaysSinceContact[arbiter.RepVisit] = 400 // capped at MaxDays
	x := m.Vectorize(p, nil)
	sigmoid := func(z float64) float64 { return 1 / (1 + Exp(-z)) }

	tests := []struct {
		name   string
		caller arbiter.CallerKind
		c      Candidate
		want   float64
	}{
		{"email", arbiter.CallerUnspecified,
			Candidate{Channel: arbiter.Email, Purpose: arbiter.Promotional, TopicAffinity: 4, SpecialtyMatch: 1, Value: 2},
			sigmoid(-1+0.5*2+1+0.25*4+0.1) * 2},
		{"email medical lever", arbiter.CallerUnspecified,
			Candidate{Channel: arbiter.Email, Purpose: arbiter.Medical, Value: 1},
			sigmoid(-1+0.5*2+1) * 1.5},
		{"rep visit with rep tool context", arbiter.CallerRepTool,
			Candidate{Channel: arbiter.RepVisit, Purpose: arbiter.Promotional, Value: 3},
			sigmoid(0.5-1+0.2*7+0.01*MaxDays) * 3 * 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Ranker
			r.Reset(m, x, tt.caller)
			got := r.Score(&tt.c).Score
			if math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("score = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRankIsPartialTopKOfFullSort(t *testing.T) {
	m := mustParse(t, testModel)
	x := m.Vectorize(&Profile{Segment: "digital"}, nil)
	var r Ranker
	r.Reset(m, x, arbiter.CallerRepTool)
	rng := rand.New(rand.NewPCG(1, 2))
	cands := make([]Candidate, 500)
	for i := range cands {
		ch := arbiter.Email
		if i%3 == 0 {
			ch = arbiter.RepVisit
		}
		cands[i] = Candidate{Action: int32(i), Channel: ch, Purpose: arbiter.Promotional,
			TopicAffinity: rng.Float64() * 3, Value: 1 + float64(rng.IntN(5))}
	}
	// Reference: score all, stable sort by score desc (index asc on ties).
	all := make([]Scored, len(cands))
	for i := range cands {
		all[i] = r.Score(&cands[i])
		all[i].Candidate = int32(i)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Score > all[j].Score })

	for _, k := range []int{1, 3, 10, 499, 500, 600} {
		got := r.Rank(cands, k, make([]Scored, 0, k))
		want := all[:min(k, len(all))]
		if len(got) != len(want) {
			t.Fatalf("k=%d: got %d results, want %d", k, len(got), len(want))
		}
		for i := range want {
			if got[i].Candidate != want[i].Candidate || got[i].Score != want[i].Score {
				t.Fatalf("k=%d: result %d = candidate %d (%v), want %d (%v)", k, i,
					got[i].Candidate, got[i].Score, want[i].Candidate, want[i].Score)
			}
		}
	}
	if got := r.Rank(cands, 0, nil); len(got) != 0 {
		t.Errorf("k=0: got %d results, want 0", len(got))
	}
}

func TestRankDoesNotAllocate(t *testing.T) {
	m := Demo()
	x, cands := benchInput(m, 1000)
	var r Ranker
	top := make([]Scored, 0, 10)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(m, x, arbiter.CallerRepTool)
		top = r.Rank(cands, 10, top)
	})
	if allocs != 0 {
		t.Errorf("Rank allocates %v times per call, want 0", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { x = m.Vectorize(&Profile{}, x) }); allocs != 0 {
		t.Errorf("Vectorize allocates %v times per call, want 0", allocs)
	}
}

func TestExplain(t *testing.T) {
	m := mustParse(t, testModel)
	p := &Profile{Segment: "digital"}
	p.Engagement[arbiter.Email] = 4
	x := m.Vectorize(p, nil)
	var r Ranker
	r.Reset(m, x, arbiter.CallerUnspecified)
	c := Candidate{Channel: arbiter.Email, TopicAffinity: 2, Value: 1}
	got := r.Explain(&c, 2)
	want := []Contribution{{"engagement.email", 2}, {"segment.digital", 1}}
	if len(got) != len(want) {
		t.Fatalf("Explain = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Explain[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if all := r.Explain(&c, 10); len(all) != 3 || all[2] != (Contribution{FeatureTopicAffinity, 0.5}) {
		t.Errorf("Explain(10) = %v, want 3 non-zero contributions ending with topic_affinity 0.5", all)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, model, want string }{
		{"not json", `{`, "parse model"},
		{"unknown field", `{"version":"v","channels":{"email":{"bias":0}},"extra":1}`, "unknown field"},
		{"no version", `{"channels":{"email":{"bias":0}}}`, "version: required"},
		{"no channels", `{"version":"v"}`, "at least one channel"},
		{"unknown channel", `{"version":"v","channels":{"fax":{"bias":0}}}`, "channels.fax: unknown channel"},
		{"unknown feature", `{"version":"v","channels":{"email":{"weights":{"shoe_size":1}}}}`, "shoe_size: unknown feature"},
		{"feature channel", `{"version":"v","channels":{"email":{"weights":{"engagement.fax":1}}}}`, `unknown channel "fax"`},
		{"huge weight", `{"version":"v","channels":{"email":{"weights":{"engagement.email":1000}}}}`, "within +-100"},
		{"bad context", `{"version":"v","channels":{"email":{}},"context":{"rep_tool":{"email":0}}}`, "weight must be > 0"},
		{"bad caller", `{"version":"v","channels":{"email":{}},"context":{"robot":{"email":1}}}`, "unknown caller kind"},
		{"bad lever", `{"version":"v","channels":{"email":{}},"levers":{"purpose":{"fun":1}}}`, "unknown purpose"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.model))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDemoModelScoresEveryChannel(t *testing.T) {
	m := Demo()
	for _, ch := range arbiter.Channels() {
		if !m.Scores(ch) {
			t.Errorf("demo model does not score %s", ch)
		}
	}
}

func benchInput(m *Model, n int) ([]float64, []Candidate) {
	p := &Profile{Segment: "digital_savvy", Specialty: "cardiology", Attributes: map[string]float64{"decile": 6}}
	for ch := range p.Engagement {
		p.Engagement[ch] = float64(ch) / 3
		p.DaysSinceContact[ch] = float64(ch * 7)
	}
	x := m.Vectorize(p, nil)
	rng := rand.New(rand.NewPCG(7, 7))
	chs := arbiter.Channels()
	cands := make([]Candidate, n)
	for i := range cands {
		cands[i] = Candidate{Action: int32(i), Channel: chs[rng.IntN(len(chs))], Purpose: arbiter.Promotional,
			TopicAffinity: rng.Float64() * 2, SpecialtyMatch: float64(rng.IntN(2)), Value: 0.5 + rng.Float64()*5}
	}
	return x, cands
}

func benchmarkRank(b *testing.B, n int) {
	m := Demo()
	x, cands := benchInput(m, n)
	var r Ranker
	top := make([]Scored, 0, 3)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(m, x, arbiter.CallerRepTool)
		top = r.Rank(cands, 3, top)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/candidate")
}

func BenchmarkRank50(b *testing.B)   { benchmarkRank(b, 50) }
func BenchmarkRank1000(b *testing.B) { benchmarkRank(b, 1000) }

// Medical actions are scored with the channel's medical block when it has
// one, on the medical allowlist's features alone; a medical block naming
// anything else is refused, and so is an allowlist that lets commercial
// features in.
func TestMedicalAllowlist(t *testing.T) {
	m := mustParse(t, `{"version": "t", "channels": {
		"email": {"bias": -1, "weights": {"engagement.email": 0.5, "attr.decile": 0.3},
			"medical": {"bias": -2, "weights": {"engagement.email": 0.25}}},
		"rep_visit": {"bias": 0, "weights": {"attr.decile": 0.2, "segment.x": 1, "fatigue.rep_visit": -1}}}}`)
	if got := m.MedicalViolations(arbiter.Email); got != nil {
		t.Errorf("email has a medical block, violations %v", got)
	}
	if got := strings.Join(m.MedicalViolations(arbiter.RepVisit), ","); got != "attr.decile,segment.x" {
		t.Errorf("rep_visit violations %q, want attr.decile,segment.x", got)
	}
	p := &Profile{Attributes: map[string]float64{"decile": 9}}
	p.Engagement[arbiter.Email] = 2
	var r Ranker
	r.Reset(m, m.Vectorize(p, nil), arbiter.CallerUnspecified)
	sigmoid := func(z float64) float64 { return 1 / (1 + Exp(-z)) }
	if got, want := r.Score(&Candidate{Channel: arbiter.Email, Purpose: arbiter.Medical, Value: 1}).Score, sigmoid(-2+0.25*2); got != want {
		t.Errorf("medical email scored %v, want %v (the medical block)", got, want)
	}
	if got, want := r.Score(&Candidate{Channel: arbiter.Email, Purpose: arbiter.Promotional, Value: 1}).Score, sigmoid(-1+0.5*2+0.3*9); got != want {
		t.Errorf("promotional email scored %v, want %v (the main block)", got, want)
	}
	if c := r.Explain(&Candidate{Channel: arbiter.Email, Purpose: arbiter.Medical}, 5); len(c) != 1 || c[0].Feature != "engagement.email" {
		t.Errorf("medical email explained as %v, want engagement.email alone", c)
	}

	for _, bad := range []struct{ model, want string }{
		{`{"version": "t", "channels": {"email": {"weights": {}, "medical": {"weights": {"attr.decile": 1}}}}}`,
			"channels.email.medical.weights.attr.decile: not on the medical allowlist"},
		{`{"version": "t", "channels": {"email": {"weights": {}}}, "allowlist": {"medical": ["segment.scientific_first"]}}`,
			`"segment.scientific_first" is commercial`},
		{`{"version": "t", "channels": {"email": {"weights": {}}}, "allowlist": {"medical": ["attr.*"]}}`,
			`"attr.*" is commercial`},
		{`{"version": "t", "channels": {"email": {"weights": {}}}, "allowlist": {"promotional": ["attr.*"]}}`,
			"only the medical purpose"},
	} {
		_, err := Parse([]byte(bad.model))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Parse(%s) = %v, want an error saying %q", bad.model, err, bad.want)
		}
	}
	// A vetted attribute may be allowed by name.
	m = mustParse(t, `{"version": "t", "channels": {"email": {"weights": {"attr.trials": 1}}}, "allowlist": {"medical": ["attr.trials"]}}`)
	if got := m.MedicalViolations(arbiter.Email); got != nil {
		t.Errorf("attr.trials allowed by name, violations %v", got)
	}
}
