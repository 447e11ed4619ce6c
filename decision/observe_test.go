package decision

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// phaseKey marks the context a phase runs with.
type phaseKey struct{}

// recorder is an Observer that writes down what it is told.
type recorder struct{ events []string }

func (r *recorder) StartPhase(ctx context.Context, p Phase) context.Context {
	r.events = append(r.events, "start "+p.String())
	return context.WithValue(ctx, phaseKey{}, p)
}

func (r *recorder) EndPhase(ctx context.Context, p Phase, end PhaseEnd) {
	if got, _ := ctx.Value(phaseKey{}).(Phase); got != p {
		r.events = append(r.events, fmt.Sprintf("end %s with the context of %s", p, got))
		return
	}
	r.events = append(r.events, fmt.Sprintf("end %s candidates=%d suppressed=%d recommendations=%d persona=%q err=%v",
		p, end.Candidates, end.Suppressed, end.Recommendations, end.Persona, end.Err != nil))
}

// phaseLoader checks that the store is asked with the load phase's context.
type phaseLoader struct {
	Loader
	sawLoad bool
}

func (l *phaseLoader) Load(ctx context.Context, id string, at time.Time) (*recipient.State, error) {
	l.sawLoad = ctx.Value(phaseKey{}) == PhaseLoad
	return l.Loader.Load(ctx, id, at)
}

func TestObserverSeesEachPhase(t *testing.T) {
	e := newEngine(t, map[string]*recipient.State{"HCP-1": usCardiologist()})
	loader := &phaseLoader{Loader: e.loader}
	rec := &recorder{}
	e.loader, e.observer = loader, rec
	// Explained: every candidate the gates hold back is listed, so what
	// the scoring took in is what is not.
	res, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 1, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(e.Catalog().Actions)
	allowed := n - len(res.Suppressed)
	want := []string{
		"start load",
		fmt.Sprintf("end load candidates=%d suppressed=0 recommendations=0 persona=\"\" err=false", n),
		"start gates",
		fmt.Sprintf("end gates candidates=%d suppressed=%d recommendations=0 persona=\"\" err=false", n, len(res.Suppressed)),
		"start scoring",
		fmt.Sprintf("end scoring candidates=%d suppressed=0 recommendations=1 persona=\"\" err=false", allowed),
	}
	if fmt.Sprint(rec.events) != fmt.Sprint(want) {
		t.Errorf("observer told\n%q\nwant\n%q", rec.events, want)
	}
	if !loader.sawLoad {
		t.Error("the store was not asked with the load phase's context")
	}

	// A failed load ends its phase with the error, and no other starts.
	rec.events = nil
	e.loader = &snapshots{err: fmt.Errorf("load: %w", arbiter.ErrUnavailable)}
	if _, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 1}); !errors.Is(err, arbiter.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	want = []string{"start load", fmt.Sprintf("end load candidates=%d suppressed=0 recommendations=0 persona=\"\" err=true", n)}
	if fmt.Sprint(rec.events) != fmt.Sprint(want) {
		t.Errorf("failed load: observer told %q, want %q", rec.events, want)
	}
}
