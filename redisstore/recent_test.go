package redisstore

import (
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// History entries of every version decode: without a principal (before
// the principal was recorded), with one, and with the event's purpose.
func TestDecodeHistoryVersions(t *testing.T) {
	want := recipient.RecentEvent{At: t0, Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "a", Topic: "t"}
	withPurpose := want
	withPurpose.Purpose = arbiter.Medical
	e := recipient.Event{Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "a", Topic: "t"}
	ep := e
	ep.Purpose = arbiter.Medical
	for _, tt := range []struct {
		entry string
		want  recipient.RecentEvent
	}{
		{ms(t0) + "|opened|email|a|t", want},
		{historyEntry(e, t0.UnixMilli(), "feed|1"), want},
		{historyEntry(ep, t0.UnixMilli(), "feed|1"), withPurpose},
	} {
		got, ok := decodeHistory(tt.entry)
		if !ok || got != tt.want {
			t.Errorf("decodeHistory(%q) = %+v, %v; want %+v", tt.entry, got, ok, tt.want)
		}
	}
	for _, bad := range []string{"", "x|opened|email|a|t", ms(t0) + "|nope|email|a|t", ms(t0) + "|opened|email|a|t|p|nope"} {
		if _, ok := decodeHistory(bad); ok {
			t.Errorf("decodeHistory(%q) decoded", bad)
		}
	}
}
