package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/internal/redistest"
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
	if _, _, err := ts.client.GetProfile(ctx, "FEED-0599"); err != nil {
		t.Errorf("an HCP of the first, valid batch was not written: %v", err)
	}
	if _, _, err := ts.client.GetProfile(ctx, "FEED-0650"); !client.IsNotFound(err) {
		t.Errorf("an HCP of the invalid batch: %v, want NotFound (nothing of that batch is written)", err)
	}
}
