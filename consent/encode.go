package consent

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// Storage layout. Every key of one recipient carries the hash tag {hcpID},
// so that in Redis Cluster the consent hash, the ledger and the features
// package's keys for the same recipient live in one slot: they can be read
// in one pipeline and written by one script.
//
// Current state, a hash at Key(prefix, hcpID), one field per scope:
//
//	<channel>|<purpose>|<topic>|<address>  =  <captured_ms>|<status>|<expires_ms or 0>|<source>|<captured_by>
//	_complete                              =  <unix ms when the completeness marker was written>
//
// Names are the String forms ("email", "promotional", "opt_out"). A barred
// record's scope is "<channel>|unspecified||". Validate forbids '|' in every
// free-text part, so splitting on '|' is unambiguous. The value starts with
// the capture time so that the Lua script can compare it with a prefix match.
//
// Ledger, a string at prefix:{hcpID}:consent-ledger, one entry per change
// (see encodeLedger), each ended by a newline, only ever appended to (see
// set.lua). An entry's sequence number is its line index. Earlier versions
// kept the same entries in a list at the same key; set.lua converts such a
// list on its next write and History reads either.

// completeField is the hash field of the completeness marker.
const completeField = "_complete"

// Key returns the Redis key of a recipient's current consent hash. Callers
// outside this package (the features loader) HGETALL it in the same pipeline
// as the profile and pass the result to Decode.
func Key(prefix, hcpID string) string {
	return prefix + ":{" + hcpID + "}:consent"
}

// ledgerKey returns the Redis key of a recipient's consent ledger.
func ledgerKey(prefix, hcpID string) string {
	return prefix + ":{" + hcpID + "}:consent-ledger"
}

// fieldName returns the hash field of r's scope.
func fieldName(r *Record) string {
	return r.Channel.String() + "|" + r.Purpose.String() + "|" + r.Topic + "|" + r.Address
}

// fieldValue returns the hash value of r. Times are Unix milliseconds.
func fieldValue(r *Record) string {
	var expires int64
	if !r.ExpiresAt.IsZero() {
		expires = r.ExpiresAt.UnixMilli()
	}
	return strconv.FormatInt(r.CapturedAt.UnixMilli(), 10) + "|" + r.Status.String() + "|" +
		strconv.FormatInt(expires, 10) + "|" + r.Source + "|" + r.CapturedBy
}

// normalize returns r with its times as stored: UTC, millisecond precision.
func normalize(r Record) Record {
	r.CapturedAt = msTime(r.CapturedAt.UnixMilli())
	if !r.ExpiresAt.IsZero() {
		r.ExpiresAt = msTime(r.ExpiresAt.UnixMilli())
	}
	return r
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Decode builds a State from the fields of a consent hash (an HGETALL
// reply). An empty or missing hash decodes to an empty, incomplete State:
// unknown, which denies. Any field that does not decode to a valid record
// makes Decode fail with an error wrapping arbiter.ErrCorrupt; the caller
// must then treat consent as unknown. Records are sorted by scope (channel,
// purpose, topic, address). The error never contains field names or values,
// which may hold address references.
func Decode(fields map[string]string) (State, error) {
	s, err := decodeState(fields)
	if err != nil {
		return State{}, fmt.Errorf("consent: decode: %w", err)
	}
	return s, nil
}

func decodeState(fields map[string]string) (State, error) {
	var s State
	n := len(fields)
	if _, ok := fields[completeField]; ok {
		n--
	}
	if n > 0 {
		s.Records = make([]Record, 0, n)
	}
	for name, value := range fields {
		if name == completeField {
			ms, err := strconv.ParseInt(value, 10, 64)
			if err != nil || ms <= 0 {
				return State{}, corrupt("completeness marker is not a time")
			}
			s.Complete, s.CompleteAt = true, msTime(ms)
			continue
		}
		r, err := decodeRecord(name, value)
		if err != nil {
			return State{}, err
		}
		s.Records = append(s.Records, r)
	}
	slices.SortFunc(s.Records, compareScope)
	return s, nil
}

func compareScope(a, b Record) int {
	return cmp.Or(
		cmp.Compare(a.Channel, b.Channel),
		cmp.Compare(a.Purpose, b.Purpose),
		strings.Compare(a.Topic, b.Topic),
		strings.Compare(a.Address, b.Address),
	)
}

// decodeRecord decodes one scope field. Substrings of name and value are
// kept as they are, without copying.
func decodeRecord(name, value string) (Record, error) {
	var r Record
	chName, rest, ok1 := strings.Cut(name, "|")
	purposeName, rest, ok2 := strings.Cut(rest, "|")
	topic, address, ok3 := strings.Cut(rest, "|")
	if !ok1 || !ok2 || !ok3 {
		return r, corrupt("field name is not a scope")
	}
	var ok bool
	if r.Channel, ok = arbiter.ParseChannel(chName); !ok {
		return r, corrupt("unknown channel in field name")
	}
	if r.Purpose, ok = parsePurpose(purposeName); !ok {
		return r, corrupt("unknown purpose in field name")
	}
	r.Topic, r.Address = topic, address

	captured, rest, ok1 := strings.Cut(value, "|")
	status, rest, ok2 := strings.Cut(rest, "|")
	expires, rest, ok3 := strings.Cut(rest, "|")
	source, capturedBy, ok4 := strings.Cut(rest, "|")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return r, corrupt("value has the wrong number of parts")
	}
	ms, err := strconv.ParseInt(captured, 10, 64)
	if err != nil {
		return r, corrupt("capture time is not a number")
	}
	r.CapturedAt = msTime(ms)
	if r.Status, ok = ParseStatus(status); !ok {
		return r, corrupt("unknown status")
	}
	if ms, err = strconv.ParseInt(expires, 10, 64); err != nil {
		return r, corrupt("expiry time is not a number")
	}
	if ms != 0 {
		r.ExpiresAt = msTime(ms)
	}
	r.Source, r.CapturedBy = source, capturedBy
	// Whatever Set would refuse to store is corrupt when read back.
	var e arbiter.InvalidError
	if r.check(&e, "record"); len(e.Violations) > 0 {
		// A copy, so that e itself stays on the stack when the record is valid.
		return r, fmt.Errorf("%w: %v", arbiter.ErrCorrupt, &arbiter.InvalidError{Violations: e.Violations})
	}
	return r, nil
}

func corrupt(reason string) error {
	return fmt.Errorf("%w: %s", arbiter.ErrCorrupt, reason)
}

// parsePurpose is arbiter.ParsePurpose plus "unspecified", the purpose of
// barred records.
func parsePurpose(s string) (arbiter.Purpose, bool) {
	if s == arbiter.PurposeUnspecified.String() {
		return arbiter.PurposeUnspecified, true
	}
	return arbiter.ParsePurpose(s)
}

// Ledger entries are stored as one line of '|'-separated fields (format 2):
//
//	2|<recorded ms>|<flags>|<channel>|<purpose>|<topic>|<address>|<status>|<captured ms>|<expires ms or 0>|<source>|<captured by>
//
// flags holds 'a' when the change applied and 'm' when it wrote the
// completeness marker; an entry that only wrote the marker has its record
// fields empty. Validation keeps '|' out of every free-text field, so the
// split is unambiguous. The format is a third the size of the JSON of
// format 1 (about 90 bytes instead of 250), which mattered: the ledger was
// half of Redis's memory per HCP. Entries written as format 1 JSON still
// decode. Field order is part of the stored format.
const ledgerFormat = "2"

// ledgerJSON is a format 1 entry, still decoded.
type ledgerJSON struct {
	V              int         `json:"v"`
	RecordedAt     time.Time   `json:"recorded_at"`
	Applied        bool        `json:"applied"`
	MarkedComplete bool        `json:"marked_complete,omitempty"`
	Record         *recordJSON `json:"record,omitempty"`
}

type recordJSON struct {
	Channel    string    `json:"channel"`
	Purpose    string    `json:"purpose"`
	Topic      string    `json:"topic,omitempty"`
	Address    string    `json:"address,omitempty"`
	Status     string    `json:"status"`
	CapturedAt time.Time `json:"captured_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	Source     string    `json:"source"`
	CapturedBy string    `json:"captured_by,omitempty"`
}

// encodeLedger returns the stored forms of e with Applied set to true and to
// false: the script, which alone knows whether the change applies, appends
// one of them.
func encodeLedger(e LedgerEntry, markerOnly bool) (ifApplied, ifNot string, err error) {
	var fields [12]string
	fields[0] = ledgerFormat
	fields[1] = strconv.FormatInt(e.RecordedAt.UnixMilli(), 10)
	if !markerOnly {
		r := e.Record
		fields[3], fields[4], fields[5], fields[6] = r.Channel.String(), r.Purpose.String(), r.Topic, r.Address
		fields[7] = r.Status.String()
		fields[8] = strconv.FormatInt(r.CapturedAt.UnixMilli(), 10)
		fields[9] = "0"
		if !r.ExpiresAt.IsZero() {
			fields[9] = strconv.FormatInt(r.ExpiresAt.UnixMilli(), 10)
		}
		fields[10], fields[11] = r.Source, r.CapturedBy
	}
	for _, f := range fields[3:] {
		if strings.ContainsAny(f, "|\n") {
			return "", "", errors.New("a ledger field contains '|' or a newline")
		}
	}
	mark := ""
	if e.MarkedComplete {
		mark = "m"
	}
	fields[2] = "a" + mark
	ifApplied = strings.Join(fields[:], "|")
	fields[2] = mark
	ifNot = strings.Join(fields[:], "|")
	return ifApplied, ifNot, nil
}

// decodeLedger decodes one stored ledger entry, of either format.
func decodeLedger(seq int64, data string) (LedgerEntry, error) {
	if strings.HasPrefix(data, "{") {
		return decodeLedgerJSON(seq, data)
	}
	f := strings.Split(data, "|")
	if len(f) != 12 || f[0] != ledgerFormat {
		return LedgerEntry{}, corrupt("ledger entry does not decode")
	}
	recorded, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return LedgerEntry{}, corrupt("ledger entry time is not a number")
	}
	e := LedgerEntry{Seq: seq, RecordedAt: msTime(recorded),
		Applied: strings.Contains(f[2], "a"), MarkedComplete: strings.Contains(f[2], "m")}
	if f[3] == "" {
		return e, nil // the entry only wrote the marker
	}
	r := &e.Record
	var ok1, ok2, ok3 bool
	r.Channel, ok1 = arbiter.ParseChannel(f[3])
	r.Purpose, ok2 = parsePurpose(f[4])
	r.Status, ok3 = ParseStatus(f[7])
	captured, err1 := strconv.ParseInt(f[8], 10, 64)
	expires, err2 := strconv.ParseInt(f[9], 10, 64)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil {
		return LedgerEntry{}, corrupt("ledger entry has an unknown channel, purpose, status or time")
	}
	r.Topic, r.Address, r.Source, r.CapturedBy = f[5], f[6], f[10], f[11]
	r.CapturedAt = msTime(captured)
	if expires != 0 {
		r.ExpiresAt = msTime(expires)
	}
	return e, nil
}

// decodeLedgerJSON decodes a format 1 entry.
func decodeLedgerJSON(seq int64, data string) (LedgerEntry, error) {
	var j ledgerJSON
	if err := json.Unmarshal([]byte(data), &j); err != nil || j.V != 1 {
		return LedgerEntry{}, corrupt("ledger entry does not decode")
	}
	e := LedgerEntry{Seq: seq, RecordedAt: j.RecordedAt.UTC(), Applied: j.Applied, MarkedComplete: j.MarkedComplete}
	if j.Record == nil {
		return e, nil
	}
	r := &e.Record
	var ok1, ok2, ok3 bool
	r.Channel, ok1 = arbiter.ParseChannel(j.Record.Channel)
	r.Purpose, ok2 = parsePurpose(j.Record.Purpose)
	r.Status, ok3 = ParseStatus(j.Record.Status)
	if !ok1 || !ok2 || !ok3 {
		return LedgerEntry{}, corrupt("ledger entry has an unknown channel, purpose or status")
	}
	r.Topic, r.Address = j.Record.Topic, j.Record.Address
	r.CapturedAt, r.ExpiresAt = j.Record.CapturedAt.UTC(), j.Record.ExpiresAt
	if !r.ExpiresAt.IsZero() {
		r.ExpiresAt = r.ExpiresAt.UTC()
	}
	r.Source, r.CapturedBy = j.Record.Source, j.Record.CapturedBy
	return e, nil
}
