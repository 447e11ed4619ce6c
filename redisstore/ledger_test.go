package redisstore

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// format3 is e as set_consent.lua stores it, with sequence number seq.
func format3(seq int64, e consent.LedgerEntry) string {
	applied, notApplied, err := encodeLedger(e, e.Record == (consent.Record{}))
	if err != nil {
		panic(err)
	}
	data := notApplied
	if e.Applied {
		data = applied
	}
	return "3|" + strconv.FormatInt(seq, 10) + "|" + data
}

// format2 is e as earlier versions stored it, one line of a string ledger
// or one element of a list ledger, written out here by hand:
// "2|<recorded ms>|<flags>|<channel>|<purpose>|<topic>|<address>|<status>|<captured ms>|<expires ms or 0>|<source>|<captured by>".
func format2(e consent.LedgerEntry) string {
	flags := ""
	if e.Applied {
		flags += "a"
	}
	if e.MarkedComplete {
		flags += "m"
	}
	f := []string{"2", ms(e.RecordedAt), flags, "", "", "", "", "", "", "", "", ""}
	if r := e.Record; r != (consent.Record{}) {
		expires := "0"
		if !r.ExpiresAt.IsZero() {
			expires = ms(r.ExpiresAt)
		}
		copy(f[3:], []string{r.Channel.String(), r.Purpose.String(), r.Topic, r.Address, r.Status.String(),
			ms(r.CapturedAt), expires, r.Source, r.CapturedBy})
	}
	return strings.Join(f, "|")
}

// format1 is e as the first versions stored it: JSON, written out here by
// hand.
func format1(e consent.LedgerEntry) string {
	j := map[string]any{"v": 1, "recorded_at": e.RecordedAt.Format(time.RFC3339Nano), "applied": e.Applied}
	if e.MarkedComplete {
		j["marked_complete"] = true
	}
	if r := e.Record; r != (consent.Record{}) {
		rj := map[string]any{"channel": r.Channel.String(), "purpose": r.Purpose.String(), "status": r.Status.String(),
			"captured_at": r.CapturedAt.Format(time.RFC3339Nano), "source": r.Source}
		if r.Topic != "" {
			rj["topic"] = r.Topic
		}
		if r.Address != "" {
			rj["address"] = r.Address
		}
		if !r.ExpiresAt.IsZero() {
			rj["expires_at"] = r.ExpiresAt.Format(time.RFC3339Nano)
		}
		if r.CapturedBy != "" {
			rj["captured_by"] = r.CapturedBy
		}
		j["record"] = rj
	}
	data, err := json.Marshal(j)
	if err != nil {
		panic(err)
	}
	return string(data)
}

func TestLedgerEncoding(t *testing.T) {
	at := time.Date(2026, 3, 10, 12, 0, 0, 123e6, time.UTC)
	full := consent.LedgerEntry{Seq: 4, RecordedAt: at, MarkedComplete: true, Digest: "d1", Principal: "crm|sync%1", Record: consent.Record{
		Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "brand-x", Address: "em-1",
		Status: consent.OptIn, CapturedAt: at.Add(-time.Hour), ExpiresAt: at.AddDate(1, 0, 0),
		Source: "veeva", CapturedBy: "crm-sync",
	}}
	tests := []struct {
		name        string
		e           consent.LedgerEntry
		markerOnly  bool
		wantApplied string // the stored element when applied, "" not checked
	}{
		{"record with expiry, marker, principal and digest", full, false,
			"3|4|" + ms(at) + "|am|email|promotional|brand-x|em-1|opt_in|" + ms(at.Add(-time.Hour)) + "|" + ms(at.AddDate(1, 0, 0)) + "|veeva|crm-sync|crm%7Csync%251|d1"},
		{"record without expiry", consent.LedgerEntry{Seq: 4, RecordedAt: at, Record: consent.Record{Channel: arbiter.SMS,
			Purpose: arbiter.Service, Status: consent.OptOut, CapturedAt: at, Source: "web"}}, false,
			"3|4|" + ms(at) + "|a|sms|service|||opt_out|" + ms(at) + "|0|web|||"},
		{"barred", consent.LedgerEntry{Seq: 4, RecordedAt: at, Record: rec(arbiter.Push, 0, consent.Barred, at)}, false,
			"3|4|" + ms(at) + "|a|push|unspecified|||barred|" + ms(at) + "|0|veeva|||"},
		{"marker only", consent.LedgerEntry{Seq: 4, RecordedAt: at, MarkedComplete: true}, true,
			"3|4|" + ms(at) + "|am|||||||||||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			applied, notApplied, err := encodeLedger(tt.e, tt.markerOnly)
			if err != nil {
				t.Fatal(err)
			}
			if got := "3|4|" + applied; got != tt.wantApplied {
				t.Errorf("stored entry =\n %q\nwant\n %q", got, tt.wantApplied)
			}
			if len(applied) > 120 {
				t.Errorf("entry is %d bytes: %s", len(applied), applied)
			}
			for _, c := range []struct {
				data    string
				applied bool
			}{{applied, true}, {notApplied, false}} {
				got, err := decodeLedger("3|4|" + c.data)
				if err != nil {
					t.Fatalf("decode %q: %v", c.data, err)
				}
				want := tt.e
				want.Applied = c.applied
				if got != want {
					t.Errorf("decode %q\n got %+v\nwant %+v", c.data, got, want)
				}
			}
		})
	}
	t.Run("a field with a separator", func(t *testing.T) {
		for _, e := range []consent.LedgerEntry{
			{RecordedAt: at, Record: consent.Record{Channel: arbiter.Email, Purpose: arbiter.Medical, Status: consent.OptIn, CapturedAt: at, Source: "a|b"}},
			{RecordedAt: at, Record: consent.Record{Channel: arbiter.Email, Purpose: arbiter.Medical, Status: consent.OptIn, CapturedAt: at, Source: "s", Topic: "a\nb"}},
			{RecordedAt: at, Digest: "x|y"},
		} {
			if a, n, err := encodeLedger(e, e.Record == (consent.Record{})); err == nil {
				t.Errorf("encodeLedger(%+v) = %q, %q; want an error", e, a, n)
			}
		}
	})
}

// The hot path reads format 3 only: entries of earlier formats, and
// anything else that does not decode, are corrupt there (Migrate converts
// the earlier formats).
func TestDecodeLedgerRefuses(t *testing.T) {
	marker := consent.LedgerEntry{RecordedAt: t0, Applied: true, MarkedComplete: true}
	good := format3(0, marker)
	for _, tt := range []struct{ name, data string }{
		{"empty", ""},
		{"format 1", format1(marker)},
		{"format 2", format2(marker)},
		{"unknown format", "4" + good[1:]},
		{"too few fields", strings.TrimSuffix(strings.TrimSuffix(good, "|"), "|")},
		{"too many fields", good + "|"},
		{"sequence not a number", strings.Replace(good, "3|0|", "3|x|", 1)},
		{"time not a number", "3|0|soon" + good[len("3|0|")+len(ms(t0)):]},
		{"unknown channel", "3|0|" + ms(t0) + "|a|fax|medical|||opt_in|" + ms(t0) + "|0|veeva|||"},
		{"unknown status", "3|0|" + ms(t0) + "|a|email|medical|||maybe|" + ms(t0) + "|0|veeva|||"},
		{"capture time not a number", "3|0|" + ms(t0) + "|a|email|medical|||opt_in|x|0|veeva||"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := decodeLedger(tt.data); err == nil {
				t.Errorf("decodeLedger(%q) = %+v, want an error", tt.data, got)
			}
		})
	}
	// An entry of format 3 written before entries carried a principal
	// (14 fields) still decodes, with no principal.
	old := strings.TrimSuffix(good, "|") // drop the principal field
	if e, err := decodeLedger(old); err != nil || e.Principal != "" || !e.MarkedComplete {
		t.Errorf("decodeLedger(%q) = %+v, %v; want the marker entry without a principal", old, e, err)
	}
	if got, err := decodeLedger(good); err != nil || got != marker {
		t.Errorf("decodeLedger(%q) = %+v, %v; want %+v", good, got, err, marker)
	}
}

// Migrate reads the formats of earlier versions: format 1 (JSON) and 2.
func TestDecodeOldLedger(t *testing.T) {
	at := time.Date(2026, 3, 10, 12, 0, 0, 123e6, time.UTC)
	entries := []struct {
		name string
		e    consent.LedgerEntry
	}{
		{"opt-out with topic and marker", consent.LedgerEntry{RecordedAt: at, Applied: true, MarkedComplete: true,
			Record: consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "brand-x", Status: consent.OptOut,
				CapturedAt: at.Add(-time.Hour), Source: "veeva", CapturedBy: "crm-sync"}}},
		{"opt-in with address and expiry, not applied", consent.LedgerEntry{RecordedAt: at,
			Record: consent.Record{Channel: arbiter.SMS, Purpose: arbiter.Service, Address: "a-1", Status: consent.OptIn,
				CapturedAt: at.Add(-time.Hour), ExpiresAt: at.AddDate(1, 0, 0), Source: "web"}}},
		{"barred", consent.LedgerEntry{RecordedAt: at, Applied: true, Record: rec(arbiter.Push, 0, consent.Barred, at)}},
		{"marker only", consent.LedgerEntry{RecordedAt: at, Applied: true, MarkedComplete: true}},
	}
	formats := []struct {
		name   string
		encode func(consent.LedgerEntry) string
	}{
		{"format 1", format1},
		{"format 2", format2},
	}
	for _, f := range formats {
		for _, tt := range entries {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				data := f.encode(tt.e)
				got, err := decodeOldLedger(data)
				if err != nil || got != tt.e {
					t.Errorf("decodeOldLedger(%q) =\n %+v, %v\nwant\n %+v", data, got, err, tt.e)
				}
			})
		}
	}
	for _, bad := range []string{
		"", "2|x", `{"v":9}`, "{not json",
		format3(0, entries[3].e),
		"2|1|a|fax|promotional|||opt_in|1|0|s|b",
		"2|x|a|email|promotional|||opt_in|1|0|s|b",
		`{"v":1,"recorded_at":"2026-03-10T12:00:00Z","applied":true,"record":{"channel":"email","purpose":"promotional","status":"maybe","captured_at":"2026-03-10T11:00:00Z","source":"veeva"}}`,
	} {
		if got, err := decodeOldLedger(bad); err == nil {
			t.Errorf("decodeOldLedger(%q) = %+v, want an error", bad, got)
		}
	}
}

// Every ledger entry gets the next sequence number, 0, 1, 2, ..., however
// it is written (one record, a batch, the marker alone, an unsubscribe
// event), and is stamped with the clock's time when it was recorded.
func TestLedgerSequence(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb, c := newStoreOn(t, b)
		ctx := context.Background()
		if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
			t.Fatal(err)
		}
		in := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0)
		med := rec(arbiter.Email, arbiter.Medical, consent.OptIn, t0)
		writes := []struct {
			name  string
			at    time.Time // the clock when written
			write func() error
			n     int // entries it appends
		}{
			{"one record", t0.Add(time.Second), func() error { _, err := s.SetConsent(ctx, "hcp-1", in, false); return err }, 1},
			{"a batch", t0.Add(2*time.Second + 500*time.Microsecond), func() error {
				_, err := s.SetConsentMany(ctx, "hcp-1", []consent.Record{med, in}, false)
				return err
			}, 2},
			{"the marker alone", t0.Add(time.Hour), func() error { _, err := s.SetConsentMany(ctx, "hcp-1", nil, true); return err }, 1},
			{"an unsubscribe event", t0.Add(2 * time.Hour), func() error {
				_, err := s.ApplyEvent(ctx, unsubscribe("hcp-1", "unsub-1", t0.Add(time.Hour)))
				return err
			}, 1},
			{"a repeat", t0.Add(day), func() error { _, err := s.SetConsent(ctx, "hcp-1", in, true); return err }, 1},
		}
		var wantAt []time.Time
		for _, w := range writes {
			c.t = w.at
			if err := w.write(); err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			for range w.n {
				wantAt = append(wantAt, w.at.Truncate(time.Millisecond))
			}
		}
		entries := ledger(t, s, "hcp-1")
		if len(entries) != len(wantAt) {
			t.Fatalf("%d ledger entries, want %d", len(entries), len(wantAt))
		}
		raw := rdb.LRange(ctx, s.key("hcp-1", suffixConsentLog), 0, -1).Val()
		for i, e := range entries {
			if e.Seq != int64(i) {
				t.Errorf("entry %d: Seq = %d, want %d", i, e.Seq, i)
			}
			if !e.RecordedAt.Equal(wantAt[i]) || e.RecordedAt.Location() != time.UTC {
				t.Errorf("entry %d: RecordedAt = %v, want %v in UTC", i, e.RecordedAt, wantAt[i])
			}
			if prefix := "3|" + strconv.Itoa(i) + "|" + ms(wantAt[i]) + "|"; i >= len(raw) || !strings.HasPrefix(raw[i], prefix) {
				t.Errorf("stored entry %d does not start with %q", i, prefix)
			}
		}
	})
}

// ConsentHistory returns one page: the entries from offset, at most limit
// of them, and the total however many it returns.
func TestConsentHistoryPages(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx := context.Background()
		const n = 7
		for i := range n {
			r := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0.Add(time.Duration(i)*time.Minute))
			r.CapturedBy = "u-" + strconv.Itoa(i)
			if _, err := s.SetConsent(ctx, "hcp-1", r, false); err != nil {
				t.Fatal(err)
			}
		}
		all := ledger(t, s, "hcp-1")
		if len(all) != n {
			t.Fatalf("%d entries, want %d", len(all), n)
		}
		tests := []struct {
			name          string
			id            string
			offset, limit int
			want          []consent.LedgerEntry
			wantTotal     int64
		}{
			{"first page", "hcp-1", 0, 3, all[0:3], n},
			{"middle page", "hcp-1", 3, 3, all[3:6], n},
			{"last, short page", "hcp-1", 6, 3, all[6:], n},
			{"one entry", "hcp-1", 4, 1, all[4:5], n},
			{"all at once", "hcp-1", 0, maxHistoryLimit, all, n},
			{"exactly to the end", "hcp-1", 2, 5, all[2:], n},
			{"past the end", "hcp-1", n, 10, []consent.LedgerEntry{}, n},
			{"far past the end", "hcp-1", 100, 10, []consent.LedgerEntry{}, n},
			{"no ledger", "hcp-2", 0, 10, []consent.LedgerEntry{}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, total, err := s.ConsentHistory(ctx, tt.id, tt.offset, tt.limit)
				if err != nil {
					t.Fatalf("ConsentHistory(%d, %d) error = %v", tt.offset, tt.limit, err)
				}
				if total != tt.wantTotal || !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ConsentHistory(%d, %d) = %+v, total %d; want %+v, total %d", tt.offset, tt.limit, got, total, tt.want, tt.wantTotal)
				}
				for i, e := range got {
					if want := int64(tt.offset + i); e.Seq != want {
						t.Errorf("page entry %d: Seq = %d, want %d", i, e.Seq, want)
					}
				}
			})
		}
	})
}
