// Package contact is the contact policy: the touch ledger every caller
// shares, and the caps, minimum gaps and quiet hours that decide whether
// one more touch is allowed at a given time.
//
// It is part of the pure core: no storage, no RPC. The policy's logic is
// written here once. The storage adapter's booking script (reserve.lua)
// only counts the touches of the Limits that Policy compiles here, and
// books; the decision gates (package decision) ask Check.
//
// # Semantics, in one place
//
//   - A touch counts when it was sent, or is reserved and its reservation
//     has not expired at the time of the check. A released reservation
//     never counts. A touch of unknown purpose (an event that did not say)
//     counts against caps and gaps of every purpose.
//   - A cap of N over a rolling window W blocks a touch at t when N
//     counting touches that match the cap lie in the open interval
//     (t-W, t+W): the window ending at t, and any window starting after it
//     that t would fall in (touches booked for later). This never
//     undercounts; it may block a touch that fits between two far-apart
//     bookings.
//   - A cap per calendar day or week counts the matching touches of the
//     recipient's local day (week from Monday) that holds t. A recipient
//     known only by a market spanning several zones gets the union of
//     those zones' days.
//   - A minimum gap G blocks a touch at t when a matching touch lies in
//     (t-G, t+G).
//   - Quiet hours and allowed weekdays block a touch whose local time, in
//     any of the recipient's zones, falls in them.
//   - A ledger truncated by its size bound holds no proof for any time at
//     or before its horizon: a window reaching there is full.
//   - A critical action (purpose service, marked critical in the catalog)
//     is exempt from caps, gaps and quiet hours; it still counts as a
//     touch, and consent still applies.
package contact

import (
	"time"

	"github.com/arbiter-nba/arbiter"
)

// TouchState is what a touch in the ledger is.
type TouchState uint8

const (
	// Sent: the touch happened (a send, a delivery, a visit, a meeting).
	Sent TouchState = iota + 1
	// Reserved: a pre-send check booked it; it counts until it expires,
	// and a send event quoting its reservation id turns it into Sent.
	Reserved
	// Released: the reservation was given back; it never counts.
	Released
)

// Touch is one contact in a recipient's touch ledger.
type Touch struct {
	// At is when the touch happens: the send, or the planned send time of
	// a reservation.
	At       time.Time
	Channel  arbiter.Channel
	Purpose  arbiter.Purpose
	Topic    string
	ActionID string
	// MessageID is the sender's id for the message: a sent and a delivered
	// event with the same one are one touch.
	MessageID string
	State     TouchState
	// ReservationID and ExpiresAt are set for a reservation (also once it
	// is sent or released, for the record).
	ReservationID string
	ExpiresAt     time.Time
}

// Counts reports whether the touch counts against caps and gaps at now.
func (t *Touch) Counts(now time.Time) bool {
	return t.State == Sent || t.State == Reserved && now.Before(t.ExpiresAt)
}

// Ledger is a recipient's touch ledger as read for one decision.
type Ledger struct {
	// Touches in no particular order.
	Touches []Touch
	// Horizon is zero while the ledger is complete. Once its size bound
	// dropped touches, it is the latest time of a dropped touch: nothing
	// at or before it is proven.
	Horizon time.Time
	// Unreadable says the ledger could not be decoded: nothing is proven,
	// every cap and gap is reached, and none clears by itself.
	Unreadable bool
	// Version counts the writes to the ledger (0: none yet).
	Version int64
}

// Bounds are what the ledger keeps: touches within Retention, at most
// MaxTouches per recipient.
type Bounds struct {
	Retention  time.Duration
	MaxTouches int
}

// DefaultBounds are the bounds without a contact policy: the ledger is
// still kept, for every caller's view of who was contacted when.
var DefaultBounds = Bounds{Retention: 35 * 24 * time.Hour, MaxTouches: defaultTouches}

// Bounds returns the policy's ledger bounds (DefaultBounds for nil).
func (p *Policy) Bounds() Bounds {
	if p == nil {
		return DefaultBounds
	}
	return Bounds{Retention: p.Retention, MaxTouches: p.MaxTouches}
}

// Guard is what a check read of the recipient's profile that its limits
// depend on: a booking is refused if it changed since.
type Guard struct {
	Market   string
	Audience arbiter.Audience
	TimeZone string
}

// Booking asks the storage adapter to book Touch (a reservation) if the
// Limits still have room.
type Booking struct {
	Touch  Touch
	Limits []Limit
	// ConsentVersion and Guard are the consent version and profile the
	// check read; the booking is stale if either changed.
	ConsentVersion int64
	Guard          Guard
	// LedgerVersion is the version of the ledger the check read. While it
	// is unchanged the check's counts stand and the booking only appends;
	// otherwise the booking recounts the ledger against Limits.
	LedgerVersion int64
	Bounds        Bounds
	// Receipt is the check's receipt in its stored form, to be written
	// with the booking, atomically (nil: none); ReceiptID and ReceiptAt
	// are its decision id and time.
	Receipt   []byte
	ReceiptID string
	ReceiptAt time.Time
}

// BookStatus is how a booking went.
type BookStatus uint8

const (
	Booked     BookStatus = iota + 1
	BookExists            // the reservation id is already booked: nothing was
	BookFull              // a limit has no room left (BookResult.Limit)
	BookStale             // consent or the profile changed since the check
)

// BookResult is a booking's outcome.
type BookResult struct {
	Status BookStatus
	// Limit is the index in Booking.Limits of the full one (BookFull).
	Limit int
	// State and ExpiresAt are the existing reservation's (BookExists).
	State     TouchState
	ExpiresAt time.Time
}

// ReleaseError says why a reservation could not be released: it was
// "already" released, "sent", or "expired".
type ReleaseError struct{ State string }

func (e *ReleaseError) Error() string {
	switch e.State {
	case "already":
		return "the reservation was already released"
	case "sent":
		return "the reservation was already used for a send"
	}
	return "the reservation has expired"
}
