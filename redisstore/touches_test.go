package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// realNow is a millisecond-precise wall clock time: reservations compare
// the server's clock with Redis's, so their tests run on the real one.
func realNow() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// touchStore is a store whose clock is the wall clock, with recipient
// "hcp-1" in it.
func touchStore(t *testing.T, b redistest.Backend) (*Store, *clock) {
	t.Helper()
	s, _, c := newStoreOn(t, b)
	c.t = realNow()
	if err := s.UpsertProfile(context.Background(), hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func touches(t *testing.T, s *Store, id string) contact.Ledger {
	t.Helper()
	l, err := s.Touches(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestTouchesFromEvents(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, c := touchStore(t, b)
		ctx := context.Background()
		at := c.t.Add(-time.Hour)
		ev := func(id string, typ arbiter.EventType, ch arbiter.Channel, msg string, at time.Time) {
			t.Helper()
			e := recipient.Event{ID: id, HCPID: "hcp-1", Type: typ, Channel: ch, MessageID: msg, OccurredAt: at,
				ActionID: "email-x", Topic: "topic", Purpose: arbiter.Promotional}
			if _, err := s.ApplyEvent(ctx, e); err != nil {
				t.Fatalf("event %s: %v", id, err)
			}
		}
		ev("e1", arbiter.EventSent, arbiter.Email, "m1", at)
		ev("e2", arbiter.EventDelivered, arbiter.Email, "m1", at.Add(time.Minute)) // the same message: no new touch
		ev("e3", arbiter.EventOpened, arbiter.Email, "m1", at.Add(2*time.Minute))  // not a touch
		ev("e4", arbiter.EventDelivered, arbiter.Email, "m2", at.Add(3*time.Minute))
		ev("e5", arbiter.EventRepVisit, arbiter.RepVisit, "", at.Add(4*time.Minute))
		ev("e6", arbiter.EventSent, arbiter.Email, "", at.Add(5*time.Minute))
		ev("e6", arbiter.EventSent, arbiter.Email, "", at.Add(5*time.Minute)) // a duplicate event: nothing
		l := touches(t, s, "hcp-1")
		if l.Version != 4 { // four events added a touch (e1, e4, e5, e6)
			t.Errorf("ledger version %d, want 4", l.Version)
		}
		l.Version = 0
		want := []contact.Touch{
			{At: at, Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "topic", ActionID: "email-x", MessageID: "m1", State: contact.Sent},
			{At: at.Add(3 * time.Minute), Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "topic", ActionID: "email-x", MessageID: "m2", State: contact.Sent},
			{At: at.Add(4 * time.Minute), Channel: arbiter.RepVisit, Purpose: arbiter.Promotional, Topic: "topic", ActionID: "email-x", State: contact.Sent},
			{At: at.Add(5 * time.Minute), Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "topic", ActionID: "email-x", State: contact.Sent},
		}
		if !reflect.DeepEqual(l, contact.Ledger{Touches: want}) {
			t.Errorf("ledger =\n%+v\nwant\n%+v", l, contact.Ledger{Touches: want})
		}
	})
}

func TestTouchLedgerBounds(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, c := touchStore(t, b)
		ctx := context.Background()
		s.SetTouchBounds(contact.Bounds{Retention: 10 * 24 * time.Hour, MaxTouches: 10})
		// Older than the retention (and its hour of slack): dropped.
		old := recipient.Event{ID: "old", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: c.t.Add(-12 * 24 * time.Hour)}
		if _, err := s.ApplyEvent(ctx, old); err != nil {
			t.Fatal(err)
		}
		// Dropped, and the ledger proves nothing before it: a policy with a
		// longer retention published later must not count on it.
		if l := touches(t, s, "hcp-1"); len(l.Touches) != 0 || !l.Horizon.Equal(old.OccurredAt) {
			t.Errorf("after a touch older than the retention: %+v, want no touches and the horizon at it", l)
		}
		// 13 touches, one a minute, for a bound of 10: the 3 oldest go,
		// and the horizon is the latest of them.
		start := c.t.Add(-time.Hour)
		for i := range 13 {
			e := recipient.Event{ID: fmt.Sprint("e", i), HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email,
				OccurredAt: start.Add(time.Duration(i) * time.Minute)}
			if _, err := s.ApplyEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		l := touches(t, s, "hcp-1")
		if len(l.Touches) != 10 {
			t.Fatalf("%d touches kept, want 10", len(l.Touches))
		}
		if want := start.Add(2 * time.Minute); !l.Horizon.Equal(want) {
			t.Errorf("horizon %v, want %v (the latest dropped touch)", l.Horizon, want)
		}
		for _, u := range l.Touches {
			if !u.At.After(l.Horizon) {
				t.Errorf("kept touch at %v, not after the horizon %v", u.At, l.Horizon)
			}
		}
	})
}

func TestTouchLedgerUnreadable(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb, c := newStoreOn(t, b)
		c.t = realNow()
		ctx := context.Background()
		if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
			t.Fatal(err)
		}
		key := s.key("hcp-1", suffixTouches)
		if err := rdb.RPush(ctx, key, "h|0|1", "garbage").Err(); err != nil {
			t.Fatal(err)
		}
		st, err := s.Load(ctx, "hcp-1", c.t)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Touches.Unreadable {
			t.Errorf("a ledger that does not decode loaded as %+v, want Unreadable", st.Touches)
		}
		// A touch event is refused, and nothing of it is written.
		e := recipient.Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: c.t}
		if _, err := s.ApplyEvent(ctx, e); !errors.Is(err, arbiter.ErrCorrupt) {
			t.Errorf("event on an unreadable ledger: %v, want ErrCorrupt", err)
		}
		if n := rdb.LLen(ctx, s.key("hcp-1", suffixHistory)).Val(); n != 0 {
			t.Errorf("history has %d entries after a refused event, want 0", n)
		}
		_, err = s.Reserve(ctx, "hcp-1", &contact.Booking{
			Touch:  contact.Touch{At: c.t, Channel: arbiter.Email, State: contact.Reserved, ReservationID: "r1", ExpiresAt: c.t.Add(time.Minute)},
			Guard:  contact.Guard{Market: "DE", Audience: arbiter.HCP, TimeZone: "Europe/Berlin"},
			Bounds: contact.DefaultBounds,
		})
		if !errors.Is(err, arbiter.ErrCorrupt) {
			t.Errorf("reserve on an unreadable ledger: %v, want ErrCorrupt", err)
		}
	})
}

// booking is a reservation of an email at at for hcp-1 (hcpProfile).
func booking(id string, at, now time.Time, limits []contact.Limit) *contact.Booking {
	return &contact.Booking{
		Touch: contact.Touch{At: at, Channel: arbiter.Email, Purpose: arbiter.Promotional, ActionID: "email-x",
			State: contact.Reserved, ReservationID: id, ExpiresAt: now.Add(15 * time.Minute)},
		Limits: limits,
		Guard:  contact.Guard{Market: "DE", Audience: arbiter.HCP, TimeZone: "Europe/Berlin"},
		Bounds: contact.DefaultBounds,
	}
}

func TestReserveAndRelease(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, c := touchStore(t, b)
		ctx := context.Background()
		now := c.t
		oneEmail := []contact.Limit{{Kind: contact.KindCap, Filter: contact.Filter{Channels: 1 << arbiter.Email},
			From: now.Add(-time.Hour).UnixMilli(), To: now.Add(time.Hour).UnixMilli(), Max: 1}}

		r, err := s.Reserve(ctx, "hcp-1", booking("r1", now, now, oneEmail))
		if err != nil || r.Status != contact.Booked {
			t.Fatalf("first reserve: %+v, %v; want booked", r, err)
		}
		// The same id again: nothing booked twice.
		if r, err := s.Reserve(ctx, "hcp-1", booking("r1", now, now, oneEmail)); err != nil || r.Status != contact.BookExists || r.State != contact.Reserved {
			t.Errorf("same id again: %+v, %v; want exists, reserved", r, err)
		}
		// Another id: the cap of one is full.
		if r, err := s.Reserve(ctx, "hcp-1", booking("r2", now, now, oneEmail)); err != nil || r.Status != contact.BookFull || r.Limit != 0 {
			t.Errorf("second id: %+v, %v; want full at limit 0", r, err)
		}
		// A consent change since the check: stale.
		if _, err := s.SetConsent(ctx, "hcp-1", rec(arbiter.Email, arbiter.Promotional, consent.OptIn, now.Add(-time.Minute)), true); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Reserve(ctx, "hcp-1", booking("r3", now, now, nil)); err != nil || r.Status != contact.BookStale {
			t.Errorf("after a consent change: %+v, %v; want stale", r, err)
		}
		st, err := s.Load(ctx, "hcp-1", now)
		if err != nil {
			t.Fatal(err)
		}
		cv := st.Consent.Version
		book := func(id string, limits []contact.Limit) *contact.Booking {
			bk := booking(id, now, now, limits)
			bk.ConsentVersion = cv
			return bk
		}
		bk := book("r3", nil)
		if r, err := s.Reserve(ctx, "hcp-1", bk); err != nil || r.Status != contact.Booked {
			t.Errorf("with the new consent version %d: %+v, %v; want booked", st.Consent.Version, r, err)
		}
		// A profile whose zone changed: stale.
		bk = book("r4", nil)
		bk.Guard.TimeZone = "America/New_York"
		if r, err := s.Reserve(ctx, "hcp-1", bk); err != nil || r.Status != contact.BookStale {
			t.Errorf("after a zone change: %+v, %v; want stale", r, err)
		}

		// Release: once; twice is a precondition failure; unknown ids and
		// other recipients' are not found.
		if err := s.Release(ctx, "hcp-1", "r1"); err != nil {
			t.Errorf("release r1: %v", err)
		}
		var re *contact.ReleaseError
		if err := s.Release(ctx, "hcp-1", "r1"); !errors.As(err, &re) || re.State != "already" {
			t.Errorf("release r1 twice: %v, want already released", err)
		}
		if err := s.Release(ctx, "hcp-1", "nope"); !errors.Is(err, arbiter.ErrNotFound) {
			t.Errorf("release an unknown id: %v, want ErrNotFound", err)
		}
		if err := s.Release(ctx, "hcp-2", "r3"); !errors.Is(err, arbiter.ErrNotFound) {
			t.Errorf("release another recipient's: %v, want ErrNotFound", err)
		}
		// The released slot is free again.
		if r, err := s.Reserve(ctx, "hcp-1", book("r5", oneEmail)); err != nil || r.Status != contact.BookFull {
			// r3 (booked above, email) still holds the one slot.
			t.Errorf("with r3 holding the slot: %+v, %v; want full", r, err)
		}
		if err := s.Release(ctx, "hcp-1", "r3"); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Reserve(ctx, "hcp-1", book("r5", oneEmail)); err != nil || r.Status != contact.Booked {
			t.Errorf("after releasing r3: %+v, %v; want booked", r, err)
		}
		// The send event quoting r5 confirms it: sent, counted once, and no
		// longer releasable.
		e := recipient.Event{ID: "send-r5", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email,
			OccurredAt: now, ReservationID: "r5", MessageID: "m5"}
		if _, err := s.ApplyEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		e = recipient.Event{ID: "deliver-r5", HCPID: "hcp-1", Type: arbiter.EventDelivered, Channel: arbiter.Email,
			OccurredAt: now.Add(time.Second), MessageID: "m5"}
		if _, err := s.ApplyEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		l := touches(t, s, "hcp-1")
		var counted int
		for _, u := range l.Touches {
			if u.Counts(now) {
				counted++
				if u.ReservationID != "r5" || u.State != contact.Sent || u.MessageID != "m5" {
					t.Errorf("counting touch %+v, want r5 sent with message m5", u)
				}
			}
		}
		if counted != 1 {
			t.Errorf("%d touches count after the send and delivery of r5, want 1", counted)
		}
		if err := s.Release(ctx, "hcp-1", "r5"); !errors.As(err, &re) || re.State != "sent" {
			t.Errorf("release a sent reservation: %v, want already sent", err)
		}
		// A reservation that expired is booked again under its id.
		bk = book("r6", nil)
		bk.Touch.ExpiresAt = now.Add(-time.Millisecond)
		if r, err := s.Reserve(ctx, "hcp-1", bk); err != nil || r.Status != contact.Booked {
			t.Fatalf("reserve r6 (expiring at once): %+v, %v", r, err)
		}
		if r, err := s.Reserve(ctx, "hcp-1", book("r6", nil)); err != nil || r.Status != contact.Booked {
			t.Errorf("r6 again after it expired: %+v, %v; want booked again", r, err)
		}
		var n6 int
		for _, u := range touches(t, s, "hcp-1").Touches {
			if u.ReservationID == "r6" {
				n6++
			}
		}
		if n6 != 1 {
			t.Errorf("%d entries of r6 in the ledger, want 1", n6)
		}
	})
}

func TestReserveRefusesClockSkew(t *testing.T) {
	s, c := touchStore(t, backendsForSkew()[0])
	c.t = c.t.Add(-10 * time.Second)
	_, err := s.Reserve(context.Background(), "hcp-1", booking("r1", c.t, c.t, nil))
	if !errors.Is(err, arbiter.ErrUnavailable) {
		t.Errorf("reserve with the server's clock 10s behind Redis: %v, want ErrUnavailable", err)
	}
}

func backendsForSkew() []redistest.Backend { return redisBackends }

// TestReserveMatchesNaiveRecount checks the booking script against a naive
// recount: for random ledgers and limits, the script books exactly when no
// limit is full, by the Go side's count (contact.Limit.Full, which the
// decision gates use) and by a recount written here from the rules.
func TestReserveMatchesNaiveRecount(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb, c := newStoreOn(t, b)
		now := realNow()
		c.t = now
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(7, 12))
		cases := 300
		if b.Addrs == nil {
			cases = 100 // miniredis: slower Lua
		}
		var booked, full int
		for n := range cases {
			id := fmt.Sprint("hcp-", n)
			if err := s.UpsertProfile(ctx, hcpProfile(id)); err != nil {
				t.Fatal(err)
			}
			// A random ledger, written as the scripts write it.
			var l contact.Ledger
			if rng.IntN(5) == 0 {
				l.Horizon = now.Add(-time.Duration(rng.IntN(72)) * time.Hour)
			}
			// Version 5: the booking below says it read version 0, so the
			// script recounts (the fast path is tested apart).
			raw := []any{"h|" + fmt.Sprint(max(l.Horizon.UnixMilli(), 0)) + "|1|5"}
			for i := range rng.IntN(12) {
				u := contact.Touch{At: now.Add(time.Duration(rng.IntN(96*60)-48*60) * time.Minute),
					Channel: arbiter.Channel(1 + rng.IntN(4)), Purpose: arbiter.Purpose(rng.IntN(4)),
					State: contact.TouchState(1 + rng.IntN(3)), ActionID: "a"}
				if u.State != contact.Sent {
					u.ReservationID = fmt.Sprint("old-", i)
					u.ExpiresAt = now.Add(time.Duration(rng.IntN(60)-30) * time.Minute)
				}
				l.Touches = append(l.Touches, u)
				raw = append(raw, encodeTouch(&u))
			}
			if err := rdb.RPush(ctx, s.key(id, suffixTouches), raw...).Err(); err != nil {
				t.Fatal(err)
			}
			var limits []contact.Limit
			for range 1 + rng.IntN(3) {
				from := now.Add(-time.Duration(rng.IntN(48*60)) * time.Minute)
				limits = append(limits, contact.Limit{
					Filter: contact.Filter{Channels: uint16(rng.IntN(1 << 5)), Purposes: uint8(rng.IntN(1 << 4))},
					From:   from.UnixMilli(), To: from.Add(time.Duration(rng.IntN(72*60)) * time.Minute).UnixMilli(),
					Max: 1 + rng.IntN(3)})
			}
			wantFull := -1
			for i := range limits {
				if naiveFull(&limits[i], &l, now) {
					wantFull = i
					break
				}
			}
			goFull := -1
			for i := range limits {
				if limits[i].Full(&l, now) {
					goFull = i
					break
				}
			}
			if goFull != wantFull {
				t.Fatalf("case %d: contact.Limit.Full says limit %d is the first full, the naive recount %d\nledger %+v\nlimits %+v", n, goFull, wantFull, l, limits)
			}
			bk := booking("new", now, now, limits)
			r, err := s.Reserve(ctx, id, bk)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case wantFull < 0 && r.Status != contact.Booked:
				t.Fatalf("case %d: the script answered %+v, the naive recount finds room\nledger %+v\nlimits %+v", n, r, l, limits)
			case wantFull >= 0 && (r.Status != contact.BookFull || r.Limit != wantFull):
				t.Fatalf("case %d: the script answered %+v, the naive recount finds limit %d full\nledger %+v\nlimits %+v", n, r, wantFull, l, limits)
			}
			if wantFull < 0 {
				booked++
			} else {
				full++
			}
		}
		if booked < cases/10 || full < cases/10 {
			t.Errorf("lopsided cases: %d booked, %d full", booked, full)
		}
	})
}

// naiveFull is the rule, written out: a window the truncated ledger cannot
// prove is full; otherwise count the sent touches and the live
// reservations on a matching channel and purpose (an unknown purpose
// matches any) whose time is within the window, both ends included.
func naiveFull(lim *contact.Limit, l *contact.Ledger, now time.Time) bool {
	if !l.Horizon.IsZero() && lim.From <= l.Horizon.UnixMilli() {
		return true
	}
	n := 0
	for _, u := range l.Touches {
		live := u.State == contact.Sent || (u.State == contact.Reserved && u.ExpiresAt.After(now))
		chOK := lim.Filter.Channels == 0 || lim.Filter.Channels>>u.Channel&1 == 1
		puOK := lim.Filter.Purposes == 0 || u.Purpose == arbiter.PurposeUnspecified || lim.Filter.Purposes>>u.Purpose&1 == 1
		in := u.At.UnixMilli() >= lim.From && u.At.UnixMilli() <= lim.To
		if live && chOK && puOK && in {
			n++
		}
	}
	return n >= lim.Max
}

func TestImportTouches(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, c := touchStore(t, b)
		ctx := context.Background()
		past := c.t.Add(-48 * time.Hour)
		item := recipient.ImportItem{Profile: hcpProfile("hcp-2"), Touches: []contact.Touch{
			{At: past, Channel: arbiter.RepVisit, Purpose: arbiter.Promotional, State: contact.Sent, ActionID: "visit"},
			{At: past.Add(time.Hour), Channel: arbiter.Email, Purpose: arbiter.Medical, State: contact.Sent, MessageID: "m1"},
		}}
		for range 2 { // the second import adds nothing
			if err := s.Import(ctx, []recipient.ImportItem{item}); err != nil {
				t.Fatal(err)
			}
		}
		if l := touches(t, s, "hcp-2"); !reflect.DeepEqual(l.Touches, item.Touches) || l.Version != 1 {
			t.Errorf("ledger after importing twice = %+v, want the two touches once", l)
		}
		// A touch that is not a past sent one is refused, naming it; nothing
		// of the item is written.
		bad := recipient.ImportItem{Profile: hcpProfile("hcp-3"), Touches: []contact.Touch{
			{At: c.t.Add(time.Hour), Channel: arbiter.Email, State: contact.Sent}}}
		var inv *arbiter.InvalidError
		if err := s.Import(ctx, []recipient.ImportItem{bad}); !errors.As(err, &inv) || inv.Violations[0].Field != "items[0].touches[0].at" {
			t.Errorf("a touch in the future: %v, want items[0].touches[0].at invalid", err)
		}
		if _, _, err := s.GetProfile(ctx, "hcp-3"); !errors.Is(err, arbiter.ErrNotFound) {
			t.Errorf("the refused item's profile: %v, want not found", err)
		}
	})
}

// A booking whose check read the ledger as it still is only appends; one
// whose check read an older version recounts, and finds the slot taken.
func TestReserveLedgerVersion(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, c := touchStore(t, b)
		ctx := context.Background()
		now := c.t
		oneEmail := []contact.Limit{{Kind: contact.KindCap, Filter: contact.Filter{Channels: 1 << arbiter.Email},
			From: now.Add(-time.Hour).UnixMilli(), To: now.Add(time.Hour).UnixMilli(), Max: 1}}
		read := touches(t, s, "hcp-1") // what both checks read: an empty ledger
		for i, want := range []contact.BookStatus{contact.Booked, contact.BookFull} {
			bk := booking(fmt.Sprint("r", i), now, now, oneEmail)
			bk.LedgerVersion = read.Version
			if r, err := s.Reserve(ctx, "hcp-1", bk); err != nil || r.Status != want {
				t.Errorf("booking %d on version %d: %+v, %v; want status %d", i, read.Version, r, err, want)
			}
		}
		if l := touches(t, s, "hcp-1"); len(l.Touches) != 1 || l.Version != read.Version+1 {
			t.Errorf("ledger after the two bookings: %d touches, version %d; want 1 and %d", len(l.Touches), l.Version, read.Version+1)
		}
	})
}
