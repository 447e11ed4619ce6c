package consent

import (
	"fmt"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// Status is what a consent record says.
type Status uint8

const (
	StatusUnspecified Status = iota
	// OptIn: the recipient agreed to be contacted on the record's scope.
	OptIn
	// OptOut: the recipient refused or withdrew.
	OptOut
	// Pending: an opt-in awaiting double opt-in confirmation. It does not
	// allow contact yet.
	Pending
	// Barred: the channel is barred outright for this recipient ("never
	// email"), whatever the purpose, topic or address.
	Barred
	// Cleared: lifts a bar on the channel. Like Barred it is channel-wide
	// and shares the bar's scope, so a later Cleared replaces the bar (at
	// the same instant the bar wins). It allows nothing by itself: the
	// channel's other records and the market default decide again.
	Cleared
	numStatuses
)

var statusNames = [numStatuses]string{"unspecified", "opt_in", "opt_out", "pending", "barred", "cleared"}

func (s Status) String() string {
	if s < numStatuses {
		return statusNames[s]
	}
	return "invalid"
}

// Valid reports whether s is a real status.
func (s Status) Valid() bool { return s > StatusUnspecified && s < numStatuses }

// ParseStatus returns the status with the given name ("opt_in").
func ParseStatus(v string) (Status, bool) {
	for i := Status(1); i < numStatuses; i++ {
		if statusNames[i] == v {
			return i, true
		}
	}
	return StatusUnspecified, false
}

// Record is one consent statement about one recipient.
//
// Its scope is (Channel, Purpose, Topic, Address). Topic and Address are
// optional and make the record more specific: an address-level record covers
// only that address (a consent for an old email address does not cover a
// new one); a topic-level record covers only that product or topic. A Barred
// record is channel-wide and has no purpose, topic or address.
type Record struct {
	Channel arbiter.Channel
	Purpose arbiter.Purpose
	Topic   string
	// Address is an opaque reference to the address the consent was given
	// for (a CRM address id or a hash): Arbiter compares it for equality and
	// never needs the address itself.
	Address string
	Status  Status
	// CapturedAt is when the recipient gave or withdrew consent (not when
	// Arbiter heard of it). The most recent record wins.
	CapturedAt time.Time
	// ExpiresAt, when not zero, is the first instant at which an opt-in no
	// longer counts.
	ExpiresAt time.Time
	// Source is the system the record came from ("veeva", "web-preference-centre").
	Source string
	// CapturedBy is who recorded it (a user or system id, never a name).
	CapturedBy string
	// NoticeVersion names the version of the privacy notice or terms the
	// recipient agreed to (or was shown when withdrawing), e.g.
	// "privacy-2026-03": what they consented to, provably. Optional.
	NoticeVersion string
}

// State is a recipient's current consent: the most recent record for each
// scope, plus the completeness marker.
type State struct {
	// Complete is true when the per-recipient marker is present: the
	// recipient's consent data was loaded in full. Without it nothing is
	// allowed, not even by an opt-out market's default.
	Complete bool
	// CompleteAt is when the marker was last written.
	CompleteAt time.Time
	Records    []Record
	// Version is the length of the recipient's consent ledger when the
	// state was read: every consent write appends to it, so a booking can
	// check that consent has not changed since a check read it.
	Version int64
}

// LedgerEntry is one accepted consent change, as appended to the recipient's
// ledger. Entries are never rewritten or removed.
type LedgerEntry struct {
	// Seq is the entry's place in the recipient's ledger: 0 for the first,
	// then one more for each entry, with no gaps.
	Seq    int64
	Record Record
	// RecordedAt is when the server stored the change (its clock), as
	// opposed to Record.CapturedAt, when the recipient gave or withdrew
	// consent. "As of" queries read the ledger by RecordedAt.
	RecordedAt time.Time
	// Applied is false when a more recent record for the same scope was
	// already current: the change is kept for proof but did not take effect.
	Applied bool
	// MarkedComplete is true when this change also wrote the completeness
	// marker. An entry that wrote only the marker (a recipient loaded with
	// no records) has a zero Record.
	MarkedComplete bool
	// Principal is who the server knows made the change: the
	// authenticated caller's subject; empty when the server runs without
	// authentication. Record.CapturedBy is what the caller says, and is
	// never taken for it.
	Principal string
	// Digest is the entry's MAC, chained over the recipient's ledger
	// (redisstore/chain.go); empty for an entry written unsealed.
	Digest string
	// Erased: the recipient was erased; the entry keeps only what proves
	// what consent was given or withdrawn and when (Record has its
	// channel, purpose, status and times; its topic, address, source and
	// captured-by are gone).
	Erased bool
}

// Limits on a record's free-text fields. They keep one recipient's hash
// small and its fields unambiguous: the store separates fields with '|',
// which none of them may contain.
const (
	maxSourceLen     = 64
	maxCapturedByLen = 64
	maxNoticeLen     = 64
	maxTopicLen      = 128
	maxAddressLen    = 128
)

// Validate checks r before it is stored. It returns an *arbiter.InvalidError
// listing every violation, with field paths relative to the record, named
// as in the API: "channel", "purpose", "status", "topic", "address_ref",
// "captured_at", "expires_at", "source" and "captured_by". Descriptions
// never echo the values.
func (r Record) Validate() error {
	e := &arbiter.InvalidError{}
	r.Check(e, "")
	return e.Err()
}

// Check adds r's violations to e, naming fields name+".channel" and so on
// (or "channel" when name is empty). The names are the API's
// (address_ref for Address).
// It does not allocate for a valid record: storage adapters run it on every
// record they decode.
func (r *Record) Check(e *arbiter.InvalidError, name string) {
	if !r.Channel.Valid() {
		e.Add(join(name, "channel"), "must be a known channel")
	}
	if !r.Status.Valid() {
		e.Add(join(name, "status"), "must be opt_in, opt_out, pending, barred or cleared")
	}
	if r.Status == Barred || r.Status == Cleared {
		// A bar, and its lifting, are channel-wide: no purpose, topic or address.
		if r.Purpose != arbiter.PurposeUnspecified {
			e.Add(join(name, "purpose"), "must be unspecified on a barred or cleared record")
		}
		if r.Topic != "" {
			e.Add(join(name, "topic"), "must be empty on a barred or cleared record")
		}
		if r.Address != "" {
			e.Add(join(name, "address_ref"), "must be empty on a barred or cleared record")
		}
	} else if !r.Purpose.Valid() {
		e.Add(join(name, "purpose"), "must be promotional, medical or service")
	}
	checkText(e, name, "topic", r.Topic, maxTopicLen)
	checkText(e, name, "address_ref", r.Address, maxAddressLen)
	if r.Source == "" {
		e.Add(join(name, "source"), "is required")
	}
	checkText(e, name, "source", r.Source, maxSourceLen)
	checkText(e, name, "captured_by", r.CapturedBy, maxCapturedByLen)
	checkText(e, name, "notice_version", r.NoticeVersion, maxNoticeLen)
	// Times are stored as Unix milliseconds; before 1970 is a data error.
	if r.CapturedAt.UnixMilli() <= 0 {
		e.Add(join(name, "captured_at"), "is required and must be after 1970-01-01")
	}
	if !r.ExpiresAt.IsZero() {
		switch {
		case r.Status != OptIn && r.Status != Pending:
			e.Add(join(name, "expires_at"), "only an opt_in or pending record can expire")
		case r.ExpiresAt.UnixMilli() <= r.CapturedAt.UnixMilli():
			e.Add(join(name, "expires_at"), "must be after captured_at")
		}
	}
}

// checkText checks a free-text field. The field's full name is built only
// on a violation: check runs, without allocating, on every decoded record.
func checkText(e *arbiter.InvalidError, name, field, v string, max int) {
	if len(v) > max {
		e.Add(join(name, field), fmt.Sprintf("must be at most %d bytes", max))
	}
	if strings.ContainsAny(v, "|\n\r") {
		// The stored forms separate fields with '|' and ledger entries
		// with line breaks.
		e.Add(join(name, field), "must not contain '|' or a line break")
	}
}

const (
	// MaxWriteRecords bounds the records of one write, and so one storage
	// script's run time.
	MaxWriteRecords = 1000
	// MaxClockSkew is how far in the future of the server's clock a capture
	// time may be. A record dated later would stay "most recent" and shadow
	// every real change until then, a withdrawal included.
	MaxClockSkew = 5 * time.Minute
)

// ValidateWrite checks one write of consent records for a recipient before
// anything is stored: the recipient id is present, there are at most
// MaxWriteRecords records, each is valid (fields named after name(i)), and
// none was captured more than MaxClockSkew after now.
func ValidateWrite(recipientID string, recs []Record, name func(int) string, now time.Time) error {
	e := &arbiter.InvalidError{}
	if recipientID == "" {
		e.Add("hcp_id", "is required")
	}
	if len(recs) > MaxWriteRecords {
		e.Add("records", fmt.Sprintf("at most %d per call", MaxWriteRecords))
		return e
	}
	for i := range recs {
		recs[i].Check(e, name(i))
		// On writes only (Check also runs on every record read back): a
		// record stored before this check must stay readable, and
		// replaceable.
		if strings.Contains(recs[i].Address, "@") {
			e.Add(join(name(i), "address_ref"), arbiter.AddressRefProblem)
		}
		if recs[i].CapturedAt.After(now.Add(MaxClockSkew)) {
			e.Add(join(name(i), "captured_at"), "must not be in the future")
		}
		// Reserved for the entries erasure minimises (redisstore/erase.go):
		// a record posing as one would keep its personal fields out of the
		// ledger's chain.
		if recs[i].Source == ErasedSource {
			e.Add(join(name(i), "source"), "\"erased\" is reserved")
		}
		if strings.HasPrefix(recs[i].NoticeVersion, ErasedNoticePrefix) {
			e.Add(join(name(i), "notice_version"), "must not begin with \"erased:\"")
		}
	}
	return e.Err()
}

// The source and notice version prefix of the ledger entries erasure
// minimised (redisstore/erase.go): no write may use them.
const (
	ErasedSource       = "erased"
	ErasedNoticePrefix = "erased:"
)

// join is the path of field within name ("record" and "channel" give
// "record.channel"; an empty name gives "channel").
func join(name, field string) string {
	if name == "" {
		return field
	}
	return name + "." + field
}

// Unsubscribe is what an unsubscribe link means: an opt-out of promotional
// contact on the channel, and nothing else (medical and service contact on
// the channel stay as they were).
func Unsubscribe(ch arbiter.Channel, at time.Time, source, capturedBy string) Record {
	return Record{Channel: ch, Purpose: arbiter.Promotional, Status: OptOut, CapturedAt: at,
		Source: source, CapturedBy: capturedBy}
}

// StopAllContact bars the channel outright: no contact of any purpose,
// topic or address until a Cleared record lifts the bar.
func StopAllContact(ch arbiter.Channel, at time.Time, source, capturedBy string) Record {
	return Record{Channel: ch, Status: Barred, CapturedAt: at, Source: source, CapturedBy: capturedBy}
}
