package redisstore

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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// The test harness of the package: TestMain starts the Redis backends once,
// eachBackend and eachBackendAndMiniredis run a test once per backend, and
// newStoreOn gives the test a Store of its own there.

// redisBackends are a single redis-server and a Redis Cluster of 3 masters
// with a replica each, started once for the package. On the cluster a key
// layout whose keys did not share a slot would fail with CROSSSLOT.
var redisBackends []redistest.Backend

func TestMain(m *testing.M) { os.Exit(redistest.MainBackends(m, &redisBackends)) }

// eachBackend runs test once per Redis backend (single, cluster), as a
// subtest named after it.
func eachBackend(t *testing.T, test func(t *testing.T, b redistest.Backend)) {
	t.Helper()
	redistest.Each(t, redisBackends, test)
}

// eachBackendAndMiniredis is eachBackend plus miniredis: for the consent
// store and the scripts, which the demo runs on miniredis.
func eachBackendAndMiniredis(t *testing.T, test func(t *testing.T, b redistest.Backend)) {
	t.Helper()
	redistest.Each(t, append(slices.Clone(redisBackends), redistest.Miniredis), test)
}

const (
	day      = 24 * time.Hour
	halfLife = 30 * day
	eps      = 1e-9
)

var (
	// t0 is the start of every test's clock, and the capture time of most
	// consent records.
	t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// now is the clock of the consent tests: later than t0, so that the
	// time a change is recorded differs from when it was captured.
	now = t0.Add(9*day + 2*time.Hour)
)

// addrNew is an address reference; errors must never contain one.
const addrNew = "addr-new-7f3a"

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// mustNew is New that fails the test on an error.
func mustNew(tb testing.TB, rdb redis.UniversalClient, opts ...Option) *Store {
	tb.Helper()
	s, err := New(rdb, opts...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

// newStoreOn returns a store on backend b, with a key prefix of its own, a
// clock set to t0 and a half-life of halfLife; opts come after those.
func newStoreOn(tb testing.TB, b redistest.Backend, opts ...Option) (*Store, redis.UniversalClient, *clock) {
	tb.Helper()
	rdb, prefix := b.Client(tb)
	c := &clock{t: t0}
	opts = append([]Option{WithPrefix(prefix), WithClock(c.now), WithHalfLife(halfLife)}, opts...)
	return mustNew(tb, rdb, opts...), rdb, c
}

// newStore returns a store on the single redis-server, for tests that are
// not about the deployment (miniredis parity, benchmarks).
func newStore(tb testing.TB, opts ...Option) (*Store, redis.UniversalClient, *clock) {
	tb.Helper()
	return newStoreOn(tb, redisBackends[0], opts...)
}

func hcpProfile(id string) recipient.Profile {
	p := recipient.Profile{
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

// rec returns a consent record from "veeva".
func rec(ch arbiter.Channel, p arbiter.Purpose, st consent.Status, at time.Time) consent.Record {
	return consent.Record{Channel: ch, Purpose: p, Status: st, CapturedAt: at, Source: "veeva"}
}

func withTopic(r consent.Record, topic string) consent.Record { r.Topic = topic; return r }
func withAddress(r consent.Record, a string) consent.Record   { r.Address = a; return r }

func optIn(ch arbiter.Channel, purpose arbiter.Purpose, at time.Time) consent.Record {
	r := rec(ch, purpose, consent.OptIn, at)
	r.CapturedBy = "crm-sync"
	return r
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func near(a, b float64) bool { return math.Abs(a-b) <= eps }

// diffCounters describes how got differs from want ("" when equal, floats
// within eps).
func diffCounters(got, want recipient.Counters) string {
	var d []string
	if !got.AsOf.Equal(want.AsOf) {
		d = append(d, "as_of = "+got.AsOf.String()+", want "+want.AsOf.String())
	}
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

// violationFields returns the fields of an *arbiter.InvalidError, or nil.
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

func TestNewRejectsBadOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	tests := []struct {
		name string
		rdb  redis.UniversalClient
		opt  Option
	}{
		{"nil client", nil, WithPrefix("arbiter")},
		{"empty prefix", rdb, WithPrefix("")},
		{"brace in prefix", rdb, WithPrefix("a{b")},
		{"closing brace in prefix", rdb, WithPrefix("a}b")},
		{"zero half-life", rdb, WithHalfLife(0)},
		{"sub-millisecond half-life", rdb, WithHalfLife(time.Microsecond)},
		{"zero window", rdb, WithDedupWindow(0)},
		{"nil clock", rdb, WithClock(nil)},
		{"negative pipeline workers", rdb, WithAutoPipeline(-1, 8, time.Second)},
		{"pipeline batch of zero", rdb, WithAutoPipeline(2, 0, time.Second)},
		{"pipeline without timeout", rdb, WithAutoPipeline(2, 8, 0)},
		{"negative replicas", rdb, WithReplicaAck(-1, time.Second)},
		{"replicas without timeout", rdb, WithReplicaAck(1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.rdb, tt.opt)
			if err == nil || s != nil {
				t.Errorf("New() = %v, %v; want nil and an error", s, err)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		s, err := New(rdb)
		if err != nil {
			t.Fatalf("New() error = %v", err)
		}
		if got, want := s.HalfLife(), 30*day; got != want {
			t.Errorf("HalfLife() = %v, want %v", got, want)
		}
		if got, want := s.key("hcp-1", suffixProfile), "arbiter:{hcp-1}:p"; got != want {
			t.Errorf("key() = %q, want %q (default prefix)", got, want)
		}
	})
}

func TestUpsertGetProfile(t *testing.T) { eachBackend(t, testUpsertGetProfile) }

func testUpsertGetProfile(t *testing.T, b redistest.Backend) {
	patient := recipient.Profile{HCPID: "pat-1", Market: "US", Audience: arbiter.Patient}
	tests := []struct {
		name string
		in   recipient.Profile
		want recipient.Profile // UpdatedAt zero in in: stamped t0
	}{
		{"full hcp", hcpProfile("hcp-1"), hcpProfile("hcp-1")},
		{"patient without specialty", patient, func() recipient.Profile { p := patient; p.UpdatedAt = t0; return p }()},
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
			if d := diffCounters(c, recipient.Counters{}); d != "" {
				t.Errorf("counters of a new profile: %s", d)
			}
		})
	}
}

// The store validates a profile before writing it (recipient.Profile.Validate)
// and writes nothing when it is invalid.
func TestUpsertProfileInvalid(t *testing.T) { eachBackend(t, testUpsertProfileInvalid) }

func testUpsertProfileInvalid(t *testing.T, b redistest.Backend) {
	tests := []struct {
		name   string
		edit   func(p *recipient.Profile)
		fields []string
	}{
		{"long id", func(p *recipient.Profile) { p.HCPID = strings.Repeat("a", 65) }, []string{"hcp_id"}},
		{"id with slash", func(p *recipient.Profile) { p.HCPID = "a/b" }, []string{"hcp_id"}},
		{"id with brace", func(p *recipient.Profile) { p.HCPID = "a{b}" }, []string{"hcp_id"}},
		{"no audience", func(p *recipient.Profile) { p.Audience = 0 }, []string{"audience"}},
		{"market with space", func(p *recipient.Profile) { p.Market = "D E" }, []string{"market"}},
		{"time zone", func(p *recipient.Profile) { p.TimeZone = "Europe/Berlin;drop" }, []string{"time_zone"}},
		{"address with bar", func(p *recipient.Profile) { p.Addresses[arbiter.Email] = "a|b" }, []string{"addresses.email"}},
		{"unspecified address", func(p *recipient.Profile) { p.Addresses[0] = "a" }, []string{"addresses.unspecified"}},
		{"attribute value", func(p *recipient.Profile) { p.Attributes = map[string]float64{"x": math.Inf(1)} }, []string{"attributes"}},
		{"segment control char", func(p *recipient.Profile) { p.Segment = "a\nb" }, []string{"segment"}},
	}
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	if err := hcpProfile("hcp-1").Validate(); err != nil {
		t.Fatalf("the base profile is invalid: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := hcpProfile("hcp-1")
			tt.edit(&p)
			if got := violationFields(s.UpsertProfile(ctx, p)); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("UpsertProfile() violations = %v, want %v", got, tt.fields)
			}
		})
	}
	if keys := keysWithPrefix(t, rdb, s.prefix); len(keys) != 0 {
		t.Errorf("invalid profiles wrote keys %v, want none", keys)
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
	ev := recipient.Event{ID: "ev-1", HCPID: "hcp-1", Type: arbiter.EventClicked, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}
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
	// GetProfile decays the counters to the clock's now.
	hour := math.Exp2(-float64(time.Hour) / float64(halfLife))
	wantC := recipient.Counters{AsOf: c.t, Topics: map[string]float64{"efficacy": 2 * hour}, LastEngagement: t0}
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
	if _, err := s.SetConsentMany(ctx, "hcp-1", recs, true); err != nil {
		t.Fatalf("SetConsentMany: %v", err)
	}
	// Counters as of t0, written as events would have left them.
	err := rdb.HSet(ctx, s.key("hcp-1", suffixProfile),
		fCounterTime, ms(t0),
		"e:email", "4",
		"s:email", "2",
		"t:efficacy", "8",
		"lc:email", ms(t0),
		"le", ms(t0.Add(-day)),
	).Err()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name           string
		at             time.Time
		asOf           time.Time
		eng, sent, top float64
	}{
		{"at the counters' time", t0, t0, 4, 2, 8},
		{"one half-life later", t0.Add(halfLife), t0.Add(halfLife), 2, 1, 4},
		{"two half-lives later", t0.Add(2 * halfLife), t0.Add(2 * halfLife), 1, 0.5, 2},
		{"half a half-life later", t0.Add(halfLife / 2), t0.Add(halfLife / 2), 4 / math.Sqrt2, 2 / math.Sqrt2, 8 / math.Sqrt2},
		{"before the counters' time: not grown", t0.Add(-day), t0, 4, 2, 8},
		{"zero time: as stored", time.Time{}, t0, 4, 2, 8},
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
			want := recipient.Counters{AsOf: tt.asOf, Topics: map[string]float64{"efficacy": tt.top}, LastEngagement: t0.Add(-day)}
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
	if _, err := s.SetConsentMany(ctx, "hcp-2", nil, true); err != nil {
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
				t.Errorf("Load returned a state: %+v", snap)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Load error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantField != "" {
				if got := violationFields(err); !reflect.DeepEqual(got, []string{tt.wantField}) {
					t.Errorf("Load error = %v, want a violation of %q", err, tt.wantField)
				}
			}
			_, _, err = s.GetProfile(ctx, tt.id)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("GetProfile error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantField != "" {
				if got := violationFields(err); !reflect.DeepEqual(got, []string{tt.wantField}) {
					t.Errorf("GetProfile error = %v, want a violation of %q", err, tt.wantField)
				}
			}
		})
	}
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
	ev := func(id string, typ arbiter.EventType, ch arbiter.Channel, at time.Time, topic string) recipient.Event {
		return recipient.Event{ID: id, HCPID: "hcp-1", Type: typ, Channel: ch, OccurredAt: at, Topic: topic, ActionID: "act-1", DecisionID: "dec-1"}
	}
	// Each step applies one event and loads at t1; want is cumulative.
	want := recipient.Counters{AsOf: t1, Topics: map[string]float64{}}
	steps := []struct {
		name     string
		ev       recipient.Event
		wantDup  bool
		apply    func(w *recipient.Counters)
		wantHist int64
	}{
		{"sent", ev("e1", arbiter.EventSent, arbiter.Email, t0, ""), false, func(w *recipient.Counters) {
			w.Sent[arbiter.Email] = 0.5 // one send, one half-life ago
			w.LastContact[arbiter.Email] = t0
		}, 1},
		{"opened with topic", ev("e2", arbiter.EventOpened, arbiter.Email, t1, "efficacy"), false, func(w *recipient.Counters) {
			w.Engagement[arbiter.Email] = 1
			w.Topics["efficacy"] = 1
			w.LastEngagement = t1
		}, 2},
		{"opened again: duplicate", ev("e2", arbiter.EventOpened, arbiter.Email, t1, "efficacy"), true, func(*recipient.Counters) {}, 2},
		{"same id, other content: duplicate", ev("e2", arbiter.EventClicked, arbiter.SMS, t1, "safety"), true, func(*recipient.Counters) {}, 2},
		{"rep visit", ev("e3", arbiter.EventRepVisit, arbiter.RepVisit, t1, ""), false, func(w *recipient.Counters) {
			w.Engagement[arbiter.RepVisit] = 3
			w.Sent[arbiter.RepVisit] = 1
			w.LastContact[arbiter.RepVisit] = t1
		}, 3},
		{"unsubscribed: negative, no topic, no last engagement", ev("e4", arbiter.EventUnsubscribed, arbiter.Email, t1, "efficacy"), false, func(w *recipient.Counters) {
			w.Engagement[arbiter.Email] = -2
		}, 4},
		{"delivered: history only", ev("e5", arbiter.EventDelivered, arbiter.Email, t1, ""), false, func(*recipient.Counters) {}, 5},
		{"old click: last engagement keeps the max", ev("e6", arbiter.EventClicked, arbiter.SMS, t0, "efficacy"), false, func(w *recipient.Counters) {
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
			if n := rdb.LLen(ctx, s.key("hcp-1", suffixHistory)).Val(); n != st.wantHist {
				t.Errorf("history length = %d, want %d", n, st.wantHist)
			}
			if score, err := rdb.ZScore(ctx, s.key("hcp-1", suffixEvents), st.ev.ID).Result(); err != nil || score != float64(t1.UnixMilli()) {
				t.Errorf("dedup score of %s = %v, %v; want %d (recorded at)", st.ev.ID, score, err, t1.UnixMilli())
			}
		})
	}
	head, err := rdb.LIndex(ctx, s.key("hcp-1", suffixHistory), 0).Result()
	if want := ms(t0) + "|clicked|sms|act-1|efficacy|"; err != nil || head != want {
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
		e := recipient.Event{ID: "d" + strconv.Itoa(i), HCPID: "hcp-1", Type: arbiter.EventDelivered, Channel: arbiter.Email, OccurredAt: t0}
		if _, err := s.ApplyEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.LLen(ctx, s.key("hcp-1", suffixHistory)).Val(); n != historyLen {
		t.Errorf("history length = %d, want %d", n, historyLen)
	}
	// Two days on, the ids are past the window: a replay is applied again,
	// and the next event trims the old ids.
	c.t = t0.Add(2 * day)
	replay := recipient.Event{ID: "d0", HCPID: "hcp-1", Type: arbiter.EventDelivered, Channel: arbiter.Email, OccurredAt: t0}
	dup, err := s.ApplyEvent(ctx, replay)
	if err != nil || dup {
		t.Fatalf("replay after the window: duplicate = %v, err = %v; want false, nil", dup, err)
	}
	if n := rdb.ZCard(ctx, s.key("hcp-1", suffixEvents)).Val(); n != 1 {
		t.Errorf("dedup set size = %d, want 1 (old ids trimmed)", n)
	}
	if ttl := rdb.PTTL(ctx, s.key("hcp-1", suffixEvents)).Val(); ttl <= 0 || ttl > day {
		t.Errorf("dedup set TTL = %v, want in (0, %v]", ttl, day)
	}
}

func TestApplyEventOutOfOrder(t *testing.T) { eachBackend(t, testApplyEventOutOfOrder) }

func testApplyEventOutOfOrder(t *testing.T, b redistest.Backend) {
	t1 := t0.Add(halfLife)
	open := recipient.Event{ID: "a", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}
	click := recipient.Event{ID: "b", HCPID: "hcp-1", Type: arbiter.EventClicked, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t1}
	send := recipient.Event{ID: "c", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}
	tests := []struct {
		name   string
		events []recipient.Event
	}{
		{"in order", []recipient.Event{send, open, click}},
		{"newest first", []recipient.Event{click, open, send}},
		{"mixed", []recipient.Event{open, click, send}},
	}
	// At t0 + 2 half-lives: 1 * 1/4 + 2 * 1/2.
	at := t0.Add(2 * halfLife)
	want := recipient.Counters{AsOf: at}
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
			key := s.key("hcp-1", suffixProfile)
			if ct := rdb.HGet(ctx, key, fCounterTime).Val(); ct != ms(t1) {
				t.Errorf("ct = %q, want %s", ct, ms(t1))
			}
			if raw := rdb.HGet(ctx, key, "e:email").Val(); raw != "2.5" {
				t.Errorf("e:email = %q, want 2.5 (as of t1)", raw)
			}
		})
	}
}

func TestApplyEventUnknownHCP(t *testing.T) { eachBackend(t, testApplyEventUnknownHCP) }

func testApplyEventUnknownHCP(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	e := recipient.Event{ID: "e1", HCPID: "hcp-404", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}
	dup, err := s.ApplyEvent(ctx, e)
	if !errors.Is(err, arbiter.ErrNotFound) || dup {
		t.Fatalf("ApplyEvent = %v, %v; want false, ErrNotFound", dup, err)
	}
	if keys := keysWithPrefix(t, rdb, s.prefix); len(keys) != 0 {
		t.Errorf("keys %v written for an unknown HCP, want none", keys)
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
	before := rdb.HGetAll(ctx, s.key("hcp-1", suffixProfile)).Val()
	valid := recipient.Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: c.t}
	tests := []struct {
		name   string
		edit   func(e *recipient.Event)
		fields []string
	}{
		{"empty id", func(e *recipient.Event) { e.ID = "" }, []string{"event_id"}},
		{"long id", func(e *recipient.Event) { e.ID = strings.Repeat("x", 129) }, []string{"event_id"}},
		{"id with a bar", func(e *recipient.Event) { e.ID = "a|b" }, []string{"event_id"}},
		{"bad hcp id", func(e *recipient.Event) { e.HCPID = "a{b}" }, []string{"hcp_id"}},
		{"no type", func(e *recipient.Event) { e.Type = arbiter.EventUnspecified }, []string{"type"}},
		{"unknown type", func(e *recipient.Event) { e.Type = 200 }, []string{"type"}},
		{"no channel", func(e *recipient.Event) { e.Channel = arbiter.ChannelUnspecified }, []string{"channel"}},
		{"no time", func(e *recipient.Event) { e.OccurredAt = time.Time{} }, []string{"occurred_at"}},
		{"future", func(e *recipient.Event) { e.OccurredAt = c.t.Add(6 * time.Minute) }, []string{"occurred_at"}},
		{"topic with a bar", func(e *recipient.Event) { e.Topic = "a|b" }, []string{"topic"}},
		{"long action", func(e *recipient.Event) { e.ActionID = strings.Repeat("a", 129) }, []string{"action_id"}},
		{"decision id with a space", func(e *recipient.Event) { e.DecisionID = "d 1" }, []string{"decision_id"}},
		{"several", func(e *recipient.Event) { e.ID, e.Channel = "", 0 }, []string{"event_id", "channel"}},
		{"invalid unsubscribe", func(e *recipient.Event) { e.Type, e.OccurredAt = arbiter.EventUnsubscribed, time.Time{} }, []string{"occurred_at"}},
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
	if got := rdb.HGetAll(ctx, s.key("hcp-1", suffixProfile)).Val(); !reflect.DeepEqual(got, before) {
		t.Errorf("profile changed by invalid events: %v, want %v", got, before)
	}
	if keys := keysWithPrefix(t, rdb, s.prefix); len(keys) != 1 {
		t.Errorf("keys after invalid events: %v, want the profile alone", keys)
	}
	// Just inside the future bound is fine.
	e := valid
	e.OccurredAt = c.t.Add(5 * time.Minute)
	if _, err := s.ApplyEvent(ctx, e); err != nil {
		t.Errorf("event 5 minutes ahead: %v", err)
	}
}

// TestRedisUnavailable: every operation that reaches Redis reports an
// unreachable server as arbiter.ErrUnavailable, keeps the network error
// wrapped for the log, and names no address.
func TestRedisUnavailable(t *testing.T) {
	ctx := context.Background()
	p := hcpProfile("hcp-1")
	r := withAddress(rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0), addrNew)
	ops := []struct {
		name string
		run  func(s *Store) error
	}{
		{"Load", func(s *Store) error { _, err := s.Load(ctx, "hcp-1", t0); return err }},
		{"GetProfile", func(s *Store) error { _, _, err := s.GetProfile(ctx, "hcp-1"); return err }},
		{"UpsertProfile", func(s *Store) error { return s.UpsertProfile(ctx, p) }},
		{"ApplyEvent", func(s *Store) error {
			_, err := s.ApplyEvent(ctx, recipient.Event{ID: "e", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0})
			return err
		}},
		{"ApplyEvent unsubscribe", func(s *Store) error {
			_, err := s.ApplyEvent(ctx, recipient.Event{ID: "e", HCPID: "hcp-1", Type: arbiter.EventUnsubscribed, Channel: arbiter.Email, OccurredAt: t0})
			return err
		}},
		{"ApplyEvents", func(s *Store) error {
			_, err := s.ApplyEvents(ctx, []recipient.Event{{ID: "e", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}})
			return err
		}},
		{"ApplyEvents unsubscribe", func(s *Store) error {
			_, err := s.ApplyEvents(ctx, []recipient.Event{{ID: "e", HCPID: "hcp-1", Type: arbiter.EventUnsubscribed, Channel: arbiter.Email, OccurredAt: t0}})
			return err
		}},
		{"Import", func(s *Store) error {
			return s.Import(ctx, []recipient.ImportItem{{Profile: p, Consent: []consent.Record{r}}})
		}},
		{"Ping", func(s *Store) error { return s.Ping(ctx) }},
		{"SetConsent", func(s *Store) error { _, err := s.SetConsent(ctx, "hcp-1", r, true); return err }},
		{"SetConsentMany", func(s *Store) error { _, err := s.SetConsentMany(ctx, "hcp-1", []consent.Record{r}, true); return err }},
		{"GetConsent", func(s *Store) error { _, err := s.GetConsent(ctx, "hcp-1"); return err }},
		{"ConsentHistory", func(s *Store) error { _, _, err := s.ConsentHistory(ctx, "hcp-1", 0, 10); return err }},
		{"Migrate", func(s *Store) error { _, err := s.Migrate(ctx, nil); return err }},
	}
	stores := []struct {
		name string
		opts []Option
	}{
		{"plain", nil},
		{"auto-pipelined", []Option{WithAutoPipeline(2, 8, time.Second)}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			c := &clock{t: t0}
			s := mustNew(t, unreachableClient(t), append([]Option{WithClock(c.now)}, st.opts...)...)
			t.Cleanup(s.Close)
			for _, op := range ops {
				t.Run(op.name, func(t *testing.T) {
					err := op.run(s)
					if !errors.Is(err, arbiter.ErrUnavailable) {
						t.Fatalf("%s error = %v, want one wrapping ErrUnavailable", op.name, err)
					}
					var opErr *net.OpError
					if !errors.As(err, &opErr) {
						t.Errorf("%s error = %v, want the network error still wrapped", op.name, err)
					}
					if strings.Contains(err.Error(), addrNew) {
						t.Errorf("%s error = %q, contains the recipient's address", op.name, err)
					}
				})
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
	if _, err := s.SetConsentMany(ctx, "hcp-1", []consent.Record{optIn(arbiter.Email, arbiter.Medical, t0)}, true); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, field, value string }{
		{"bad marker", "_complete", "yesterday"},
		{"bad record", "email|medical||", "not a record"},
		{"bad scope", "pigeon|medical||", ms(t0) + "|opt_in|0|veeva|x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := s.key("hcp-1", suffixConsent)
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
				t.Fatalf("Load: %v, want a state", err)
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
	ct := ms(t0)
	tests := []struct {
		name string
		set  map[string]string // fields written over a valid profile
		del  string            // a field deleted
	}{
		{"counter without common time", map[string]string{"e:email": "4"}, ""},
		{"legacy counter", map[string]string{"e:email": "4|" + ct}, ""},
		{"legacy counter with common time", map[string]string{fCounterTime: ct, "s:email": "4|" + ct}, ""},
		{"counter time", map[string]string{fCounterTime: "soon"}, ""},
		{"counter value", map[string]string{fCounterTime: ct, "e:email": "x"}, ""},
		{"counter not finite", map[string]string{fCounterTime: ct, "e:email": "NaN"}, ""},
		{"counter infinite", map[string]string{fCounterTime: ct, "s:email": "+Inf"}, ""},
		{"counter channel", map[string]string{fCounterTime: ct, "e:pigeon": "1"}, ""},
		{"topic", map[string]string{fCounterTime: ct, "t:efficacy": "many"}, ""},
		{"audience", map[string]string{"au": "martian"}, ""},
		{"updated at", map[string]string{"ua": "yesterday"}, ""},
		{"last contact", map[string]string{"lc:email": "x"}, ""},
		{"last engagement", map[string]string{"le": "1.5"}, ""},
		{"address channel", map[string]string{"a:pigeon": "addr"}, ""},
		{"attribute", map[string]string{"x:decile": "seven"}, ""},
		{"no market", nil, "mk"},
		{"no audience", nil, "au"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb, _ := newStoreOn(t, b)
			ctx := context.Background()
			if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
				t.Fatal(err)
			}
			key := s.key("hcp-1", suffixProfile)
			if tt.del != "" {
				rdb.HDel(ctx, key, tt.del)
			}
			if len(tt.set) > 0 {
				rdb.HSet(ctx, key, tt.set)
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
		rdb.Set(ctx, s.key("hcp-1", suffixProfile), "not a hash", 0)
		if _, err := s.Load(ctx, "hcp-1", t0); !errors.Is(err, arbiter.ErrCorrupt) {
			t.Errorf("Load error = %v, want ErrCorrupt", err)
		}
	})

	// A send touches e: nothing, s:email and lc:email: the script must
	// refuse before writing lc:email, whatever makes the counters unusable.
	events := []struct {
		name string
		set  map[string]string
	}{
		{"corrupt counter", map[string]string{"s:email": "garbage"}},
		{"legacy counter", map[string]string{"s:email": "4|" + ct}},
		{"legacy counter with common time", map[string]string{fCounterTime: ct, "s:email": "4|" + ct}},
		{"counter without common time", map[string]string{"s:email": "4"}},
		{"corrupt common time", map[string]string{fCounterTime: "soon", "s:email": "4"}},
	}
	for _, tt := range events {
		t.Run("event on a "+tt.name+" writes nothing", func(t *testing.T) {
			s, rdb, _ := newStoreOn(t, b)
			ctx := context.Background()
			if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
				t.Fatal(err)
			}
			key := s.key("hcp-1", suffixProfile)
			rdb.HSet(ctx, key, tt.set)
			before := rdb.HGetAll(ctx, key).Val()
			e := recipient.Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}
			if _, err := s.ApplyEvent(ctx, e); !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("ApplyEvent error = %v, want ErrCorrupt", err)
			}
			if got := rdb.HGetAll(ctx, key).Val(); !reflect.DeepEqual(got, before) {
				t.Errorf("profile = %v, want unchanged %v", got, before)
			}
			if keys := keysWithPrefix(t, rdb, s.prefix); len(keys) != 1 {
				t.Errorf("keys %v, want the profile alone (no dedup or history written)", keys)
			}
		})
	}
}

func importItems() []recipient.ImportItem {
	a := hcpProfile("hcp-a")
	b := hcpProfile("hcp-b")
	b.Market, b.Specialty, b.Attributes = "US", "cardiology", nil
	b.Addresses[arbiter.SMS] = ""
	pat := recipient.Profile{HCPID: "pat-c", Market: "US", Audience: arbiter.Patient, TimeZone: "America/New_York", UpdatedAt: t0}
	counters := &recipient.Counters{Topics: map[string]float64{"safety": 3}, LastEngagement: t0.Add(-day)}
	counters.Engagement[arbiter.Email] = 4
	counters.Sent[arbiter.Email] = 6
	counters.LastContact[arbiter.Email] = t0.Add(-2 * day)
	return []recipient.ImportItem{
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
			var wantC recipient.Counters
			if it.Counters != nil { // stamped at t0, loaded one half-life later
				wantC = *it.Counters
				wantC.AsOf = at
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
	// The consent was merged again: the repeat is ledgered, not applied.
	entries, total, err := s.ConsentHistory(ctx, "hcp-b", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || !entries[0].Applied || entries[1].Applied {
		t.Errorf("hcp-b's ledger after re-import = %+v (total %d), want the record applied, then its repeat not applied", entries, total)
	}
}

func TestImportInvalidWritesNothing(t *testing.T) { eachBackend(t, testImportInvalidWritesNothing) }

func testImportInvalidWritesNothing(t *testing.T, b redistest.Backend) {
	tests := []struct {
		name   string
		edit   func(items []recipient.ImportItem)
		fields []string
	}{
		{"bad market", func(it []recipient.ImportItem) { it[1].Profile.Market = "" }, []string{"items[1].profile.market"}},
		{"no specialty", func(it []recipient.ImportItem) { it[0].Profile.Specialty = "" }, []string{"items[0].profile.specialty"}},
		{"duplicate hcp", func(it []recipient.ImportItem) { it[2].Profile = it[0].Profile }, []string{"items[2].profile.hcp_id"}},
		{"bad consent", func(it []recipient.ImportItem) {
			it[2].Consent = []consent.Record{{Status: consent.OptIn, Purpose: arbiter.Medical, CapturedAt: t0, Source: "x"}}
		},
			[]string{"items[2].consents[0].channel"}},
		{"future consent", func(it []recipient.ImportItem) { it[1].Consent[0].CapturedAt = t0.Add(time.Hour) },
			[]string{"items[1].consents[0].captured_at"}},
		{"bad counters", func(it []recipient.ImportItem) { it[1].Counters.Sent[arbiter.SMS] = -1 }, []string{"items[1].counters.sent.sms"}},
		{"bad attribute", func(it []recipient.ImportItem) { it[0].Profile.Attributes["a b"] = 1 }, []string{"items[0].profile.attributes"}},
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

func TestDecodeProfileAllocs(t *testing.T) {
	fields := map[string]string{
		"sp": "oncology", "mk": "DE", "au": "hcp", "sg": "scientific_first", "tz": "Europe/Berlin",
		"ua": ms(t0), "a:email": "addr-1", fCounterTime: ms(t0), "e:email": "4", "s:email": "2",
		"e:rep_visit": "3", "lc:email": ms(t0), "le": ms(t0),
	}
	d := &decoder{at: t0.Add(halfLife), halfLife: halfLife}
	var p recipient.Profile
	var c recipient.Counters
	allocs := testing.AllocsPerRun(100, func() {
		p, c = recipient.Profile{}, recipient.Counters{}
		if err := decodeProfile(fields, d, &p, &c, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decodeProfile allocated %v times per run, want 0 (no topics or attributes)", allocs)
	}
	if !near(c.Engagement[arbiter.Email], 2) || !c.AsOf.Equal(d.at) {
		t.Errorf("engagement = %v as of %v, want 2 as of %v", c.Engagement[arbiter.Email], c.AsOf, d.at)
	}
}
