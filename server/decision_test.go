package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/scoring"
)

// oneHCP is an in-memory decision.Loader holding one demo HCP: the
// handler's own cost is measured here; the store's is measured against
// redis-server in redisstore/.
type oneHCP struct{ snap *recipient.State }

func (o oneHCP) Load(_ context.Context, id string, _ time.Time) (*recipient.State, error) {
	if id != o.snap.Profile.HCPID {
		return nil, fmt.Errorf("load: %w", arbiter.ErrNotFound)
	}
	return o.snap, nil
}

// BenchmarkDecideHandler measures what the server does per Decide besides
// loading: validation, the engine, building the response and encoding it
// with the server's codec, and with metrics on, recording them. The demo
// catalog's whole 77 actions are the candidates.
func BenchmarkDecideHandler(b *testing.B) {
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	item := demo.HCP(42, at)
	snap := &recipient.State{Profile: item.Profile, Counters: *item.Counters,
		Consent: consent.State{Complete: true, Records: item.Consent}}
	e, err := decision.New(oneHCP{snap}, scoring.Demo(), catalog.Demo(), consent.DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	plain, err := New(e, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	metered, err := New(e, nil, nil, WithMetrics(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	codec := newCodec()
	for _, tc := range []struct {
		explain bool
		s       *Server
	}{{false, plain}, {true, plain}, {false, metered}} {
		explain, s := tc.explain, tc.s
		b.Run(fmt.Sprintf("explain=%v/metrics=%v", explain, s.metrics != nil), func(b *testing.B) {
			req := &nbapb.DecideRequest{HcpId: item.Profile.HCPID, Limit: 3, Explain: explain,
				Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL}}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := s.Decide(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				buf, err := codec.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				buf.Free()
			}
		})
	}
}
