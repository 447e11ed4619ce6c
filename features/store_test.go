package features

import (
	"context"
	"errors"
	"math"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// backends are the Redis deployments the store suite runs on: a single
// redis-server and a Redis Cluster of 3 masters with a replica each.
var backends []redistest.Backend

func TestMain(m *testing.M) { os.Exit(redistest.MainBackends(m, &backends)) }

// eachBackend runs test once per backend, as a subtest named after it.
func eachBackend(t *testing.T, test func(t *testing.T, b redistest.Backend)) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { test(t, b) })
	}
}

const (
	day      = 24 * time.Hour
	halfLife = 30 * day
	eps      = 1e-9
)

// t0 is the start of every test's clock.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newStoreOn returns a store on backend b, with a key prefix of its own and
// a clock set to t0.
func newStoreOn(t testing.TB, b redistest.Backend, opts ...Option) (*Store, redis.UniversalClient, *clock) {
	t.Helper()
	rdb, prefix := b.Client(t)
	c := &clock{t: t0}
	opts = append([]Option{WithPrefix(prefix), WithClock(c.now), WithHalfLife(halfLife)}, opts...)
	return NewStore(rdb, opts...), rdb, c
}

// newStore returns a store on the single redis-server, for tests that are
// not about the deployment (miniredis parity, benchmarks).
func newStore(t testing.TB, opts ...Option) (*Store, redis.UniversalClient, *clock) {
	t.Helper()
	return newStoreOn(t, backends[0], opts...)
}

func hcpProfile(id string) Profile {
	p := Profile{
		HCPID:     id,
		Specialty: "oncology",
		Market:    "DE",
		Audience:  arbiter.HCP,
		Segment:   "scientific_first",
		TimeZone:  "Europe/Berlin",
		Attributes: map[string]float64{
			"decile":    7,
			"rx.volume": 12.5,
		},
		UpdatedAt: t0.Add(-day),
	}
	p.Addresses[arbiter.Email] = "addr-e-1"
	p.Addresses[arbiter.SMS] = "addr-s-1"
	return p
}

func optIn(ch arbiter.Channel, purpose arbiter.Purpose, at time.Time) consent.Record {
	return consent.Record{
		Channel: ch, Purpose: purpose, Status: consent.OptIn,
		CapturedAt: at, Source: "veeva", CapturedBy: "crm-sync",
	}
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func near(a, b float64) bool { return math.Abs(a-b) <= eps }

// diffCounters describes how got differs from want ("" when equal, floats
// within eps).
func diffCounters(got, want Counters) string {
	var d []string
	for ch := 0; ch < arbiter.NumChannels; ch++ {
		name := arbiter.Channel(ch).String()
		if !near(got.Engagement[ch], want.Engagement[ch]) {
			d = append(d, "engagement["+name+"] = "+formatFloat(got.Engagement[ch])+", want "+formatFloat(want.Engagement[ch]))
		}
		if !near(got.Sent[ch], want.Sent[ch]) {
			d = append(d, "sent["+name+"] = "+formatFloat(got.Sent[ch])+", want "+formatFloat(want.Sent[ch]))
		}
		if !got.LastContact[ch].Equal(want.LastContact[ch]) {
			d = append(d, "last_contact["+name+"] = "+got.LastContact[ch].String()+", want "+want.LastContact[ch].String())
		}
	}
	if !got.LastEngagement.Equal(want.LastEngagement) {
		d = append(d, "last_engagement = "+got.LastEngagement.String()+", want "+want.LastEngagement.String())
	}
	if len(got.Topics) != len(want.Topics) {
		d = append(d, "topics = "+strconv.Itoa(len(got.Topics))+" entries, want "+strconv.Itoa(len(want.Topics)))
	}
	for k, w := range want.Topics {
		if g, ok := got.Topics[k]; !ok || !near(g, w) {
			d = append(d, "topics["+k+"] = "+formatFloat(g)+", want "+formatFloat(w))
		}
	}
	return strings.Join(d, "; ")
}

func TestUpsertGetProfile(t *testing.T) { eachBackend(t, testUpsertGetProfile) }

func testUpsertGetProfile(t *testing.T, b redistest.Backend) {
	patient := Profile{HCPID: "pat-1", Market: "US", Audience: arbiter.Patient}
	tests := []struct {
		name string
		in   Profile
		want Profile // UpdatedAt zero in in: stamped t0
	}{
		{"full hcp", hcpProfile("hcp-1"), hcpProfile("hcp-1")},
		{"patient without specialty", patient, func() Profile { p := patient; p.UpdatedAt = t0; return p }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := newStoreOn(t, b)
			ctx := context.Background()
			if err := s.UpsertProfile(ctx, tt.in); err != nil {
				t.Fatalf("UpsertProfile: %v", err)
			}
			got, c, err := s.GetProfile(ctx, tt.in.HCPID)
			if err != nil {
				t.Fatalf("GetProfile: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GetProfile = %+v, want %+v", got, tt.want)
			}
			if d := diffCounters(c, Counters{}); d != "" {
				t.Errorf("counters of a new profile: %s", d)
			}
		})
	}
}

func TestUpsertReplacesDescriptionKeepsCounters(t *testing.T) {
	eachBackend(t, testUpsertReplacesDescriptionKeepsCounters)
}

func testUpsertReplacesDescriptionKeepsCounters(t *testing.T, b redistest.Backend) {
	s, _, c := newStoreOn(t, b)
	ctx := context.Background()
	p := hcpProfile("hcp-1")
	if err := s.UpsertProfile(ctx, p); err != nil {
		t.Fatalf("UpsertProfile: %v", err)
	}
	ev := Event{ID: "ev-1", HCPID: "hcp-1", Type: arbiter.EventClicked, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}
	if _, err := s.ApplyEvent(ctx, ev); err != nil {
		t.Fatalf("ApplyEvent: %v", err)
	}

	// The CRM drops the SMS address, one attribute and the segment.
	p2 := p
	p2.Addresses[arbiter.SMS] = ""
	p2.Attributes = map[string]float64{"decile": 8}
	p2.Segment = ""
	p2.Specialty = "cardiology"
	p2.UpdatedAt = time.Time{}
	c.t = t0.Add(time.Hour)
	if err := s.UpsertProfile(ctx, p2); err != nil {
		t.Fatalf("UpsertProfile again: %v", err)
	}
	got, counters, err := s.GetProfile(ctx, "hcp-1")
	if err != nil {
		t.Fatalf("GetProfile: %v", err)
	}
	want := p2
	want.UpdatedAt = c.t
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetProfile = %+v, want %+v", got, want)
	}
	hour := math.Exp2(-float64(time.Hour) / float64(halfLife))
	wantC := Counters{Topics: map[string]float64{"efficacy": 2 * hour}, LastEngagement: t0}
	wantC.Engagement[arbiter.Email] = 2 * hour
	if d := diffCounters(counters, wantC); d != "" {
		t.Errorf("counters after upsert: %s", d)
	}
}

func TestLoad(t *testing.T) { eachBackend(t, testLoad) }

func testLoad(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	p := hcpProfile("hcp-1")
	if err := s.UpsertProfile(ctx, p); err != nil {
		t.Fatalf("UpsertProfile: %v", err)
	}
	recs := []consent.Record{optIn(arbiter.Email, arbiter.Promotional, t0.Add(-day))}
	if _, err := s.consent.SetMany(ctx, "hcp-1", recs, true); err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	// Counters as of t0, written as events would have left them.
	err := rdb.HSet(ctx, s.profileKey("hcp-1"),
		"e:email", "4|"+ms(t0),
		"s:email", "2|"+ms(t0),
		"t:efficacy", "8|"+ms(t0),
		"lc:email", ms(t0),
		"le", ms(t0.Add(-day)),
	).Err()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name           string
		at             time.Time
		eng, sent, top float64
	}{
		{"at the stamp", t0, 4, 2, 8},
		{"one half-life later", t0.Add(halfLife), 2, 1, 4},
		{"two half-lives later", t0.Add(2 * halfLife), 1, 0.5, 2},
		{"half a half-life later", t0.Add(halfLife / 2), 4 / math.Sqrt2, 2 / math.Sqrt2, 8 / math.Sqrt2},
		{"before the stamp: not grown", t0.Add(-day), 4, 2, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := s.Load(ctx, "hcp-1", tt.at)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(snap.Profile, p) {
				t.Errorf("Profile = %+v, want %+v", snap.Profile, p)
			}
			want := Counters{Topics: map[string]float64{"efficacy": tt.top}, LastEngagement: t0.Add(-day)}
			want.Engagement[arbiter.Email] = tt.eng
			want.Sent[arbiter.Email] = tt.sent
			want.LastContact[arbiter.Email] = t0
			if d := diffCounters(snap.Counters, want); d != "" {
				t.Errorf("Counters: %s", d)
			}
			if snap.ConsentErr != nil {
				t.Errorf("ConsentErr = %v, want nil", snap.ConsentErr)
			}
			if !snap.Consent.Complete || len(snap.Consent.Records) != 1 {
				t.Fatalf("Consent = %+v, want complete with 1 record", snap.Consent)
			}
			if got := snap.Consent.Records[0]; got.Channel != arbiter.Email || got.Status != consent.OptIn {
				t.Errorf("Consent.Records[0] = %+v, want an email opt-in", got)
			}
		})
	}
}

func TestLoadNotFoundAndInvalid(t *testing.T) { eachBackend(t, testLoadNotFoundAndInvalid) }

func testLoadNotFoundAndInvalid(t *testing.T, b redistest.Backend) {
	s, _, _ := newStoreOn(t, b)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	// Consent without a profile (a half-finished import) is still not found.
	if _, err := s.consent.SetMany(ctx, "hcp-2", nil, true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		id        string
		wantErr   error
		wantField string
	}{
		{"unknown", "hcp-404", arbiter.ErrNotFound, ""},
		{"consent only", "hcp-2", arbiter.ErrNotFound, ""},
		{"brace in id", "a{b}", nil, "hcp_id"},
		{"empty id", "", nil, "hcp_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := s.Load(ctx, tt.id, t0)
			if snap != nil {
				t.Errorf("Load returned a snapshot: %+v", snap)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Load error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantField != "" {
				if got := violationFields(err); !slices.Contains(got, tt.wantField) {
					t.Errorf("Load error = %v, want a violation of %q", err, tt.wantField)
				}
			}
			_, _, err = s.GetProfile(ctx, tt.id)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("GetProfile error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func violationFields(err error) []string {
	var inv *arbiter.InvalidError
	if !errors.As(err, &inv) {
		return nil
	}
	var out []string
	for _, v := range inv.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestApplyEvent(t *testing.T) { eachBackend(t, testApplyEvent) }

func testApplyEvent(t *testing.T, b redistest.Backend) {
	s, rdb, c := newStoreOn(t, b)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(halfLife)
	c.t = t1
	ev := func(id string, typ arbiter.EventType, ch arbiter.Channel, at time.Time, topic string) Event {
		return Event{ID: id, HCPID: "hcp-1", Type: typ, Channel: ch, OccurredAt: at, Topic: topic, ActionID: "act-1", DecisionID: "dec-1"}
	}
	// Each step applies one event and loads at t1; want is cumulative.
	var want Counters
	want.Topics = map[string]float64{}
	steps := []struct {
		name     string
		ev       Event
		wantDup  bool
		apply    func(w *Counters)
		wantHist int64
	}{
		{"sent", ev("e1", arbiter.EventSent, arbiter.Email, t0, ""), false, func(w *Counters) {
			w.Sent[arbiter.Email] = 0.5 // one send, one half-life ago
			w.LastContact[arbiter.Email] = t0
		}, 1},
		{"opened with topic", ev("e2", arbiter.EventOpened, arbiter.Email, t1, "efficacy"), false, func(w *Counters) {
			w.Engagement[arbiter.Email] = 1
			w.Topics["efficacy"] = 1
			w.LastEngagement = t1
		}, 2},
		{"opened again: duplicate", ev("e2", arbiter.EventOpened, arbiter.Email, t1, "efficacy"), true, func(*Counters) {}, 2},
		{"same id, other content: duplicate", ev("e2", arbiter.EventClicked, arbiter.SMS, t1, "safety"), true, func(*Counters) {}, 2},
		{"rep visit", ev("e3", arbiter.EventRepVisit, arbiter.RepVisit, t1, ""), false, func(w *Counters) {
			w.Engagement[arbiter.RepVisit] = 3
			w.Sent[arbiter.RepVisit] = 1
			w.LastContact[arbiter.RepVisit] = t1
		}, 3},
		{"unsubscribed: negative, no topic, no last engagement", ev("e4", arbiter.EventUnsubscribed, arbiter.Email, t1, "efficacy"), false, func(w *Counters) {
			w.Engagement[arbiter.Email] = -2
		}, 4},
		{"delivered: history only", ev("e5", arbiter.EventDelivered, arbiter.Email, t1, ""), false, func(*Counters) {}, 5},
		{"old click: last engagement keeps the max", ev("e6", arbiter.EventClicked, arbiter.SMS, t0, "efficacy"), false, func(w *Counters) {
			w.Engagement[arbiter.SMS] = 1 // 2, one half-life old
			w.Topics["efficacy"] = 2      // 1 + 2 * 0.5
		}, 6},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			dup, err := s.ApplyEvent(ctx, st.ev)
			if err != nil {
				t.Fatalf("ApplyEvent: %v", err)
			}
			if dup != st.wantDup {
				t.Errorf("duplicate = %v, want %v", dup, st.wantDup)
			}
			st.apply(&want)
			snap, err := s.Load(ctx, "hcp-1", t1)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if d := diffCounters(snap.Counters, want); d != "" {
				t.Errorf("Counters: %s", d)
			}
			if n := rdb.LLen(ctx, s.historyKey("hcp-1")).Val(); n != st.wantHist {
				t.Errorf("history length = %d, want %d", n, st.wantHist)
			}
			if score, err := rdb.ZScore(ctx, s.eventsKey("hcp-1"), st.ev.ID).Result(); err != nil || score != float64(t1.UnixMilli()) {
				t.Errorf("dedup score of %s = %v, %v; want %d (recorded at)", st.ev.ID, score, err, t1.UnixMilli())
			}
		})
	}
	head, err := rdb.LIndex(ctx, s.historyKey("hcp-1"), 0).Result()
	if want := ms(t0) + "|clicked|sms|act-1|efficacy"; err != nil || head != want {
		t.Errorf("history head = %q, %v; want %q", head, err, want)
	}
}

func TestApplyEventDedupWindowAndHistoryCap(t *testing.T) {
	eachBackend(t, testApplyEventDedupWindowAndHistoryCap)
}

func testApplyEventDedupWindowAndHistoryCap(t *testing.T, b redistest.Backend) {
	s, rdb, c := newStoreOn(t, b, WithDedupWindow(day))
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	for i := range historyLen + 5 {
		e := Event{ID: "d" + strconv.Itoa(i), HCPID: "hcp-1", Type: arbiter.EventDelivered, Channel: arbiter.Email, OccurredAt: t0}
		if _, err := s.ApplyEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.LLen(ctx, s.historyKey("hcp-1")).Val(); n != historyLen {
		t.Errorf("history length = %d, want %d", n, historyLen)
	}
	// Two days on, the ids are past the window: a replay is applied again,
	// and the next event trims the old ids.
	c.t = t0.Add(2 * day)
	replay := Event{ID: "d0", HCPID: "hcp-1", Type: arbiter.EventDelivered, Channel: arbiter.Email, OccurredAt: t0}
	dup, err := s.ApplyEvent(ctx, replay)
	if err != nil || dup {
		t.Fatalf("replay after the window: duplicate = %v, err = %v; want false, nil", dup, err)
	}
	if n := rdb.ZCard(ctx, s.eventsKey("hcp-1")).Val(); n != 1 {
		t.Errorf("dedup set size = %d, want 1 (old ids trimmed)", n)
	}
	if ttl := rdb.PTTL(ctx, s.eventsKey("hcp-1")).Val(); ttl <= 0 || ttl > day {
		t.Errorf("dedup set TTL = %v, want in (0, %v]", ttl, day)
	}
}

func TestApplyEventOutOfOrder(t *testing.T) { eachBackend(t, testApplyEventOutOfOrder) }

func testApplyEventOutOfOrder(t *testing.T, b redistest.Backend) {
	t1 := t0.Add(halfLife)
	open := Event{ID: "a", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}
	click := Event{ID: "b", HCPID: "hcp-1", Type: arbiter.EventClicked, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t1}
	send := Event{ID: "c", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}
	tests := []struct {
		name   string
		events []Event
	}{
		{"in order", []Event{send, open, click}},
		{"newest first", []Event{click, open, send}},
		{"mixed", []Event{open, click, send}},
	}
	// At t0 + 2 half-lives: 1 * 1/4 + 2 * 1/2.
	at := t0.Add(2 * halfLife)
	var want Counters
	want.Engagement[arbiter.Email] = 1.25
	want.Sent[arbiter.Email] = 0.25
	want.LastContact[arbiter.Email] = t0
	want.LastEngagement = t1
	want.Topics = map[string]float64{"efficacy": 1.25}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb, c := newStoreOn(t, b)
			c.t = t1
			ctx := context.Background()
			if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.events {
				if _, err := s.ApplyEvent(ctx, e); err != nil {
					t.Fatalf("ApplyEvent(%s): %v", e.ID, err)
				}
			}
			snap, err := s.Load(ctx, "hcp-1", at)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffCounters(snap.Counters, want); d != "" {
				t.Errorf("Counters: %s", d)
			}
			// The counters' common time is the newest event's, and the
			// counters carry no stamp of their own.
			if ct := rdb.HGet(ctx, s.profileKey("hcp-1"), fCounterTime).Val(); ct != ms(t1) {
				t.Errorf("ct = %q, want %s", ct, ms(t1))
			}
			if raw := rdb.HGet(ctx, s.profileKey("hcp-1"), "e:email").Val(); raw != "2.5" {
				t.Errorf("e:email = %q, want 2.5 (as of t1)", raw)
			}
		})
	}
}

// Counters written by earlier versions carry their own stamp
// ("<value>|<ms>"). They still load, and the first event moves them all to
// the common time.
func TestLegacyCounterStamps(t *testing.T) { eachBackend(t, testLegacyCounterStamps) }

func testLegacyCounterStamps(t *testing.T, b redistest.Backend) {
	s, rdb, c := newStoreOn(t, b)
	t1 := t0.Add(halfLife)
	c.t = t1
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	key := s.profileKey("hcp-1")
	// 4 sends as of t0, 2 engagements on sms as of t1.
	if err := rdb.HSet(ctx, key, "s:email", "4|"+ms(t0), "e:sms", "2|"+ms(t1)).Err(); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(2 * halfLife)
	var want Counters
	want.Sent[arbiter.Email] = 1
	want.Engagement[arbiter.SMS] = 1
	snap, err := s.Load(ctx, "hcp-1", at)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffCounters(snap.Counters, want); d != "" {
		t.Errorf("before any event: %s", d)
	}
	// An open at t0 (out of order against the sms stamp).
	e := Event{ID: "a", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}
	if _, err := s.ApplyEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	want.Engagement[arbiter.Email] = 0.25
	want.LastEngagement = t0
	if snap, err = s.Load(ctx, "hcp-1", at); err != nil {
		t.Fatal(err)
	}
	if d := diffCounters(snap.Counters, want); d != "" {
		t.Errorf("after an event: %s", d)
	}
	for _, f := range []string{"s:email", "e:sms", "e:email"} {
		if raw := rdb.HGet(ctx, key, f).Val(); strings.Contains(raw, "|") {
			t.Errorf("%s = %q after an event, want the stamp-less form", f, raw)
		}
	}
	if ct := rdb.HGet(ctx, key, fCounterTime).Val(); ct != ms(t1) {
		t.Errorf("ct = %q, want %s (the newest stamp)", ct, ms(t1))
	}
}

func TestApplyEventUnknownHCP(t *testing.T) { eachBackend(t, testApplyEventUnknownHCP) }

func testApplyEventUnknownHCP(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	e := Event{ID: "e1", HCPID: "hcp-404", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}
	dup, err := s.ApplyEvent(ctx, e)
	if !errors.Is(err, arbiter.ErrNotFound) || dup {
		t.Fatalf("ApplyEvent = %v, %v; want false, ErrNotFound", dup, err)
	}
	keys := []string{s.profileKey("hcp-404"), s.eventsKey("hcp-404"), s.historyKey("hcp-404")}
	if n := rdb.Exists(ctx, keys...).Val(); n != 0 {
		t.Errorf("%d keys written for an unknown HCP, want 0", n)
	}
	// Once the profile exists, the same event is applied, not a duplicate.
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-404")); err != nil {
		t.Fatal(err)
	}
	if dup, err := s.ApplyEvent(ctx, e); err != nil || dup {
		t.Errorf("ApplyEvent after the profile exists = %v, %v; want false, nil", dup, err)
	}
}

func TestApplyEventInvalid(t *testing.T) { eachBackend(t, testApplyEventInvalid) }

func testApplyEventInvalid(t *testing.T, b redistest.Backend) {
	s, rdb, c := newStoreOn(t, b)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	before := rdb.HGetAll(ctx, s.profileKey("hcp-1")).Val()
	valid := Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: c.t}
	tests := []struct {
		name   string
		edit   func(e *Event)
		fields []string
	}{
		{"empty id", func(e *Event) { e.ID = "" }, []string{"event.id"}},
		{"long id", func(e *Event) { e.ID = strings.Repeat("x", 129) }, []string{"event.id"}},
		{"id with a bar", func(e *Event) { e.ID = "a|b" }, []string{"event.id"}},
		{"bad hcp id", func(e *Event) { e.HCPID = "a{b}" }, []string{"event.hcp_id"}},
		{"no type", func(e *Event) { e.Type = arbiter.EventUnspecified }, []string{"event.type"}},
		{"unknown type", func(e *Event) { e.Type = 200 }, []string{"event.type"}},
		{"no channel", func(e *Event) { e.Channel = arbiter.ChannelUnspecified }, []string{"event.channel"}},
		{"no time", func(e *Event) { e.OccurredAt = time.Time{} }, []string{"event.occurred_at"}},
		{"future", func(e *Event) { e.OccurredAt = c.t.Add(6 * time.Minute) }, []string{"event.occurred_at"}},
		{"topic with a bar", func(e *Event) { e.Topic = "a|b" }, []string{"event.topic"}},
		{"long action", func(e *Event) { e.ActionID = strings.Repeat("a", 129) }, []string{"event.action_id"}},
		{"decision id with a space", func(e *Event) { e.DecisionID = "d 1" }, []string{"event.decision_id"}},
		{"several", func(e *Event) { e.ID, e.Channel = "", 0 }, []string{"event.id", "event.channel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid
			tt.edit(&e)
			_, err := s.ApplyEvent(ctx, e)
			if got := violationFields(err); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("ApplyEvent error = %v, want violations of %v", err, tt.fields)
			}
		})
	}
	if got := rdb.HGetAll(ctx, s.profileKey("hcp-1")).Val(); !reflect.DeepEqual(got, before) {
		t.Errorf("profile changed by invalid events: %v, want %v", got, before)
	}
	if n := rdb.Exists(ctx, s.eventsKey("hcp-1"), s.historyKey("hcp-1")).Val(); n != 0 {
		t.Errorf("%d dedup/history keys written by invalid events, want 0", n)
	}
	// Just inside the future bound is fine.
	e := valid
	e.OccurredAt = c.t.Add(5 * time.Minute)
	if _, err := s.ApplyEvent(ctx, e); err != nil {
		t.Errorf("event 5 minutes ahead: %v", err)
	}
}

// countHook counts the commands and pipelines a client sends (each call is
// one round trip) and the connections it dials.
type countHook struct{ n, dials atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestLoadOneRoundTrip(t *testing.T) { eachBackend(t, testLoadOneRoundTrip) }

// addRoundTripHook adds h where it sees each round trip and each dial: on
// a single Redis, the client; on a Redis Cluster, every node's client. A
// ClusterClient's own hooks see a pipeline once, before go-redis splits it
// by node (a pipeline over three nodes is one call there and three round
// trips), and never see a dial.
func addRoundTripHook(t testing.TB, rdb redis.UniversalClient, h redis.Hook) {
	t.Helper()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		rdb.AddHook(h)
		return
	}
	err := cc.ForEachShard(context.Background(), func(_ context.Context, node *redis.Client) error {
		node.AddHook(h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keysWithPrefix returns every key under prefix, on every master of a
// cluster (KEYS on a ClusterClient asks one node only).
func keysWithPrefix(t testing.TB, rdb redis.UniversalClient, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return rdb.Keys(ctx, prefix+":*").Val()
	}
	var mu sync.Mutex
	var keys []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		k, err := node.Keys(ctx, prefix+":*").Result()
		mu.Lock()
		keys = append(keys, k...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// On a cluster, both hashes a load reads are in the HCP's slot: its
// pipeline goes to one node, one round trip, like on a single Redis.
func testLoadOneRoundTrip(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.consent.SetMany(ctx, "hcp-1", []consent.Record{optIn(arbiter.Email, arbiter.Medical, t0)}, true); err != nil {
		t.Fatal(err)
	}
	// Warm the pools (on a cluster, of each HCP's node): a new connection's
	// handshake (HELLO, CLIENT SETINFO) also passes through the hooks, and
	// is not the load's doing.
	ids := []string{"hcp-1", "hcp-404", "hcp-1"}
	for _, id := range ids {
		if _, err := s.Load(ctx, id, t0); err != nil && !errors.Is(err, arbiter.ErrNotFound) {
			t.Fatal(err)
		}
	}
	h := &countHook{}
	addRoundTripHook(t, rdb, h)
	for _, id := range ids {
		h.n.Store(0)
		h.dials.Store(0)
		if _, err := s.Load(ctx, id, t0); err != nil && !errors.Is(err, arbiter.ErrNotFound) {
			t.Fatalf("Load(%s): %v", id, err)
		}
		if got, dials := h.n.Load(), h.dials.Load(); got != 1 || dials != 0 {
			t.Errorf("Load(%s) made %d round trips and %d dials, want 1 and 0", id, got, dials)
		}
	}
}

// unreachableClient returns a client of a loopback port nothing listens on,
// failing fast: no retries, one dial attempt.
func unreachableClient(t *testing.T) *redis.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestRedisUnavailable(t *testing.T) {
	rdb := unreachableClient(t)
	c := &clock{t: t0}
	s := NewStore(rdb, WithClock(c.now))
	ctx := context.Background()
	p := hcpProfile("hcp-1")
	ops := []struct {
		name string
		run  func() error
	}{
		{"Load", func() error { _, err := s.Load(ctx, "hcp-1", t0); return err }},
		{"GetProfile", func() error { _, _, err := s.GetProfile(ctx, "hcp-1"); return err }},
		{"UpsertProfile", func() error { return s.UpsertProfile(ctx, p) }},
		{"ApplyEvent", func() error {
			_, err := s.ApplyEvent(ctx, Event{ID: "e", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0})
			return err
		}},
		{"Import", func() error { return s.Import(ctx, []ImportItem{{Profile: p}}) }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			if err := op.run(); !errors.Is(err, arbiter.ErrUnavailable) {
				t.Errorf("%s error = %v, want ErrUnavailable", op.name, err)
			}
		})
	}
}

func TestLoadCorruptConsent(t *testing.T) { eachBackend(t, testLoadCorruptConsent) }

func testLoadCorruptConsent(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.consent.SetMany(ctx, "hcp-1", []consent.Record{optIn(arbiter.Email, arbiter.Medical, t0)}, true); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, field, value string }{
		{"bad marker", "_complete", "yesterday"},
		{"bad record", "email|medical||", "not a record"},
		{"bad scope", "pigeon|medical||", ms(t0) + "|opt_in|0|veeva|x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := consent.Key(s.prefix, "hcp-1")
			saved := rdb.HGetAll(ctx, key).Val()
			t.Cleanup(func() {
				rdb.Del(ctx, key)
				rdb.HSet(ctx, key, saved)
			})
			if err := rdb.HSet(ctx, key, tt.field, tt.value).Err(); err != nil {
				t.Fatal(err)
			}
			snap, err := s.Load(ctx, "hcp-1", t0)
			if err != nil {
				t.Fatalf("Load: %v, want a snapshot", err)
			}
			if !errors.Is(snap.ConsentErr, arbiter.ErrCorrupt) {
				t.Errorf("ConsentErr = %v, want ErrCorrupt", snap.ConsentErr)
			}
			if snap.Consent.Complete || len(snap.Consent.Records) != 0 {
				t.Errorf("Consent = %+v, want the zero State", snap.Consent)
			}
			if snap.Profile.HCPID != "hcp-1" || snap.Profile.Market != "DE" {
				t.Errorf("Profile = %+v, want hcp-1's", snap.Profile)
			}
		})
	}
}

func TestCorruptProfile(t *testing.T) { eachBackend(t, testCorruptProfile) }

func testCorruptProfile(t *testing.T, b redistest.Backend) {
	tests := []struct {
		name  string
		field string
		value string // "" deletes the field
	}{
		{"counter without stamp or common time", "e:email", "4"},
		{"counter time", "ct", "soon"},
		{"counter value", "e:email", "x|" + ms(t0)},
		{"counter stamp", "s:email", "1|yesterday"},
		{"counter not finite", "e:email", "NaN|" + ms(t0)},
		{"counter channel", "e:pigeon", "1|" + ms(t0)},
		{"topic", "t:efficacy", "many"},
		{"audience", "au", "martian"},
		{"updated at", "ua", "yesterday"},
		{"last contact", "lc:email", "x"},
		{"last engagement", "le", "1.5"},
		{"address channel", "a:pigeon", "addr"},
		{"attribute", "x:decile", "seven"},
		{"no market", "mk", ""},
		{"no audience", "au", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb, _ := newStoreOn(t, b)
			ctx := context.Background()
			if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
				t.Fatal(err)
			}
			key := s.profileKey("hcp-1")
			if tt.value == "" {
				rdb.HDel(ctx, key, tt.field)
			} else {
				rdb.HSet(ctx, key, tt.field, tt.value)
			}
			if _, err := s.Load(ctx, "hcp-1", t0); !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("Load error = %v, want ErrCorrupt", err)
			}
			if _, _, err := s.GetProfile(ctx, "hcp-1"); !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("GetProfile error = %v, want ErrCorrupt", err)
			}
		})
	}

	t.Run("wrong key type", func(t *testing.T) {
		s, rdb, _ := newStoreOn(t, b)
		ctx := context.Background()
		rdb.Set(ctx, s.profileKey("hcp-1"), "not a hash", 0)
		if _, err := s.Load(ctx, "hcp-1", t0); !errors.Is(err, arbiter.ErrCorrupt) {
			t.Errorf("Load error = %v, want ErrCorrupt", err)
		}
	})

	t.Run("event on a corrupt counter writes nothing", func(t *testing.T) {
		s, rdb, _ := newStoreOn(t, b)
		ctx := context.Background()
		if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
			t.Fatal(err)
		}
		key := s.profileKey("hcp-1")
		rdb.HSet(ctx, key, "s:email", "garbage")
		before := rdb.HGetAll(ctx, key).Val()
		// A send touches e: nothing, s:email (corrupt) and lc:email: the
		// script must fail before writing lc:email.
		e := Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}
		if _, err := s.ApplyEvent(ctx, e); !errors.Is(err, arbiter.ErrCorrupt) {
			t.Errorf("ApplyEvent error = %v, want ErrCorrupt", err)
		}
		if got := rdb.HGetAll(ctx, key).Val(); !reflect.DeepEqual(got, before) {
			t.Errorf("profile = %v, want unchanged %v", got, before)
		}
		if n := rdb.Exists(ctx, s.eventsKey("hcp-1"), s.historyKey("hcp-1")).Val(); n != 0 {
			t.Errorf("%d dedup/history keys written, want 0", n)
		}
	})
}

func importItems() []ImportItem {
	a := hcpProfile("hcp-a")
	b := hcpProfile("hcp-b")
	b.Market, b.Specialty, b.Attributes = "US", "cardiology", nil
	b.Addresses[arbiter.SMS] = ""
	pat := Profile{HCPID: "pat-c", Market: "US", Audience: arbiter.Patient, TimeZone: "America/New_York", UpdatedAt: t0}
	counters := &Counters{Topics: map[string]float64{"safety": 3}, LastEngagement: t0.Add(-day)}
	counters.Engagement[arbiter.Email] = 4
	counters.Sent[arbiter.Email] = 6
	counters.LastContact[arbiter.Email] = t0.Add(-2 * day)
	return []ImportItem{
		{
			Profile: a,
			Consent: []consent.Record{
				optIn(arbiter.Email, arbiter.Promotional, t0.Add(-day)),
				{Channel: arbiter.SMS, Status: consent.Barred, CapturedAt: t0.Add(-day), Source: "veeva"},
			},
			ConsentComplete: true,
			CapturedBy:      "import-job-7",
		},
		{Profile: b, Counters: counters, Consent: []consent.Record{optIn(arbiter.Email, arbiter.Medical, t0)}},
		{Profile: pat, ConsentComplete: true},
	}
}

func TestImport(t *testing.T) { eachBackend(t, testImport) }

func testImport(t *testing.T, b redistest.Backend) {
	s, _, _ := newStoreOn(t, b)
	ctx := context.Background()
	items := importItems()
	if err := s.Import(ctx, items); err != nil {
		t.Fatalf("Import: %v", err)
	}
	at := t0.Add(halfLife)
	for i, it := range items {
		t.Run(it.Profile.HCPID, func(t *testing.T) {
			snap, err := s.Load(ctx, it.Profile.HCPID, at)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			wantP := it.Profile
			if wantP.UpdatedAt.IsZero() {
				wantP.UpdatedAt = t0
			}
			if !reflect.DeepEqual(snap.Profile, wantP) {
				t.Errorf("Profile = %+v, want %+v", snap.Profile, wantP)
			}
			var wantC Counters
			if it.Counters != nil { // stamped at t0, loaded one half-life later
				wantC = *it.Counters
				wantC.Engagement[arbiter.Email] /= 2
				wantC.Sent[arbiter.Email] /= 2
				wantC.Topics = map[string]float64{"safety": 1.5}
			}
			if d := diffCounters(snap.Counters, wantC); d != "" {
				t.Errorf("Counters: %s", d)
			}
			if snap.ConsentErr != nil {
				t.Fatalf("ConsentErr = %v", snap.ConsentErr)
			}
			if snap.Consent.Complete != it.ConsentComplete || len(snap.Consent.Records) != len(it.Consent) {
				t.Errorf("Consent: complete %v with %d records, want %v with %d",
					snap.Consent.Complete, len(snap.Consent.Records), it.ConsentComplete, len(it.Consent))
			}
			for _, r := range snap.Consent.Records {
				// Records without CapturedBy get the item's.
				if i == 0 && r.Channel == arbiter.SMS && r.CapturedBy != "import-job-7" {
					t.Errorf("record %v: CapturedBy = %q, want the item's %q", r.Channel, r.CapturedBy, "import-job-7")
				}
			}
		})
	}
	// The caller's records are not modified.
	if got := items[0].Consent[1].CapturedBy; got != "" {
		t.Errorf("Import changed the caller's record: CapturedBy = %q", got)
	}

	// A second import replaces profiles; without counters, counters stay.
	items[1].Profile.Segment = "digital_savvy"
	items[1].Counters = nil
	if err := s.Import(ctx, items[1:2]); err != nil {
		t.Fatalf("Import again: %v", err)
	}
	p, c, err := s.GetProfile(ctx, "hcp-b")
	if err != nil {
		t.Fatal(err)
	}
	if p.Segment != "digital_savvy" || !near(c.Engagement[arbiter.Email], 4) {
		t.Errorf("after re-import: segment %q, engagement %v; want digital_savvy, 4", p.Segment, c.Engagement[arbiter.Email])
	}
}

func TestImportInvalidWritesNothing(t *testing.T) { eachBackend(t, testImportInvalidWritesNothing) }

func testImportInvalidWritesNothing(t *testing.T, b redistest.Backend) {
	tests := []struct {
		name   string
		edit   func(items []ImportItem)
		fields []string
	}{
		{"bad market", func(it []ImportItem) { it[1].Profile.Market = "" }, []string{"items[1].profile.market"}},
		{"no specialty", func(it []ImportItem) { it[0].Profile.Specialty = "" }, []string{"items[0].profile.specialty"}},
		{"duplicate hcp", func(it []ImportItem) { it[2].Profile = it[0].Profile }, []string{"items[2].profile.hcp_id"}},
		{"bad consent", func(it []ImportItem) {
			it[2].Consent = []consent.Record{{Status: consent.OptIn, Purpose: arbiter.Medical, CapturedAt: t0, Source: "x"}}
		},
			[]string{"items[2].consent[0].channel"}},
		{"future consent", func(it []ImportItem) { it[1].Consent[0].CapturedAt = t0.Add(time.Hour) },
			[]string{"items[1].consent[0].captured_at"}},
		{"bad counters", func(it []ImportItem) { it[1].Counters.Sent[arbiter.SMS] = -1 }, []string{"items[1].counters.sent.sms"}},
		{"bad attribute", func(it []ImportItem) { it[0].Profile.Attributes["a b"] = 1 }, []string{"items[0].profile.attributes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb, _ := newStoreOn(t, b)
			ctx := context.Background()
			items := importItems()
			tt.edit(items)
			err := s.Import(ctx, items)
			if got := violationFields(err); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("Import error = %v, want violations of %v", err, tt.fields)
			}
			if keys := keysWithPrefix(t, rdb, s.prefix); len(keys) != 0 {
				t.Errorf("keys written: %v, want none", keys)
			}
		})
	}
}

func TestProfileValidate(t *testing.T) {
	ok := hcpProfile("hcp-1")
	tests := []struct {
		name   string
		edit   func(p *Profile)
		fields []string
	}{
		{"valid", func(*Profile) {}, nil},
		{"long id", func(p *Profile) { p.HCPID = strings.Repeat("a", 65) }, []string{"profile.hcp_id"}},
		{"id with slash", func(p *Profile) { p.HCPID = "a/b" }, []string{"profile.hcp_id"}},
		{"no audience", func(p *Profile) { p.Audience = 0 }, []string{"profile.audience"}},
		{"market with space", func(p *Profile) { p.Market = "D E" }, []string{"profile.market"}},
		{"time zone", func(p *Profile) { p.TimeZone = "Europe/Berlin;drop" }, []string{"profile.time_zone"}},
		{"address with bar", func(p *Profile) { p.Addresses[arbiter.Email] = "a|b" }, []string{"profile.addresses.email"}},
		{"unspecified address", func(p *Profile) { p.Addresses[0] = "a" }, []string{"profile.addresses.unspecified"}},
		{"attribute value", func(p *Profile) { p.Attributes = map[string]float64{"x": math.Inf(1)} }, []string{"profile.attributes"}},
		{"segment control char", func(p *Profile) { p.Segment = "a\nb" }, []string{"profile.segment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			p.Attributes = map[string]float64{"decile": 7}
			tt.edit(&p)
			if got := violationFields(p.Validate()); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("Validate() violations = %v, want %v", got, tt.fields)
			}
		})
	}
}

func TestDecodeProfileAllocs(t *testing.T) {
	fields := map[string]string{
		"sp": "oncology", "mk": "DE", "au": "hcp", "sg": "scientific_first", "tz": "Europe/Berlin",
		"ua": ms(t0), "a:email": "addr-1", "e:email": "4|" + ms(t0), "s:email": "2|" + ms(t0),
		"e:rep_visit": "3|" + ms(t0), "lc:email": ms(t0), "le": ms(t0),
	}
	at := t0.Add(halfLife).UnixMilli()
	var p Profile
	var c Counters
	allocs := testing.AllocsPerRun(100, func() {
		p, c = Profile{}, Counters{}
		if err := decodeProfile(fields, at, float64(halfLife/time.Millisecond), &p, &c); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decodeProfile allocated %v times per run, want 0 (no topics or attributes)", allocs)
	}
	if !near(c.Engagement[arbiter.Email], 2) {
		t.Errorf("engagement = %v, want 2", c.Engagement[arbiter.Email])
	}
}

func TestNewStorePanicsOnBadOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	tests := []struct {
		name string
		opt  Option
	}{
		{"empty prefix", WithPrefix("")},
		{"brace in prefix", WithPrefix("a{b")},
		{"zero half-life", WithHalfLife(0)},
		{"zero window", WithDedupWindow(0)},
		{"nil clock", WithClock(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewStore did not panic")
				}
			}()
			NewStore(rdb, tt.opt)
		})
	}
}
