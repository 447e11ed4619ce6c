package consent

import (
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
)

func TestLedgerEncoding(t *testing.T) {
	at := time.Date(2026, 3, 10, 12, 0, 0, 123e6, time.UTC)
	full := LedgerEntry{Seq: 4, RecordedAt: at, MarkedComplete: true, Record: Record{
		Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "brand-x", Address: "em-1",
		Status: OptIn, CapturedAt: at.Add(-time.Hour), ExpiresAt: at.AddDate(1, 0, 0),
		Source: "veeva", CapturedBy: "crm-sync",
	}}
	for _, tt := range []struct {
		name       string
		e          LedgerEntry
		markerOnly bool
	}{
		{"record with expiry and marker", full, false},
		{"record without expiry", LedgerEntry{Seq: 4, RecordedAt: at, Record: Record{Channel: arbiter.SMS,
			Purpose: arbiter.Service, Status: OptOut, CapturedAt: at, Source: "web"}}, false},
		{"marker only", LedgerEntry{Seq: 4, RecordedAt: at, MarkedComplete: true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			applied, notApplied, err := encodeLedger(tt.e, tt.markerOnly)
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) > 120 {
				t.Errorf("entry is %d bytes: %s", len(applied), applied)
			}
			for _, c := range []struct {
				data    string
				applied bool
			}{{applied, true}, {notApplied, false}} {
				got, err := decodeLedger(4, c.data)
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
}

// Ledgers written before format 2 hold JSON entries: they must still read.
func TestLedgerDecodesFormat1(t *testing.T) {
	data := `{"v":1,"recorded_at":"2026-03-10T12:00:00.123Z","applied":true,"marked_complete":true,` +
		`"record":{"channel":"email","purpose":"promotional","topic":"brand-x","status":"opt_out",` +
		`"captured_at":"2026-03-10T11:00:00Z","source":"veeva","captured_by":"crm-sync"}}`
	got, err := decodeLedger(7, data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 7 || !got.Applied || !got.MarkedComplete || got.Record.Status != OptOut ||
		got.Record.Channel != arbiter.Email || got.Record.Source != "veeva" ||
		!got.Record.CapturedAt.Equal(time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("format 1 entry decoded as %+v", got)
	}
	for _, bad := range []string{"", "2|x", "3|1|a|email|promotional|||opt_in|1|0|s|b", "2|1|a|fax|promotional|||opt_in|1|0|s|b", `{"v":9}`} {
		if _, err := decodeLedger(0, bad); err == nil {
			t.Errorf("decodeLedger(%q) accepted a corrupt entry", bad)
		}
	}
}
