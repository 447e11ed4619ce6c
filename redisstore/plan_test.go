package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// A new per-recipient key that a decision needs is one entry in readPlan
// (plan.go) plus its suffix in keys.go; this test and
// TestOneRedisRoundTripPerDecide (cmd/arbiter) keep the decision at one
// Redis round trip. Add the new entry's case to planCases below: an entry
// without one fails TestReadPlan.

// planCase says, for one readPlan entry, how to put data in its key (with
// plain Redis commands, not through the Store) and where that data must
// show up in the loaded State.
type planCase struct {
	seed  func(ctx context.Context, rdb redis.UniversalClient, key string) error
	check func(st *recipient.State) string // "" when the seeded data is there
}

// planRecord is the consent record TestReadPlan stores.
var planRecord = withAddress(rec(arbiter.Email, arbiter.Medical, consent.OptIn, t0), "addr-e-1")

// planCases holds a case per readPlan suffix.
var planCases = map[string]planCase{
	suffixProfile: {
		seed: func(ctx context.Context, rdb redis.UniversalClient, key string) error {
			return rdb.HSet(ctx, key, fMarket, "DE", fAudience, "hcp", fSpecialty, "oncology",
				pAttribute+"decile", "7", fCounterTime, ms(t0), pEngagement+"email", "3").Err()
		},
		check: func(st *recipient.State) string {
			if st.Profile.Market != "DE" || st.Profile.Specialty != "oncology" || st.Profile.Attributes["decile"] != 7 {
				return fmt.Sprintf("profile = %+v, want the seeded market, specialty and decile", st.Profile)
			}
			if st.Counters.Engagement[arbiter.Email] != 3 || !st.Counters.AsOf.Equal(t0) {
				return fmt.Sprintf("counters = %+v, want email engagement 3 as of t0", st.Counters)
			}
			return ""
		},
	},
	suffixConsent: {
		seed: func(ctx context.Context, rdb redis.UniversalClient, key string) error {
			return rdb.HSet(ctx, key, consentField(&planRecord), consentValue(&planRecord), completeField, ms(t0)).Err()
		},
		check: func(st *recipient.State) string {
			want := consent.State{Complete: true, CompleteAt: t0, Records: []consent.Record{planRecord}}
			if st.ConsentErr != nil || !reflect.DeepEqual(st.Consent, want) {
				return fmt.Sprintf("consent = %+v (error %v), want %+v", st.Consent, st.ConsentErr, want)
			}
			return ""
		},
	},
	suffixTouches: {
		seed: func(ctx context.Context, rdb redis.UniversalClient, key string) error {
			return rdb.RPush(ctx, key, "h|0|1|7", encodeTouch(&planTouch)).Err()
		},
		check: func(st *recipient.State) string {
			want := contact.Ledger{Touches: []contact.Touch{planTouch}, Version: 7}
			if !reflect.DeepEqual(st.Touches, want) {
				return fmt.Sprintf("touches = %+v, want %+v", st.Touches, want)
			}
			return ""
		},
	},
	suffixHistory: {
		seed: func(ctx context.Context, rdb redis.UniversalClient, key string) error {
			e := recipient.Event{Type: planEvent.Type, Channel: planEvent.Channel, ActionID: planEvent.ActionID, Topic: planEvent.Topic}
			return rdb.LPush(ctx, key, historyEntry(e, t0.UnixMilli(), "feed-1")).Err()
		},
		check: func(st *recipient.State) string {
			if !reflect.DeepEqual(st.Recent, []recipient.RecentEvent{planEvent}) {
				return fmt.Sprintf("recent = %+v, want %+v", st.Recent, planEvent)
			}
			return ""
		},
	},
}

// planEvent is the event TestReadPlan stores in the history.
var planEvent = recipient.RecentEvent{At: t0, Type: arbiter.EventClicked, Channel: arbiter.Email, ActionID: "email-x", Topic: "efficacy"}

// planTouch is the touch TestReadPlan stores: a pipe in the topic, which
// the format escapes.
var planTouch = contact.Touch{At: t0, Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "a|b%c",
	ActionID: "email-x", MessageID: "m-1", State: contact.Sent}

// TestReadPlan checks that Load reads every entry of the read plan, each
// key once, in one pipeline (one round trip, also when auto-pipelined, and
// on a cluster, where the keys share the recipient's slot), and that each
// entry's data shows up in the State.
func TestReadPlan(t *testing.T) { eachBackend(t, testReadPlan) }

func testReadPlan(t *testing.T, b redistest.Backend) {
	var suffixes []string
	for _, e := range readPlan {
		if _, ok := planCases[e.suffix]; !ok {
			t.Errorf("readPlan entry %q has no case in planCases (plan_test.go): add one", e.suffix)
		}
		if slices.Contains(suffixes, e.suffix) {
			t.Errorf("readPlan reads %q twice", e.suffix)
		}
		suffixes = append(suffixes, e.suffix)
	}
	if len(planCases) != len(readPlan) {
		t.Errorf("planCases has %d cases for %d readPlan entries, want one case per entry", len(planCases), len(readPlan))
	}
	if readPlan[0].suffix != suffixProfile {
		t.Errorf("readPlan starts with %q, want the profile (it alone decides whether the recipient exists)", readPlan[0].suffix)
	}
	if t.Failed() {
		return
	}

	stores := []struct {
		name string
		opts []Option
	}{
		{"plain", nil},
		{"auto-pipelined", []Option{WithAutoPipeline(1, 8, 5*time.Second)}},
	}
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			s, rdb, _ := newStoreOn(t, b, sc.opts...)
			t.Cleanup(s.Close)
			ctx := context.Background()

			// ReadKeys, which the HCP cache uses, names the same keys.
			keyPrefix, readSuffixes := s.ReadKeys()
			if !reflect.DeepEqual(readSuffixes, suffixes) {
				t.Errorf("ReadKeys() suffixes = %q, want %q", readSuffixes, suffixes)
			}
			var want []string
			for _, suffix := range suffixes {
				key := s.key("hcp-1", suffix)
				if got := keyPrefix + "hcp-1}" + suffix; got != key {
					t.Errorf("ReadKeys() gives the key %q, want %q", got, key)
				}
				if err := planCases[suffix].seed(ctx, rdb, key); err != nil {
					t.Fatalf("seed %s: %v", suffix, err)
				}
				want = append(want, key)
			}
			slices.Sort(want)

			// Warm the pools (on a cluster, of the recipient's node): a new
			// connection's handshake (HELLO, CLIENT SETINFO) also passes
			// through the hooks, and is not the load's doing.
			for _, id := range []string{"hcp-1", "hcp-404"} {
				if _, err := s.Load(ctx, id, t0); err != nil && !errors.Is(err, arbiter.ErrNotFound) {
					t.Fatal(err)
				}
			}
			h := &redistest.RoundTrips{}
			h.AddToNodes(t, rdb)

			for _, id := range []string{"hcp-1", "hcp-404"} {
				h.Reset()
				st, err := s.Load(ctx, id, t0)
				if got, dials := h.N(), h.Dials(); got != 1 || dials != 0 {
					t.Errorf("Load(%s) made %d round trips and %d dials, want 1 and 0", id, got, dials)
				}
				wantKeys := want
				if id != "hcp-1" {
					wantKeys = nil
					for _, suffix := range suffixes {
						wantKeys = append(wantKeys, s.key(id, suffix))
					}
					slices.Sort(wantKeys)
				}
				if got := h.PipelinedKeys(); !reflect.DeepEqual(got, wantKeys) {
					t.Errorf("Load(%s) read the keys %q in its pipeline, want %q", id, got, wantKeys)
				}
				if id != "hcp-1" {
					if !errors.Is(err, arbiter.ErrNotFound) {
						t.Errorf("Load(%s) error = %v, want ErrNotFound", id, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Load(%s): %v", id, err)
				}
				for _, suffix := range suffixes {
					if msg := planCases[suffix].check(st); msg != "" {
						t.Errorf("entry %s: %s", suffix, msg)
					}
				}
			}
		})
	}
}
