package redisstore

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
)

// Storage layout of consent (key names in keys.go).
//
// Current state, a hash, one field per scope:
//
//	<channel>|<purpose>|<topic>|<address>  =  <captured_ms>|<status>|<expires_ms or 0>|<source>|<captured_by>[|<notice_version>]
//	_complete                              =  <unix ms when the completeness marker was written>
//	_v                                     =  <length of the ledger after the last write: the version>
//
// The notice version is written only when the record has one, so that a
// server of an earlier version, which knows five parts, reads every record
// written without one; a record with one it reads as undecodable, which
// denies contact (unknown means deny) until it is upgraded.
//
// Names are the String forms ("email", "promotional", "opt_out"). A barred
// record's scope is "<channel>|unspecified||". Validation forbids '|' in
// every free-text part, so splitting on '|' is unambiguous. The value starts
// with the capture time so that the Lua script can compare it with a prefix
// match.
//
// Ledger, a list, one entry per change (see encodeLedger), only ever
// appended to (set_consent.lua).

// completeField is the hash field of the completeness marker.
const completeField = "_complete"

// versionField is the hash field of the consent version (State.Version).
const versionField = "_v"

// consentField returns the hash field of r's scope.
func consentField(r *consent.Record) string {
	return r.Channel.String() + "|" + r.Purpose.String() + "|" + r.Topic + "|" + r.Address
}

// consentValue returns the hash value of r. Times are Unix milliseconds.
func consentValue(r *consent.Record) string {
	var expires int64
	if !r.ExpiresAt.IsZero() {
		expires = expiryMilli(r.ExpiresAt)
	}
	v := strconv.FormatInt(r.CapturedAt.UnixMilli(), 10) + "|" + r.Status.String() + "|" +
		strconv.FormatInt(expires, 10) + "|" + r.Source + "|" + r.CapturedBy
	if r.NoticeVersion != "" {
		v += "|" + r.NoticeVersion
	}
	return v
}

// withoutNotice is a consent hash value without its notice version (the
// sixth part), as a store serving previous readers writes it.
func withoutNotice(v string) string {
	n := 0
	for i := range len(v) {
		if v[i] == '|' {
			if n++; n == 5 {
				return v[:i]
			}
		}
	}
	return v
}

// normalize returns r with its times as stored: UTC, millisecond precision
// (an expiry rounded up, expiryMilli).
func normalize(r consent.Record) consent.Record {
	r.CapturedAt = msTime(r.CapturedAt.UnixMilli())
	if !r.ExpiresAt.IsZero() {
		r.ExpiresAt = msTime(expiryMilli(r.ExpiresAt))
	}
	return r
}

// expiryMilli is an expiry in Unix milliseconds, rounded up: an opt-in
// never expires early for being stored at millisecond precision (it may
// last up to a millisecond longer, never shorter).
func expiryMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// decodeConsent builds a State from the fields of a consent hash (an
// HGETALL reply). An empty or missing hash decodes to an empty, incomplete
// State: unknown, which denies. Any field that does not decode to a valid
// record makes it fail with an error wrapping arbiter.ErrCorrupt; the
// caller must then treat consent as unknown. Records are sorted by scope
// (channel, purpose, topic, address). The error never contains field names
// or values, which may hold address references.
func decodeConsent(fields map[string]string) (consent.State, error) {
	s, err := decodeState(fields)
	if err != nil {
		return consent.State{}, fmt.Errorf("consent: decode: %w", err)
	}
	return s, nil
}

func decodeState(fields map[string]string) (consent.State, error) {
	var s consent.State
	n := len(fields)
	if _, ok := fields[completeField]; ok {
		n--
	}
	if _, ok := fields[versionField]; ok {
		n--
	}
	if _, ok := fields[erasedField]; ok {
		n--
	}
	if n > 0 {
		s.Records = make([]consent.Record, 0, n)
	}
	for name, value := range fields {
		if name == completeField {
			ms, err := strconv.ParseInt(value, 10, 64)
			if err != nil || ms <= 0 {
				return consent.State{}, corrupt("completeness marker is not a time")
			}
			s.Complete, s.CompleteAt = true, msTime(ms)
			continue
		}
		if name == erasedField {
			continue // erased (erase.go): the withdrawals kept are the records
		}
		if name == versionField {
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil || v < 0 {
				return consent.State{}, corrupt("version is not a number")
			}
			s.Version = v
			continue
		}
		r, err := decodeRecord(name, value)
		if err != nil {
			return consent.State{}, err
		}
		s.Records = append(s.Records, r)
	}
	slices.SortFunc(s.Records, compareScope)
	return s, nil
}

func compareScope(a, b consent.Record) int {
	return cmp.Or(
		cmp.Compare(a.Channel, b.Channel),
		cmp.Compare(a.Purpose, b.Purpose),
		strings.Compare(a.Topic, b.Topic),
		strings.Compare(a.Address, b.Address),
	)
}

// decodeRecord decodes one scope field. Substrings of name and value are
// kept as they are, without copying.
func decodeRecord(name, value string) (consent.Record, error) {
	var r consent.Record
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
	if r.Status, ok = consent.ParseStatus(status); !ok {
		return r, corrupt("unknown status")
	}
	if ms, err = strconv.ParseInt(expires, 10, 64); err != nil {
		return r, corrupt("expiry time is not a number")
	}
	if ms != 0 {
		r.ExpiresAt = msTime(ms)
	}
	r.CapturedBy, r.NoticeVersion, _ = strings.Cut(capturedBy, "|")
	r.Source = source
	// Whatever Set would refuse to store is corrupt when read back.
	var e arbiter.InvalidError
	if r.Check(&e, "record"); len(e.Violations) > 0 {
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

// Ledger entries are stored as one list element of '|'-separated fields
// (format 3):
//
//	3|<seq>|<recorded ms>|<flags>|<channel>|<purpose>|<topic>|<address>|<status>|<captured ms>|<expires ms or 0>|<source>|<captured by>|<principal>|<digest>
//
// set_consent.lua writes "3|<seq>|" (it alone knows the sequence number);
// Go encodes the rest. flags holds 'a' when the change applied and 'm' when
// it wrote the completeness marker; an entry that only wrote the marker has
// its record fields empty. principal is the authenticated caller's subject
// (escaped: '%' as "%25", '|' as "%7C", a newline as "%0A"), empty without
// authentication. digest is empty until the ledger is chained.
// Validation keeps '|' out of every free-text field, so the split is
// unambiguous. Field order is part of the stored format. Formats 1 (JSON)
// and 2 (without seq and digest, in a string) are those of earlier
// versions: Migrate converts them, nothing else reads them.
const ledgerFields = 15

// encodeLedger returns the stored forms of e, without the "3|<seq>|" that
// the script prepends, with Applied set to true and to false: the script,
// which alone knows whether the change applies, appends one of them.
func encodeLedger(e consent.LedgerEntry, markerOnly bool) (ifApplied, ifNot string, err error) {
	var fields [ledgerFields - 2]string
	fields[0] = strconv.FormatInt(e.RecordedAt.UnixMilli(), 10)
	if !markerOnly {
		r := e.Record
		fields[2], fields[3], fields[4], fields[5] = r.Channel.String(), r.Purpose.String(), r.Topic, r.Address
		fields[6] = r.Status.String()
		fields[7] = strconv.FormatInt(r.CapturedAt.UnixMilli(), 10)
		fields[8] = "0"
		if !r.ExpiresAt.IsZero() {
			fields[8] = strconv.FormatInt(expiryMilli(r.ExpiresAt), 10)
		}
		fields[9], fields[10] = r.Source, r.CapturedBy
	}
	fields[11] = principalEscaper.Replace(e.Principal)
	fields[12] = e.Digest
	for _, f := range fields[2:] {
		if strings.ContainsAny(f, "|\n") {
			return "", "", errors.New("a ledger field contains '|' or a newline")
		}
	}
	mark := ""
	if e.MarkedComplete {
		mark = "m"
	}
	notice := ""
	if n := e.Record.NoticeVersion; n != "" && !markerOnly {
		if strings.ContainsAny(n, "|\n") {
			return "", "", errors.New("a ledger field contains '|' or a newline")
		}
		notice = "|" + n // a sixteenth field, only when there is one
	}
	fields[1] = "a" + mark
	ifApplied = strings.Join(fields[:], "|") + notice
	fields[1] = mark
	ifNot = strings.Join(fields[:], "|") + notice
	return ifApplied, ifNot, nil
}

// decodeLedger decodes one stored ledger entry.
func decodeLedger(data string) (consent.LedgerEntry, error) {
	f := strings.Split(data, "|")
	if len(f) == ledgerFields-1 && f[0] == "3" {
		// Written before entries had a principal (during this format's
		// first days): the principal is unknown.
		f = append(f[:13:13], "", f[13])
	}
	notice := ""
	if len(f) == ledgerFields+1 && f[0] == "3" && f[ledgerFields] != "" {
		notice, f = f[ledgerFields], f[:ledgerFields] // the record's notice version
	}
	if len(f) != ledgerFields || f[0] != "3" {
		return consent.LedgerEntry{}, corrupt("ledger entry does not decode")
	}
	seq, err1 := strconv.ParseInt(f[1], 10, 64)
	recorded, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return consent.LedgerEntry{}, corrupt("ledger entry sequence or time is not a number")
	}
	e := consent.LedgerEntry{Seq: seq, RecordedAt: msTime(recorded),
		Applied: strings.Contains(f[3], "a"), MarkedComplete: strings.Contains(f[3], "m"),
		Principal: principalUnescaper.Replace(f[13]), Digest: f[14]}
	if f[4] == "" {
		return e, nil // the entry only wrote the marker
	}
	r, err := ledgerRecord(f[4:13])
	if err != nil {
		return consent.LedgerEntry{}, err
	}
	r.NoticeVersion = notice
	if r.Source == erasedSource && strings.HasPrefix(notice, erasedPrefix) {
		e.Erased, r.NoticeVersion = true, ""
	}
	e.Record = r
	return e, nil
}

// ledgerRecord decodes a ledger entry's record fields: channel, purpose,
// topic, address, status, captured ms, expires ms, source, captured by.
func ledgerRecord(f []string) (consent.Record, error) {
	var r consent.Record
	var ok1, ok2, ok3 bool
	r.Channel, ok1 = arbiter.ParseChannel(f[0])
	r.Purpose, ok2 = parsePurpose(f[1])
	r.Status, ok3 = consent.ParseStatus(f[4])
	captured, err1 := strconv.ParseInt(f[5], 10, 64)
	expires, err2 := strconv.ParseInt(f[6], 10, 64)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil {
		return r, corrupt("ledger entry has an unknown channel, purpose, status or time")
	}
	r.Topic, r.Address, r.Source, r.CapturedBy = f[2], f[3], f[7], f[8]
	r.CapturedAt = msTime(captured)
	if expires != 0 {
		r.ExpiresAt = msTime(expires)
	}
	return r, nil
}

// The principal is the one ledger field validation does not constrain (a
// token's subject): it is escaped.
var (
	principalEscaper   = strings.NewReplacer("%", "%25", "|", "%7C", "\n", "%0A")
	principalUnescaper = strings.NewReplacer("%25", "%", "%7C", "|", "%0A", "\n")
)
