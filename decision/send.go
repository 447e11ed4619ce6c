package decision

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
)

// Booker books and releases reservations in the touch ledger, atomically
// (redisstore.Store).
type Booker interface {
	Reserve(ctx context.Context, hcpID string, b *contact.Booking) (contact.BookResult, error)
	Release(ctx context.Context, hcpID, reservationID string) error
}

// WithBooker sets the Booker CheckSend reserves with; without one, a
// request to reserve is refused.
func WithBooker(b Booker) Option { return func(e *Engine) { e.booker = b } }

// Limits of a pre-send check.
const (
	// MaxPastPlan is how far in the past a planned send time may be (clock
	// differences between the sender and the server).
	MaxPastPlan = 5 * time.Minute
	// MaxFuturePlan is how far ahead a send may be planned.
	MaxFuturePlan = 366 * 24 * time.Hour
	// earliestSteps bounds the search for the earliest allowed time.
	earliestSteps = 32
	// bookAttempts bounds how often a booking re-reads the state after a
	// concurrent change (another booking, a consent change).
	bookAttempts = 8
)

// SendRequest asks whether one action may be sent to one recipient.
type SendRequest struct {
	HCPID string
	// ActionID names the catalog action; or else Channel and ContentID
	// name it.
	ActionID  string
	Channel   arbiter.Channel
	ContentID string
	// At is the planned send time; zero: now.
	At time.Time
	// Reserve books the touch when the send is allowed.
	Reserve bool
	// IdempotencyKey makes a reservation safe to retry: the same key (for
	// the same caller and recipient) gives the same reservation, booked
	// once. Empty: a new reservation each time.
	IdempotencyKey string
	Caller         arbiter.CallerKind
	// Territories restricts the check to recipients of these territories,
	// as Request.Territories does.
	Territories []string
}

// SendResult is a pre-send check's answer.
type SendResult struct {
	DecisionID         string
	DefinitionsVersion string
	Action             *catalog.Action
	At                 time.Time
	// Allowed: no gate blocks the send at At.
	Allowed bool
	// Blocks are every gate's block, with details and clear times.
	Blocks []Block
	// EarliestAllowed is the first time at or after At at which the check
	// would allow the send, given the state as read; zero when a block
	// never clears by itself (an opt-out) or none is in sight.
	EarliestAllowed time.Time
	// Reservation is set when the request reserved and the send is
	// allowed (or the key's reservation already existed).
	Reservation *Reservation

	// What the check was made from, for its receipt (as Result's).
	Inputs *recipient.State
	Now    time.Time
	Paused map[string]bool
	// ReceiptStored: the check booked a touch, and its receipt was
	// written with the booking, by the same script (WithReceiptEncoder):
	// no touch is booked without its proof.
	ReceiptStored bool
}

// Reservation is a booked touch.
type Reservation struct {
	ID        string
	ExpiresAt time.Time
	// Existing: the idempotency key's reservation was already booked;
	// State says what became of it.
	Existing bool
	State    contact.TouchState
}

// CheckSend runs every gate for one action, and with req.Reserve books the
// touch: the state is read in one round trip, the booking is a second one
// that recounts the ledger against the compiled limits and checks that
// consent and the profile did not change since the read. A booking that
// loses a race re-reads and checks again, so the answer is booked, or
// blocked with the reasons that now hold.
func (e *Engine) CheckSend(ctx context.Context, req SendRequest) (*SendResult, error) {
	a, err := e.sendAction(&req)
	if err != nil {
		return nil, err
	}
	if req.Reserve && e.booker == nil {
		return nil, arbiter.Invalid("reserve", "this server does not book reservations")
	}
	now := e.clock().UTC() // as a receipt gives it back
	at := req.At
	switch {
	case at.IsZero():
		at = now
	case at.Before(now.Add(-MaxPastPlan)):
		return nil, arbiter.Invalid("planned_at", "must not be more than 5 minutes in the past")
	case at.After(now.Add(MaxFuturePlan)):
		return nil, arbiter.Invalid("planned_at", "must be within a year")
	}
	var resID string
	if req.Reserve {
		resID = reservationID(ctx, req.HCPID, req.IdempotencyKey)
	}
	res := &SendResult{DecisionID: e.ids.next(now, req.HCPID), DefinitionsVersion: e.defsVersion, Action: a, At: at,
		Now: now, Paused: e.pausedNow()}
	dreq := Request{HCPID: req.HCPID, Caller: req.Caller, At: at, Explain: true, Territories: req.Territories}
	for range bookAttempts {
		st, err := e.loader.Load(ctx, req.HCPID, at)
		if err != nil {
			return nil, fmt.Errorf("check send: %w", err)
		}
		if req.Territories != nil && !sharesAny(st.Profile.Territories, req.Territories) {
			return nil, fmt.Errorf("check send: %w", arbiter.ErrNotFound)
		}
		var existing *Reservation
		if resID != "" {
			if t := findReservation(st.Touches.Touches, resID); t != nil {
				switch {
				case t.ActionID != a.ID:
					return nil, &arbiter.PreconditionError{Subject: "idempotency_key",
						Description: "was used for a reservation of another action; use a new key"}
				case t.State == contact.Reserved && !req.At.IsZero() && !t.At.Equal(at.Truncate(time.Millisecond)):
					return nil, &arbiter.PreconditionError{Subject: "idempotency_key",
						Description: "was used for a reservation at another planned time; use a new key"}
				case t.State == contact.Released:
					return nil, &arbiter.PreconditionError{Subject: "idempotency_key",
						Description: "its reservation was released; use a new key"}
				case t.State == contact.Sent:
					// The send happened: the answer is what it was.
					res.Allowed = true
					res.Reservation = &Reservation{ID: resID, ExpiresAt: t.ExpiresAt, Existing: true, State: t.State}
					return res, nil
				case t.Counts(now):
					// A retry: nothing is booked again, but the gates are
					// asked again (consent may have been withdrawn since),
					// without the reservation's own touch.
					existing = &Reservation{ID: resID, ExpiresAt: t.ExpiresAt, Existing: true, State: t.State}
					st = withoutTouch(st, resID)
				}
				// Expired: it holds nothing; check again and book it again.
			}
		}
		prof := &st.Profile
		in := GateInput{Action: a, State: st, Request: &dreq, Now: now, paused: res.Paused,
			Recipient: catalog.Recipient{Market: prof.Market, Specialty: prof.Specialty, Audience: prof.Audience}}
		res.Inputs = st
		res.Blocks = e.blocksAt(&in, at)
		res.Allowed = len(res.Blocks) == 0
		res.Reservation = existing
		if !res.Allowed {
			res.EarliestAllowed = e.earliestAllowed(&in, res.Blocks)
			return res, nil
		}
		if !req.Reserve || existing != nil {
			return res, nil
		}
		rules := e.contact.For(prof.Market, prof.Audience)
		zones := e.contact.Zones(prof.Market, prof.TimeZone)
		send := contact.Send{Channel: a.Channel, Purpose: a.Purpose, Critical: a.Critical}
		ttl := contact.DefaultReservationTTL
		if e.contact != nil {
			ttl = e.contact.ReservationTTL
		}
		b := &contact.Booking{
			Touch: contact.Touch{At: at, Channel: a.Channel, Purpose: a.Purpose, Topic: a.Topic, ActionID: a.ID,
				State: contact.Reserved, ReservationID: resID, ExpiresAt: later(now, at).Add(ttl)},
			Limits:         rules.Limits(send, at, zones, nil),
			ConsentVersion: st.Consent.Version,
			LedgerVersion:  st.Touches.Version,
			Guard:          contact.Guard{Market: prof.Market, Audience: prof.Audience, TimeZone: prof.TimeZone},
			Bounds:         e.contact.Bounds(),
		}
		if e.receiptEnc != nil {
			// The receipt of the check as it will stand once booked,
			// written by the booking's own script.
			res.Reservation = &Reservation{ID: resID, ExpiresAt: b.Touch.ExpiresAt.Truncate(time.Millisecond).UTC(), State: contact.Reserved}
			rc := &Receipt{Kind: KindCheckSend, Principal: principalOf(ctx), Send: req, SendResult: res}
			b.ReceiptID, b.ReceiptAt = res.DecisionID, now
			if b.Receipt, err = e.receiptEnc(rc); err != nil {
				return nil, fmt.Errorf("check send: receipt: %w", err)
			}
			res.Reservation = nil
		}
		br, err := e.booker.Reserve(ctx, req.HCPID, b)
		if err != nil {
			return nil, fmt.Errorf("check send: %w", err)
		}
		switch br.Status {
		case contact.Booked:
			res.Reservation = &Reservation{ID: resID, ExpiresAt: b.Touch.ExpiresAt.Truncate(time.Millisecond).UTC(), State: contact.Reserved}
			res.ReceiptStored = b.Receipt != nil
			return res, nil
		}
		// Full or stale: another booking or a consent change came in
		// between; or the id was booked by a concurrent retry. Read again
		// and check again (a booked id is then answered as a retry).
	}
	return nil, fmt.Errorf("check send: the recipient's state kept changing during %d attempts: %w", bookAttempts, arbiter.ErrUnavailable)
}

// Release gives a reservation back: its touch stops counting.
func (e *Engine) Release(ctx context.Context, hcpID, reservationID string) error {
	if e.booker == nil {
		return arbiter.Invalid("reservation_id", "this server does not book reservations")
	}
	err := e.booker.Release(ctx, hcpID, reservationID)
	var re *contact.ReleaseError
	if errors.As(err, &re) {
		return &arbiter.PreconditionError{Subject: "reservation_id", Description: re.Error()}
	}
	return err
}

// blocksAt returns every gate's block of in.Action at t.
func (e *Engine) blocksAt(in *GateInput, t time.Time) []Block {
	in.At = t
	in.send = in.Action // only what can change this action's answer
	e.evaluate(in, &rules.Buffer{}, in.paused)
	var out []Block
	for _, g := range e.gates {
		var b Block
		if g.Check(in, &b) {
			out = append(out, b)
		}
	}
	return out
}

// earliestAllowed searches for the first time the blocks lift: every
// block's ClearsAt is a time before which it surely holds, so the search
// moves to the latest of them and checks again there (a cap that clears
// inside quiet hours then meets the quiet hours' block, and moves on to
// their end). It gives up (zero) when a block never clears by itself, or
// after earliestSteps moves.
func (e *Engine) earliestAllowed(in *GateInput, blocks []Block) time.Time {
	for range earliestSteps {
		var next time.Time
		for _, b := range blocks {
			if b.ClearsAt.IsZero() || b.NotApplicable {
				return time.Time{}
			}
			if b.ClearsAt.After(next) {
				next = b.ClearsAt
			}
		}
		if !next.After(in.At) {
			next = in.At.Add(time.Millisecond) // never stand still
		}
		if blocks = e.blocksAt(in, next); len(blocks) == 0 {
			return next
		}
	}
	return time.Time{}
}

func (e *Engine) sendAction(req *SendRequest) (*catalog.Action, error) {
	if req.ActionID != "" {
		if req.ContentID != "" || req.Channel != arbiter.ChannelUnspecified {
			return nil, arbiter.Invalid("action_id", "give an action id, or a channel and content id, not both")
		}
		i, ok := e.catalog.Lookup(req.ActionID)
		if !ok {
			return nil, arbiter.Invalid("action_id", "unknown action id")
		}
		return &e.catalog.Actions[i], nil
	}
	if req.ContentID == "" || !req.Channel.Valid() {
		return nil, arbiter.Invalid("action_id", "is required, or a channel and content id")
	}
	for i := range e.catalog.Actions {
		if a := &e.catalog.Actions[i]; a.Channel == req.Channel && a.ContentID == req.ContentID {
			return a, nil
		}
	}
	return nil, arbiter.Invalid("content_id", "no catalog action sends this content on this channel")
}

func findReservation(ts []contact.Touch, id string) *contact.Touch {
	for i := range ts {
		if ts[i].ReservationID == id {
			return &ts[i]
		}
	}
	return nil
}

// withoutTouch returns st with the reservation id's touch left out of its
// ledger (st itself, which the loader may share, is not modified).
func withoutTouch(st *recipient.State, id string) *recipient.State {
	c := *st
	c.Touches.Touches = make([]contact.Touch, 0, len(st.Touches.Touches))
	for _, t := range st.Touches.Touches {
		if t.ReservationID != id {
			c.Touches.Touches = append(c.Touches.Touches, t)
		}
	}
	return &c
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// reservationID names a reservation: from the idempotency key, the same
// for a retry by the same caller for the same recipient; without one,
// random. It reveals neither.
func reservationID(ctx context.Context, hcpID, key string) string {
	var sum [32]byte
	if key == "" {
		rand.Read(sum[:])
	} else {
		subject := ""
		if p, ok := access.FromContext(ctx); ok {
			subject = p.Subject
		}
		sum = sha256.Sum256([]byte(subject + "\x00" + hcpID + "\x00" + key))
	}
	return "rsv_" + b32.EncodeToString(sum[:15])
}

// ActionPurpose returns the purpose of a catalog action.
func (e *Engine) ActionPurpose(actionID string) (arbiter.Purpose, bool) {
	i, ok := e.catalog.Lookup(actionID)
	if !ok {
		return arbiter.PurposeUnspecified, false
	}
	return e.catalog.Actions[i].Purpose, true
}
