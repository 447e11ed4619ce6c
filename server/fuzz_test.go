package server

// Fuzz targets for what callers send: request bytes go through the
// server's own codec and then the checks each RPC makes before anything
// reaches storage. Whatever the bytes, the answer is either accepted or an
// InvalidArgument that names the fields at fault: never a panic, never
// Internal or Unknown for the caller's mistake, never a violation without
// a field.
//
// The committed corpora are in testdata/fuzz; `make fuzz` runs each target
// for a short while, as CI does.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter/consent"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// fuzzNow is the clock of every target, so that a corpus entry means the
// same on every run.
var fuzzNow = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// fuzzRequest decodes data as a T with the server's codec and runs check on
// it; it fails the target when the outcome is not accepted or a clean
// InvalidArgument.
func fuzzRequest[T proto.Message](t *testing.T, data []byte, newMsg func() T, check func(T) error) {
	m := newMsg()
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, m); err != nil {
		t.Fatalf("the codec failed instead of marking the message malformed: %v", err)
	}
	if isMalformed(m) {
		return // answered with errMalformed, which names no field
	}
	err := check(m)
	if err == nil {
		return
	}
	st := status.Convert(toStatus(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), err))
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("a bad %T is answered %v (%q), want InvalidArgument", m, st.Code(), st.Message())
	}
	var violations int
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			violations++
			if v.GetField() == "" || v.GetDescription() == "" || !utf8.ValidString(v.GetField()) ||
				strings.ContainsAny(v.GetField(), " \n") {
				t.Fatalf("a violation with no clean field path: %q %q", v.GetField(), v.GetDescription())
			}
		}
	}
	if violations == 0 {
		t.Fatalf("InvalidArgument %q without field violations", st.Message())
	}
}

func seed[T proto.Message](f *testing.F, msgs ...T) {
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzDecideRequest(f *testing.F) {
	s := &Server{limits: DefaultLimits()}
	seed(f,
		&nbapb.DecideRequest{HcpId: "HCP-000042", Limit: 3},
		&nbapb.DecideRequest{HcpId: "HCP-000042", Candidates: []string{"email-launch", "rep-visit"}, Explain: true,
			Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL,
				Channels: []nbapb.Channel{nbapb.Channel_CHANNEL_EMAIL}, DecisionTime: timestamppb.New(fuzzNow)}},
		&nbapb.DecideRequest{HcpId: "x|y", CandidateSet: "all", Limit: -1},
		&nbapb.DecideRequest{HcpId: "HCP-1", Context: &nbapb.DecisionContext{DecisionTime: &timestamppb.Timestamp{Seconds: 1 << 40, Nanos: -1}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRequest(t, data, func() *nbapb.DecideRequest { return new(nbapb.DecideRequest) }, func(req *nbapb.DecideRequest) error {
			if err := s.validateDecide(req); err != nil {
				return err
			}
			return checkStrings(req)
		})
		fuzzRequest(t, data, func() *nbapb.CheckSendRequest { return new(nbapb.CheckSendRequest) }, func(req *nbapb.CheckSendRequest) error {
			if err := validateCheckSend(req); err != nil {
				return err
			}
			return checkStrings(req)
		})
	})
}

func FuzzConsentRecord(f *testing.F) {
	seed(f,
		&nbapb.SetConsentRequest{HcpId: "HCP-000042", Record: &nbapb.ConsentRecord{
			Channel: nbapb.Channel_CHANNEL_EMAIL, Purpose: nbapb.Purpose_PURPOSE_PROMOTIONAL,
			Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN, CapturedAt: timestamppb.New(fuzzNow.Add(-time.Hour)),
			Source: "crm", CapturedBy: "rep-7", NoticeVersion: "2026-01"}},
		&nbapb.SetConsentRequest{HcpId: "HCP-000042", Record: &nbapb.ConsentRecord{
			Channel: 99, Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN, ExpiresAt: &timestamppb.Timestamp{Seconds: -62135596800},
			AddressRef: "someone@example.com"}},
		&nbapb.SetConsentRequest{HcpId: "HCP-000042", MarkComplete: true},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRequest(t, data, func() *nbapb.SetConsentRequest { return new(nbapb.SetConsentRequest) }, func(req *nbapb.SetConsentRequest) error {
			var c checker
			c.hcpID("hcp_id", req.GetHcpId())
			if req.GetRecord() == nil {
				c.Add("record", "required")
			}
			if err := c.Err(); err != nil {
				return err
			}
			if err := checkStrings(req); err != nil {
				return err
			}
			// What the consent store checks before its write.
			return consent.ValidateWrite(req.GetHcpId(), []consent.Record{consentRecord(req.GetRecord())},
				func(int) string { return "record" }, fuzzNow)
		})
	})
}

func FuzzEvent(f *testing.F) {
	seed(f,
		&nbapb.RecordEventRequest{Event: &nbapb.Event{EventId: "ev-1", HcpId: "HCP-000042", Type: nbapb.EventType_EVENT_TYPE_OPENED,
			Channel: nbapb.Channel_CHANNEL_EMAIL, ActionId: "email-launch", OccurredAt: timestamppb.New(fuzzNow)}},
		&nbapb.RecordEventRequest{Event: &nbapb.Event{EventId: "ev-2", HcpId: "HCP-000042", Type: nbapb.EventType_EVENT_TYPE_SENT,
			Channel: nbapb.Channel_CHANNEL_SMS, MessageId: "m-1", ReservationId: "r-1", Purpose: nbapb.Purpose_PURPOSE_SERVICE,
			OccurredAt: &timestamppb.Timestamp{Seconds: 253402300800}}},
		&nbapb.RecordEventRequest{},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRequest(t, data, func() *nbapb.RecordEventRequest { return new(nbapb.RecordEventRequest) }, func(req *nbapb.RecordEventRequest) error {
			if err := checkStrings(req); err != nil {
				return err
			}
			// What the profile store checks before applying it.
			return prefixFields("event.", event(req.GetEvent()).ValidateAt(fuzzNow))
		})
	})
}

func FuzzImportItem(f *testing.F) {
	seed(f,
		&nbapb.ImportProfilesRequest{Profile: &nbapb.Profile{HcpId: "HCP-000042", Specialty: "oncology", Market: "US",
			Audience:  nbapb.Audience_AUDIENCE_HCP,
			Addresses: []*nbapb.ChannelAddress{{Channel: nbapb.Channel_CHANNEL_EMAIL, AddressRef: "crm:contact:42"}}},
			ConsentComplete: true, CapturedBy: "import",
			Consents: []*nbapb.ConsentRecord{{Channel: nbapb.Channel_CHANNEL_EMAIL, Purpose: nbapb.Purpose_PURPOSE_PROMOTIONAL,
				Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN, CapturedAt: timestamppb.New(fuzzNow.Add(-24 * time.Hour)), Source: "crm"}}},
		&nbapb.ImportProfilesRequest{Profile: &nbapb.Profile{HcpId: "HCP-1", Addresses: []*nbapb.ChannelAddress{
			{Channel: nbapb.Channel_CHANNEL_EMAIL, AddressRef: "a@b.c"}, {Channel: nbapb.Channel_CHANNEL_EMAIL}, {Channel: 99}}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRequest(t, data, func() *nbapb.ImportProfilesRequest { return new(nbapb.ImportProfilesRequest) }, func(req *nbapb.ImportProfilesRequest) error {
			_, err := checkImportItem(req, fuzzNow)
			return prefixFields("items[0].", err)
		})
	})
}

// TestFuzzHarnessRejects checks that the harness above can fail: an error
// that is not the caller's is not passed off as InvalidArgument.
func TestFuzzHarnessRejects(t *testing.T) {
	st := status.Convert(toStatus(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), errors.New("boom")))
	if st.Code() == codes.InvalidArgument {
		t.Fatal("an internal error maps to InvalidArgument; the fuzz targets' check would pass anything")
	}
}
