package redisstore

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// pageIDs reads every page of territories, size ids at a time, and
// returns the members' ids and the pages' count.
func pageIDs(t *testing.T, s *Store, territories []string, size int) ([]string, int) {
	t.Helper()
	var ids []string
	after, pages := "", 0
	for {
		ms, next, err := s.TerritoryPage(context.Background(), territories, after, size)
		if err != nil {
			t.Fatalf("TerritoryPage(%v, %q): %v", territories, after, err)
		}
		pages++
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		if next == "" {
			return ids, pages
		}
		after = next
	}
}

func indexed(t *testing.T, rdb redis.UniversalClient, s *Store, territory string) []string {
	t.Helper()
	ids, err := rdb.ZRange(context.Background(), s.territoryKey(territory), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func inTerritories(id string, territories ...string) recipient.Profile {
	p := hcpProfile(id)
	p.Territories = territories
	return p
}

// The territory index follows profile writes, by UpsertProfile and by
// Import: a recipient is in the sets of the territories its profile names
// and no other, moves with its profile, and is paged in id order.
func TestTerritoryIndex(t *testing.T) { eachBackendAndMiniredis(t, testTerritoryIndex) }

func testTerritoryIndex(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	for _, p := range []recipient.Profile{inTerritories("hcp-a", "T07"), inTerritories("hcp-b", "T07", "T08"),
		inTerritories("hcp-c", "T08"), inTerritories("hcp-d")} {
		if err := s.UpsertProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := pageIDs(t, s, []string{"T07"}, 100); !slices.Equal(got, []string{"hcp-a", "hcp-b"}) {
		t.Errorf("T07 = %v, want hcp-a, hcp-b", got)
	}
	ms, _, err := s.TerritoryPage(ctx, []string{"T07"}, "", 1)
	if err != nil || len(ms) != 1 || ms[0].TimeZone != "Europe/Berlin" {
		t.Errorf("TerritoryPage's member %+v (%v), want hcp-a with its time zone", ms, err)
	}

	// hcp-a moves from T07 to T08.
	if err := s.UpsertProfile(ctx, inTerritories("hcp-a", "T08")); err != nil {
		t.Fatal(err)
	}
	if got := indexed(t, rdb, s, "T07"); !slices.Equal(got, []string{"hcp-b"}) {
		t.Errorf("T07's set after the move = %v, want hcp-b alone", got)
	}
	if got, pages := pageIDs(t, s, []string{"T08"}, 2); !slices.Equal(got, []string{"hcp-a", "hcp-b", "hcp-c"}) || pages != 2 {
		t.Errorf("T08 in pages of 2 = %v in %d pages, want hcp-a, hcp-b, hcp-c in 2", got, pages)
	}
	// Two territories: each recipient once, in id order.
	if got, _ := pageIDs(t, s, []string{"T08", "T07"}, 1); !slices.Equal(got, []string{"hcp-a", "hcp-b", "hcp-c"}) {
		t.Errorf("T07 and T08 in pages of 1 = %v, want hcp-a, hcp-b, hcp-c", got)
	}
	// Out of every territory.
	if err := s.UpsertProfile(ctx, inTerritories("hcp-b")); err != nil {
		t.Fatal(err)
	}
	if got := append(indexed(t, rdb, s, "T07"), indexed(t, rdb, s, "T08")...); slices.Contains(got, "hcp-b") {
		t.Errorf("hcp-b, in no territory now, is still indexed: %v", got)
	}

	// The import path: into T07, then moved to T08 by a second import.
	items := []recipient.ImportItem{{Profile: inTerritories("hcp-e", "T07")}, {Profile: inTerritories("hcp-f", "T07")}}
	if err := s.Import(ctx, items); err != nil {
		t.Fatal(err)
	}
	if got := indexed(t, rdb, s, "T07"); !slices.Equal(got, []string{"hcp-e", "hcp-f"}) {
		t.Errorf("T07 after the import = %v, want hcp-e, hcp-f", got)
	}
	if err := s.Import(ctx, []recipient.ImportItem{{Profile: inTerritories("hcp-e", "T08")}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := pageIDs(t, s, []string{"T07"}, 100); !slices.Equal(got, []string{"hcp-f"}) {
		t.Errorf("T07 after hcp-e's import into T08 = %v, want hcp-f", got)
	}
	if got, _ := pageIDs(t, s, []string{"T08"}, 100); !slices.Equal(got, []string{"hcp-a", "hcp-c", "hcp-e"}) {
		t.Errorf("T08 after hcp-e's import = %v, want hcp-a, hcp-c, hcp-e", got)
	}

	// A stale entry (a write that stopped half way, a profile gone) is
	// not a member; Migrate removes it, and indexes a profile written
	// without the index (by an earlier version).
	if err := rdb.ZAdd(ctx, s.territoryKey("T07"), redis.Z{Member: "hcp-c"}, redis.Z{Member: "hcp-gone"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, s.key("hcp-old", suffixProfile), fMarket, "US", fAudience, "hcp", fSpecialty, "oncology",
		fTerritories, "T07,T09").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := pageIDs(t, s, []string{"T07"}, 1); !slices.Equal(got, []string{"hcp-f"}) {
		t.Errorf("T07 with stale entries = %v, want hcp-f alone", got)
	}
	res, err := s.Migrate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Indexed != 2 || res.Unindexed != 2 {
		t.Errorf("Migrate indexed %d and removed %d entries, want 2 and 2", res.Indexed, res.Unindexed)
	}
	if got := indexed(t, rdb, s, "T07"); !slices.Equal(got, []string{"hcp-f", "hcp-old"}) {
		t.Errorf("T07 after Migrate = %v, want hcp-f, hcp-old", got)
	}
	if res, err := s.Migrate(ctx, nil); err != nil || res.Indexed != 0 || res.Unindexed != 0 {
		t.Errorf("Migrate again: %+v (%v), want nothing to do", res, err)
	}

	// Erasure takes the recipient out of every territory.
	if _, err := s.Erase(ctx, "hcp-old"); err != nil {
		t.Fatal(err)
	}
	if got := append(indexed(t, rdb, s, "T07"), indexed(t, rdb, s, "T09")...); slices.Contains(got, "hcp-old") {
		t.Errorf("an erased recipient is still indexed: %v", got)
	}
}

// A move racing with another write of the same recipient never leaves it
// out of a territory its profile names once both are done.
func TestTerritoryIndexRaces(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := context.Background()
	id := "hcp-race"
	if err := s.UpsertProfile(ctx, inTerritories(id, "T07")); err != nil {
		t.Fatal(err)
	}
	// A write to T08 that read T07 as the old territories, whose removal
	// comes after a write back to T07 finished.
	w1 := territoryWrite{id: id, new: []string{"T08"}}
	if err := s.enterTerritories(ctx, []territoryWrite{w1}); err != nil {
		t.Fatal(err)
	}
	p1 := inTerritories(id, "T08")
	old, err := putProfileScript.Run(ctx, rdb, []string{s.key(id, suffixProfile)}, profileArgs(nil, "0", p1, t0)...).Text()
	if err != nil || old != "T07" {
		t.Fatalf("put_profile returned %q (%v), want the old territories T07", old, err)
	}
	w1.old = old
	if err := s.UpsertProfile(ctx, inTerritories(id, "T07")); err != nil { // the second write, whole
		t.Fatal(err)
	}
	if err := s.settleTerritories(ctx, []territoryWrite{w1}); err != nil { // the first's step 3, late
		t.Fatal(err)
	}
	if got := indexed(t, rdb, s, "T07"); !slices.Contains(got, id) {
		t.Errorf("the profile names T07 and its set is %v", got)
	}
}

// A rep's dismissal as not relevant is kept in the profile (the latest
// per action), read with it by a decision's load, kept by profile writes,
// and the older ones beyond the retention go at the next dismissal. Other
// feedback writes no dismissal; all of it goes to the history with its
// reason and note.
func TestDismissals(t *testing.T) { eachBackendAndMiniredis(t, testDismissals) }

func testDismissals(t *testing.T, b redistest.Backend) {
	s, rdb, clk := newStoreOn(t, b)
	ctx := context.Background()
	id := "hcp-1"
	if err := s.UpsertProfile(ctx, inTerritories(id, "T07")); err != nil {
		t.Fatal(err)
	}
	feedback := func(eventID, action string, typ arbiter.EventType, why arbiter.DismissReason, at time.Time) {
		t.Helper()
		e := recipient.Event{ID: eventID, HCPID: id, Type: typ, Channel: arbiter.Email, ActionID: action, OccurredAt: at,
			Dismissal: why, Note: "seen at the congress", DecisionID: "d-1"}
		if dup, err := s.ApplyEvent(ctx, e); err != nil || dup {
			t.Fatalf("ApplyEvent(%s): %v, duplicate %v", eventID, err, dup)
		}
	}
	dismissals := func() []recipient.Dismissal {
		t.Helper()
		st, err := s.Load(ctx, id, clk.t)
		if err != nil {
			t.Fatal(err)
		}
		return st.Dismissals
	}
	feedback("f-1", "email-b", arbiter.EventDismissed, arbiter.DismissNotRelevant, t0.Add(-day))
	feedback("f-2", "email-a", arbiter.EventDismissed, arbiter.DismissNotRelevant, t0.Add(-2*day))
	feedback("f-3", "email-c", arbiter.EventDismissed, arbiter.DismissAlreadyDone, t0)
	feedback("f-4", "email-d", arbiter.EventCompleted, 0, t0)
	want := []recipient.Dismissal{{ActionID: "email-a", At: t0.Add(-2 * day)}, {ActionID: "email-b", At: t0.Add(-day)}}
	if got := dismissals(); !reflect.DeepEqual(got, want) {
		t.Errorf("dismissals = %+v, want %+v", got, want)
	}
	// The latest per action: an older one changes nothing, a later one
	// replaces it.
	feedback("f-5", "email-a", arbiter.EventDismissed, arbiter.DismissNotRelevant, t0.Add(-5*day))
	feedback("f-6", "email-b", arbiter.EventDismissed, arbiter.DismissNotRelevant, t0)
	want[1].At = t0
	if got := dismissals(); !reflect.DeepEqual(got, want) {
		t.Errorf("dismissals after a later and an earlier one = %+v, want %+v", got, want)
	}
	// Profile writes keep them.
	if err := s.UpsertProfile(ctx, inTerritories(id, "T08")); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, []recipient.ImportItem{{Profile: inTerritories(id, "T08"), Counters: &recipient.Counters{}}}); err != nil {
		t.Fatal(err)
	}
	if got := dismissals(); !reflect.DeepEqual(got, want) {
		t.Errorf("dismissals after profile writes = %+v, want %+v", got, want)
	}
	// Past the retention, the next dismissal drops them.
	clk.t = t0.Add(dismissalRetention + 3*day)
	feedback("f-7", "email-z", arbiter.EventDismissed, arbiter.DismissNotRelevant, clk.t)
	if got := dismissals(); len(got) != 1 || got[0].ActionID != "email-z" {
		t.Errorf("dismissals after the retention = %+v, want email-z alone", got)
	}
	// The history has every feedback, with its reason and note.
	hist, err := rdb.LRange(ctx, s.key(id, suffixHistory), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 7 || !strings.Contains(hist[4], "|dismissed|email|email-c|") || !strings.HasSuffix(hist[4], "||already_done|seen at the congress") ||
		!strings.Contains(hist[3], "|completed|") {
		t.Errorf("history = %q, want every feedback with its reason and note", hist)
	}
	if e, ok := decodeHistory(hist[4]); !ok || e.Type != arbiter.EventDismissed || e.ActionID != "email-c" {
		t.Errorf("decodeHistory(%q) = %+v, %v", hist[4], e, ok)
	}
}

func TestDismissalRetentionCoversThePeriod(t *testing.T) {
	if dismissalRetention < decision.DismissalPeriod {
		t.Errorf("dismissals are kept %s, shorter than the %s they hold an action back", dismissalRetention, decision.DismissalPeriod)
	}
}
