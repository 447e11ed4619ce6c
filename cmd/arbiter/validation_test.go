package main

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Inputs that were accepted, or accepted wrongly, and now get
// InvalidArgument naming the field, with nothing written (issue 15,
// "validation that fails open or silently").
func TestWritesRefuseBadTimesAndLiteralAddresses(t *testing.T) {
	ts := start(t, singleRedis(t), 1)
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()
	consents := nbapb.NewConsentServiceClient(conn)
	events := nbapb.NewEventServiceClient(conn)
	profiles := nbapb.NewProfileServiceClient(conn)
	addRecipient(t, ts.client, "VALID-1", "America/New_York", arbiter.HCP)
	now := timestamppb.Now()
	record := func(edit func(*nbapb.ConsentRecord)) *nbapb.SetConsentRequest {
		r := &nbapb.ConsentRecord{Channel: nbapb.Channel_CHANNEL_EMAIL, Purpose: nbapb.Purpose_PURPOSE_PROMOTIONAL,
			Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN, CapturedAt: timestamppb.New(now.AsTime()), Source: "crm"}
		edit(r)
		return &nbapb.SetConsentRequest{HcpId: "VALID-1", Record: r}
	}
	wantField := func(name string, err error, field string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || client.FieldViolations(err)[field] == "" {
			t.Errorf("%s: %v, want InvalidArgument naming %s", name, err, field)
		}
	}
	_, err = consents.SetConsent(ctx, record(func(r *nbapb.ConsentRecord) { r.ExpiresAt = &timestamppb.Timestamp{Seconds: -62135596800} }))
	wantField("an opt-in expiring 0001-01-01 (which read as no expiry)", err, "record.expires_at")
	_, err = consents.SetConsent(ctx, record(func(r *nbapb.ConsentRecord) { r.ExpiresAt = &timestamppb.Timestamp{Seconds: 253402300800} }))
	wantField("an expiry in year 10000", err, "record.expires_at")
	_, err = consents.SetConsent(ctx, record(func(r *nbapb.ConsentRecord) { r.CapturedAt.Nanos = 1_500_000_000 }))
	wantField("invalid nanoseconds", err, "record.captured_at")
	_, err = consents.SetConsent(ctx, record(func(r *nbapb.ConsentRecord) { r.AddressRef = "jane.doe@example.com" }))
	wantField("an e-mail address as address_ref", err, "record.address_ref")
	// A line break would break the ledger's stored form: refused as the
	// caller's mistake, not answered Internal (found by FuzzConsentRecord).
	_, err = consents.SetConsent(ctx, record(func(r *nbapb.ConsentRecord) { r.AddressRef = "crm:1\ncrm:2" }))
	wantField("a line break in address_ref", err, "record.address_ref")
	_, err = events.RecordEvent(ctx, &nbapb.RecordEventRequest{Event: &nbapb.Event{EventId: "v-1", HcpId: "VALID-1",
		Type: nbapb.EventType_EVENT_TYPE_OPENED, Channel: nbapb.Channel_CHANNEL_EMAIL, OccurredAt: &timestamppb.Timestamp{Seconds: 253402300800}}})
	wantField("an event in year 10000", err, "event.occurred_at")
	_, err = profiles.UpsertProfile(ctx, &nbapb.UpsertProfileRequest{Profile: &nbapb.Profile{HcpId: "VALID-1", Market: "US",
		Audience: nbapb.Audience_AUDIENCE_HCP, Addresses: []*nbapb.ChannelAddress{{Channel: nbapb.Channel_CHANNEL_EMAIL, AddressRef: "jane.doe@example.com"}}}})
	wantField("an e-mail address in a profile", err, "profile.addresses[0].address_ref")

	// Nothing of it was written: the consent is the one opt-in addRecipient gave.
	st, err := ts.client.GetConsent(ctx, "VALID-1")
	if err != nil || len(st.Records) != 1 || !st.Records[0].ExpiresAt.IsZero() || st.Records[0].AddressRef != "" {
		t.Errorf("consent after the refused writes: %+v, %v", st, err)
	}
}
