package redisstore

// Fuzz targets for what the store reads back from Redis: a consent scope
// field, a ledger entry, a touch. Redis is shared with other versions and
// with operators, so anything may be there. A value either decodes to what
// encoding it again gives back, or is refused as corrupt: never a panic,
// never a record that Set would have refused.
//
// The committed corpora are in testdata/fuzz; `make fuzz` runs each target
// for a short while (FUZZTIME), as CI does.

import (
	"errors"
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
)

func FuzzConsentRecord(f *testing.F) {
	f.Add("email|promotional|*|*", "1767225600000|opt_in|0|crm|rep-7")
	f.Add("sms|service|oncology|addr-1", "1767225600000|opt_out|1798761600000|web|portal|notice-2026-01")
	f.Add("visit|unspecified|*|*", "1767225600000|barred|0|dnc|registry")
	f.Add("email|promotional|*", "1|opt_in|0|a|b")
	f.Add("email|promotional|*|*", "-9223372036854775808|opt_in|9223372036854775807|a|b")
	f.Fuzz(func(t *testing.T, name, value string) {
		r, err := decodeRecord(name, value)
		if err != nil {
			if !errors.Is(err, arbiter.ErrCorrupt) {
				t.Fatalf("decodeRecord(%q, %q) failed with %v, not as corrupt", name, value, err)
			}
			return
		}
		var inv arbiter.InvalidError
		if r.Check(&inv, "record"); len(inv.Violations) > 0 {
			t.Fatalf("decodeRecord(%q, %q) accepted a record Set refuses: %v", name, value, &inv)
		}
		// The ledger entry of this record decodes to the same record.
		e := consent.LedgerEntry{Record: r, RecordedAt: r.CapturedAt, Applied: true}
		applied, _, err := encodeLedger(e, false)
		if err != nil {
			t.Fatalf("a record read back cannot be written to the ledger: %v", err)
		}
		back, err := decodeLedger("3|1|" + applied)
		if err != nil {
			t.Fatalf("ledger entry %q of a valid record does not decode: %v", applied, err)
		}
		if !sameRecord(back.Record, r) {
			t.Fatalf("ledger round trip changed the record:\n got %+v\nwant %+v", back.Record, r)
		}
	})
}

func FuzzLedgerEntry(f *testing.F) {
	f.Add("3|7|1767225600000|a|email|promotional|*|*|opt_in|1767225600000|0|crm|rep-7|svc%7Cmap|")
	f.Add("3|8|1767225600000|am|||||||||||")
	f.Add("3|9|1767225600000|a|sms|service|t|addr|opt_out|1767225600000|1798761600000|web|portal|p|0123456789abcdef0123456789abcdef|notice-1")
	f.Add("3|1|2|a|email|promotional|*|*|opt_in|1|0|crm|rep")
	f.Add(`{"seq":1}`)
	f.Fuzz(func(t *testing.T, data string) {
		e, err := decodeLedger(data)
		if err != nil {
			if !errors.Is(err, arbiter.ErrCorrupt) {
				t.Fatalf("decodeLedger(%q) failed with %v, not as corrupt", data, err)
			}
			return
		}
		if e.Erased || e.Record.Channel == arbiter.ChannelUnspecified {
			return // erased and marker-only entries are not written by encodeLedger
		}
		applied, ifNot, err := encodeLedger(e, false)
		if err != nil {
			return // a legacy free-text field that encodeLedger refuses to write again
		}
		stored := applied
		if !e.Applied {
			stored = ifNot
		}
		back, err := decodeLedger("3|" + formatInt(e.Seq) + "|" + stored)
		if err != nil {
			t.Fatalf("re-encoded entry %q does not decode: %v", stored, err)
		}
		if back.Seq != e.Seq || !back.RecordedAt.Equal(e.RecordedAt) || back.Applied != e.Applied ||
			back.MarkedComplete != e.MarkedComplete || back.Principal != e.Principal || back.Digest != e.Digest ||
			!sameRecord(back.Record, e.Record) {
			t.Fatalf("ledger round trip changed the entry:\n got %+v\nwant %+v", back, e)
		}
	})
}

func FuzzTouch(f *testing.F) {
	f.Add("1767225600000|s|1|1|0|||email-launch|oncology")
	f.Add("1767225600000|r|2|2|1767229200000|res-1|msg-1|sms%7Cx|t")
	f.Add("1|x|0|0|0||||")
	f.Add("1|s|1|1|0|||a|b|c")
	f.Fuzz(func(t *testing.T, s string) {
		var tc contact.Touch
		if !decodeTouch(s, &tc) {
			return
		}
		var back contact.Touch
		enc := encodeTouch(&tc)
		if !decodeTouch(enc, &back) {
			t.Fatalf("touch %q decoded, and its encoding %q does not", s, enc)
		}
		if !back.At.Equal(tc.At) || !back.ExpiresAt.Equal(tc.ExpiresAt) || back.Channel != tc.Channel ||
			back.Purpose != tc.Purpose || back.Topic != tc.Topic || back.ActionID != tc.ActionID ||
			back.MessageID != tc.MessageID || back.State != tc.State || back.ReservationID != tc.ReservationID {
			t.Fatalf("touch round trip changed it:\n got %+v\nwant %+v", back, tc)
		}
	})
}

func sameRecord(a, b consent.Record) bool {
	return a.Channel == b.Channel && a.Purpose == b.Purpose && a.Topic == b.Topic && a.Address == b.Address &&
		a.Status == b.Status && a.CapturedAt.Equal(b.CapturedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.Source == b.Source && a.CapturedBy == b.CapturedBy && a.NoticeVersion == b.NoticeVersion
}
