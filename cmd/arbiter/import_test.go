package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

func TestImportProfiles(t *testing.T) { eachBackend(t, testImportProfiles) }

// A CRM feed through the streaming import: the HCPs it carries can be
// decided for at once, with their consent; an invalid item ends the stream
// naming its position in the whole feed (not in the server's batch of 500),
// after the batches before it were written.
func testImportProfiles(t *testing.T, b redistest.Backend) {
	ts := start(t, b, 1)
	ctx := context.Background()
	item := func(i int) client.ImportItem {
		return client.ImportItem{
			Profile: client.Profile{HCPID: fmt.Sprintf("FEED-%04d", i), Specialty: "cardiology", Market: "US",
				Audience: arbiter.HCP, Segment: "digital_savvy",
				Addresses: map[arbiter.Channel]string{arbiter.Email: fmt.Sprintf("em-%d", i)}},
			Consents: []client.ConsentRecord{{Channel: arbiter.Email, Purpose: arbiter.Promotional,
				Status: client.ConsentOptOut, CapturedAt: time.Now().Add(-time.Hour), Source: "crm"}},
			ConsentComplete: true, CapturedBy: "feed-test",
		}
	}
	send := func(items []client.ImportItem) (int64, error) {
		im, err := ts.client.Import(ctx)
		if err != nil {
			return 0, err
		}
		for _, it := range items {
			if err := im.Send(it); err != nil {
				return 0, err
			}
		}
		return im.Close()
	}

	n, err := send([]client.ImportItem{item(1), item(2)})
	if err != nil || n != 2 {
		t.Fatalf("import: %d, %v; want 2 imported", n, err)
	}
	d, err := ts.client.Decide(ctx, "FEED-0002", client.DecideOptions{Limit: 50, Channels: []arbiter.Channel{arbiter.Email}})
	if err != nil {
		t.Fatalf("decide for an imported HCP: %v", err)
	}
	for _, r := range d.Recommendations {
		if r.Purpose == arbiter.Promotional {
			t.Errorf("imported opt-out ignored: %s recommended", r.ActionID)
		}
	}

	feed := make([]client.ImportItem, 0, 600)
	for i := 0; i < 600; i++ {
		feed = append(feed, item(100+i))
	}
	feed[550].Profile.Market = "" // invalid: in the second batch of 500
	_, err = send(feed)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("import with an invalid item: %v, want InvalidArgument", err)
	}
	if v := client.FieldViolations(err); v["items[550].profile.market"] == "" {
		t.Errorf("field violations %v, want one for items[550].profile.market", v)
	}
	checkPaths(t, &nbapb.ImportProfilesRequest{}, client.FieldViolations(err))
	// The error says how much of the feed was written: the first batch.
	if !strings.Contains(status.Convert(err).Message(), "500 items before it were written") {
		t.Errorf("error message %q does not say that 500 items were written", status.Convert(err).Message())
	}
	var info *errdetails.ErrorInfo
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			info = ei
		}
	}
	if info == nil || info.GetReason() != "IMPORT_STOPPED" || info.GetMetadata()["imported"] != "500" {
		t.Errorf("ErrorInfo detail %v, want reason IMPORT_STOPPED with imported=500", info)
	}
	if _, _, err := ts.client.GetProfile(ctx, "FEED-0599"); err != nil {
		t.Errorf("an HCP of the first, valid batch was not written: %v", err)
	}
	if _, _, err := ts.client.GetProfile(ctx, "FEED-0650"); !client.IsNotFound(err) {
		t.Errorf("an HCP of the invalid batch: %v, want NotFound (nothing of that batch is written)", err)
	}
}

// arbiter migrate runs against a real Redis, reports its progress and is
// safe to repeat: a store written by this version has nothing to convert.
func TestMigrateCommand(t *testing.T) {
	b := singleRedis(t)
	cfg, err := parseConfig("migrate", []string{"-redis-addr", b.Addrs[0], "-redis-prefix", "migrate-cmd"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DemoSize = 20
	if err := Seed(context.Background(), cfg, logger); err != nil {
		t.Fatalf("seed: %v", err)
	}
	for round := 1; round <= 2; round++ {
		var progress strings.Builder
		if err := Migrate(context.Background(), cfg, logger, &progress); err != nil {
			t.Fatalf("round %d: Migrate() = %v", round, err)
		}
		if !strings.Contains(progress.String(), "0 ledgers and 0 profiles converted") {
			t.Errorf("round %d: progress %q, want nothing converted", round, progress.String())
		}
	}
}

// Unsubscribe is one call, and means promotional contact only; stopping all
// contact on a channel is another, and bars it (the foreign client's
// surprise: an email opt-out leaving medical and service email
// recommended is the unsubscribe's meaning, said explicitly).
func TestUnsubscribeAndStopAllContact(t *testing.T) {
	ts := start(t, embedded, 300)
	ctx := context.Background()
	emailPurposes := func(id string) map[arbiter.Purpose]bool {
		d, err := ts.client.Decide(ctx, id, client.DecideOptions{Limit: 50, Channels: []arbiter.Channel{arbiter.Email}})
		if err != nil {
			t.Fatal(err)
		}
		out := map[arbiter.Purpose]bool{}
		for _, r := range d.Recommendations {
			out[r.Purpose] = true
		}
		return out
	}
	// A demo HCP recommended both promotional and other email.
	var hcp string
	for i := 1; i <= 300 && hcp == ""; i++ {
		if p := emailPurposes(demo.HCPID(i)); p[arbiter.Promotional] && (p[arbiter.Medical] || p[arbiter.Service]) {
			hcp = demo.HCPID(i)
		}
	}
	if hcp == "" {
		t.Fatal("no demo HCP is recommended both promotional and other email")
	}
	change := client.ChannelChange{Channel: arbiter.Email, CapturedAt: time.Now(), Source: "esp-unsubscribe-link"}
	entry, err := ts.client.Unsubscribe(ctx, hcp, change)
	if err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if r := entry.Record; !entry.Applied || r.Purpose != arbiter.Promotional || r.Status != client.ConsentOptOut {
		t.Errorf("Unsubscribe wrote %+v, want an applied promotional opt-out", entry)
	}
	if p := emailPurposes(hcp); p[arbiter.Promotional] || !(p[arbiter.Medical] || p[arbiter.Service]) {
		t.Errorf("after Unsubscribe, email purposes recommended %v: want no promotional, the others kept", p)
	}
	change.CapturedAt = time.Now()
	if _, err := ts.client.StopAllContact(ctx, hcp, change); err != nil {
		t.Fatalf("StopAllContact: %v", err)
	}
	if p := emailPurposes(hcp); len(p) != 0 {
		t.Errorf("after StopAllContact, email purposes recommended %v: want none", p)
	}
	// Bad input names the request's own fields.
	_, err = ts.client.Unsubscribe(ctx, hcp, client.ChannelChange{Source: "x"})
	if v := client.FieldViolations(err); status.Code(err) != codes.InvalidArgument || v["channel"] == "" || v["captured_at"] == "" {
		t.Errorf("Unsubscribe without channel and time: %v, violations %v; want channel and captured_at", err, v)
	}
	checkPaths(t, &nbapb.UnsubscribeRequest{}, client.FieldViolations(err))
	// A capture time in the future names the request's own field too.
	_, err = ts.client.StopAllContact(ctx, hcp, client.ChannelChange{Channel: arbiter.SMS,
		CapturedAt: time.Now().Add(time.Hour), Source: "x"})
	if v := client.FieldViolations(err); v["captured_at"] == "" {
		t.Errorf("StopAllContact in the future: %v, violations %v; want captured_at", err, v)
	}
	checkPaths(t, &nbapb.StopAllContactRequest{}, client.FieldViolations(err))
}

// RecordEvent's field violations name paths of RecordEventRequest
// ("event.type"), not doubled ones ("event.event.type").
func TestRecordEventFieldPaths(t *testing.T) {
	ts := start(t, embedded, 5)
	ctx := context.Background()
	_, err := ts.client.RecordEvent(ctx, client.Event{HCPID: "HCP-000001", Channel: arbiter.Email})
	v := client.FieldViolations(err)
	checkPaths(t, &nbapb.RecordEventRequest{}, v)
	for _, want := range []string{"event.event_id", "event.type", "event.occurred_at"} {
		if v[want] == "" {
			t.Errorf("violations %v, want one for %s", v, want)
		}
	}
	for field := range v {
		if strings.HasPrefix(field, "event.event.") || !strings.HasPrefix(field, "event.") {
			t.Errorf("violation of %q: not a path of RecordEventRequest", field)
		}
	}
}

// checkPaths fails the test for every field violation that is not a path
// of msg ("a.b[2].c"; "items[i]." before it names the i-th message of a
// stream): the paths a foreign client is given must exist in the .proto.
func checkPaths(t *testing.T, msg proto.Message, violations map[string]string) {
	t.Helper()
	if len(violations) == 0 {
		t.Error("no field violations to check")
	}
	for path := range violations {
		p := path
		if strings.HasPrefix(p, "items[") {
			_, p, _ = strings.Cut(p, "].")
		}
		if !pathExists(msg.ProtoReflect().Descriptor(), p) {
			t.Errorf("field violation names %q, which is not a field of %s", path, msg.ProtoReflect().Descriptor().FullName())
		}
	}
}

func pathExists(md protoreflect.MessageDescriptor, path string) bool {
	for _, seg := range strings.Split(path, ".") {
		if md == nil {
			return false // a segment after a scalar or a map
		}
		name, index, indexed := strings.Cut(seg, "[")
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil || (indexed && (!fd.IsList() || !strings.HasSuffix(index, "]"))) {
			return false
		}
		md = nil
		if fd.Message() != nil && !fd.IsMap() && (indexed || !fd.IsList()) {
			md = fd.Message()
		}
	}
	return true
}

// Profile field violations name UpsertProfileRequest's own paths: an
// address is addresses[i], not the domain's addresses.<channel>.
func TestUpsertProfileFieldPaths(t *testing.T) {
	ts := start(t, embedded, 5)
	ctx := context.Background()
	p := client.Profile{HCPID: "HCP-000001", Specialty: "cardiology", Audience: arbiter.HCP,
		Addresses: map[arbiter.Channel]string{arbiter.Email: "em|1"}}
	err := ts.client.UpsertProfile(ctx, p)
	v := client.FieldViolations(err)
	if status.Code(err) != codes.InvalidArgument || v["profile.market"] == "" || v["profile.addresses[0].address_ref"] == "" {
		t.Errorf("UpsertProfile: %v, violations %v; want profile.market and profile.addresses[0].address_ref", err, v)
	}
	checkPaths(t, &nbapb.UpsertProfileRequest{}, v)
}
