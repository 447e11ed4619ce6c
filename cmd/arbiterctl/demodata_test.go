package main

import (
	"bufio"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/recipient"
)

func TestImportItemFromDemo(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	in := recipient.ImportItem{
		Profile: recipient.Profile{
			HCPID: "HCP-000007", Specialty: "oncology", Market: "EU", Audience: arbiter.HCP,
			Segment: "scientific_first", TimeZone: "Europe/Paris",
			Attributes: map[string]float64{"decile": 4}, UpdatedAt: now,
		},
		Counters: &recipient.Counters{LastEngagement: now}, // not carried by the API
		Consent: []consent.Record{
			{Channel: arbiter.Email, Purpose: arbiter.Promotional, Address: "em-7", Status: consent.OptIn,
				CapturedAt: now.AddDate(0, -1, 0), ExpiresAt: now.AddDate(1, 0, 0), Source: "demo-crm", CapturedBy: "demo-seed"},
			{Channel: arbiter.SMS, Status: consent.Barred, CapturedAt: now, Source: "demo-crm"},
			{Channel: arbiter.Push, Purpose: arbiter.Service, Status: consent.StatusUnspecified},
		},
		ConsentComplete: true,
		CapturedBy:      "demo-seed",
	}
	in.Profile.Addresses[arbiter.Email] = "em-7"
	in.Profile.Addresses[arbiter.SMS] = "ph-7"

	want := client.ImportItem{
		Profile: client.Profile{
			HCPID: "HCP-000007", Specialty: "oncology", Market: "EU", Audience: arbiter.HCP,
			Segment: "scientific_first", TimeZone: "Europe/Paris",
			Addresses:  map[arbiter.Channel]string{arbiter.Email: "em-7", arbiter.SMS: "ph-7"},
			Attributes: map[string]float64{"decile": 4}, UpdatedAt: now,
		},
		Consents: []client.ConsentRecord{
			{Channel: arbiter.Email, Purpose: arbiter.Promotional, AddressRef: "em-7", Status: client.ConsentOptIn,
				CapturedAt: now.AddDate(0, -1, 0), ExpiresAt: now.AddDate(1, 0, 0), Source: "demo-crm", CapturedBy: "demo-seed"},
			{Channel: arbiter.SMS, Status: client.ConsentBarred, CapturedAt: now, Source: "demo-crm"},
			{Channel: arbiter.Push, Purpose: arbiter.Service, Status: ""},
		},
		ConsentComplete: true,
		CapturedBy:      "demo-seed",
	}
	if got := importItemFromDemo(in); !reflect.DeepEqual(got, want) {
		t.Errorf("importItemFromDemo() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestConsentStatusNames(t *testing.T) {
	// importItemFromDemo relies on consent.Status and client.ConsentStatus
	// sharing their names.
	for _, s := range []consent.Status{consent.OptIn, consent.OptOut, consent.Pending, consent.Barred} {
		if !client.ConsentStatus(s.String()).Valid() {
			t.Errorf("consent status %q is no client.ConsentStatus", s)
		}
	}
}

func TestDemoDataCommand(t *testing.T) {
	const at = "2026-11-01T00:00:00Z"
	code, stdout, stderr := runCmd(t, "", "demo-data", "-n", "60", "-now", at)
	if code != 0 {
		t.Fatalf("exit status = %d, stderr: %s", code, stderr)
	}
	now, _ := time.Parse(time.RFC3339, at)
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	i := 0
	for sc.Scan() {
		i++
		var got client.ImportItem
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if want := importItemFromDemo(demo.HCP(i, now)); !reflect.DeepEqual(got, want) {
			t.Errorf("line %d =\n%+v\nwant\n%+v", i, got, want)
		}
	}
	if i != 60 {
		t.Errorf("got %d lines, want 60", i)
	}
	_, again, _ := runCmd(t, "", "demo-data", "-n", "60", "-now", at)
	if again != stdout {
		t.Error("demo-data is not deterministic for the same -n and -now")
	}
}
