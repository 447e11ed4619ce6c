package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// resultText is an event result in short: its outcome, and for a
// rejection its code and the fields named.
func resultText(r client.EventResult) string {
	if r.Outcome != client.EventRejected {
		return string(r.Outcome)
	}
	var fields []string
	for _, v := range r.Violations {
		fields = append(fields, v.Field)
	}
	return fmt.Sprintf("REJECTED %s %s", r.Code, strings.Join(fields, ","))
}

func TestRecordEvents(t *testing.T) { eachBackend(t, testRecordEvents) }

// A batch with new, repeated, invalid and unknown recipients' events and a
// decision of another recipient: each gets the answer RecordEvent gives
// it, alone, in order; exactly the valid new ones are applied; sent again,
// those are duplicates and the others are rejected again. The batch's
// events go to Redis in one pipeline.
func testRecordEvents(t *testing.T, b redistest.Backend) {
	ts := start(t, b, 5, "-definitions-poll", "1h")
	c := ts.client
	ctx := context.Background()
	now := time.Now().Add(-time.Minute)
	d2, err := c.Decide(ctx, demo.HCPID(2), client.DecideOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	pre := client.Event{ID: newID("pre"), HCPID: demo.HCPID(1), Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: now}
	recordTouch(t, c, pre)
	opened := client.Event{ID: newID("b"), HCPID: demo.HCPID(1), Type: arbiter.EventOpened, Channel: arbiter.Email,
		Topic: "batch_topic", OccurredAt: now}
	events := []client.Event{
		opened,
		pre,    // applied before
		opened, // twice in the batch
		{ID: newID("b"), HCPID: demo.HCPID(1), Type: arbiter.EventOpened, Channel: arbiter.Email},                                        // no time
		{ID: newID("b"), HCPID: "HCP-999999", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: now},                        // no profile
		{ID: newID("b"), HCPID: demo.HCPID(3), Type: arbiter.EventClicked, Channel: arbiter.Email, DecisionID: d2.ID, OccurredAt: now},   // another's decision
		{ID: newID("b"), HCPID: demo.HCPID(2), Type: arbiter.EventClicked, Channel: arbiter.Email, DecisionID: d2.ID, OccurredAt: now},   // its own
		{ID: "bad\x01id", HCPID: demo.HCPID(1), Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: now},                      // a control character
		{ID: newID("b"), HCPID: demo.HCPID(3), Type: arbiter.EventSent, Channel: arbiter.Email, MessageID: "m-1", OccurredAt: now},       // a touch
		{ID: newID("b"), HCPID: demo.HCPID(3), Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: now.Add(time.Hour)},        // in the future
		{ID: newID("b"), HCPID: demo.HCPID(3), Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "batch_topic", OccurredAt: now}, // applied
	}
	want := []string{"APPLIED", "DUPLICATE", "DUPLICATE", "REJECTED InvalidArgument events[3].occurred_at",
		"REJECTED NotFound events[4].hcp_id", "REJECTED FailedPrecondition events[5].decision_id", "APPLIED",
		"REJECTED InvalidArgument events[7].event_id", "APPLIED", "REJECTED InvalidArgument events[9].occurred_at", "APPLIED"}

	_, before, err := c.GetProfile(ctx, demo.HCPID(1))
	if err != nil {
		t.Fatal(err)
	}
	if before.Topics["batch_topic"] != 0 {
		t.Fatalf("topic engagement before the batch: %v", before.Topics)
	}
	rs, err := c.RecordEvents(ctx, events)
	if err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
	for i, r := range rs {
		if got := resultText(r); got != want[i] {
			t.Errorf("events[%d]: %s, want %s (%+v)", i, got, want[i], r.Violations)
		}
	}
	if rs[6].DecisionLink != nbapb.DecisionLink_DECISION_LINK_VERIFIED {
		t.Errorf("events[6]: decision link %s, want VERIFIED", rs[6].DecisionLink)
	}
	for _, r := range rs {
		for _, v := range r.Violations {
			if v.Description == "" || strings.Contains(v.Description, "HCP-") {
				t.Errorf("violation %+v: want a description without the recipient", v)
			}
		}
	}
	// Applied: the topic engagement of the open, counted once.
	_, after, err := c.GetProfile(ctx, demo.HCPID(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Topics["batch_topic"]; got <= 0.99 || got > 1 {
		t.Errorf("topic engagement after the batch: %v, want one open's (1, decayed by a minute)", got)
	}
	// The refused link applied nothing: the same id, without it, is new.
	refused := events[5]
	refused.DecisionID = ""
	if dup, err := c.RecordEvent(ctx, refused); err != nil || dup {
		t.Errorf("the event refused for its link, sent again without it: duplicate %v, %v; want applied", dup, err)
	}

	// Again: the applied ones are duplicates, the rejected ones rejected.
	rs, err = c.RecordEvents(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		w := want[i]
		if w == "APPLIED" {
			w = "DUPLICATE"
		}
		if got := resultText(r); got != w {
			t.Errorf("again, events[%d]: %s, want %s", i, got, w)
		}
	}

	// One round trip for the batch's events (this server has no journeys
	// to index): 300 events of the 5 recipients.
	batch := make([]client.Event, 300)
	for i := range batch {
		batch[i] = client.Event{ID: newID("p"), HCPID: demo.HCPID(1 + i%5), Type: arbiter.EventClicked, Channel: arbiter.Email,
			OccurredAt: now.Add(-time.Duration(i) * time.Second)}
	}
	nodeTrips := &redistest.RoundTrips{}
	if b.Cluster {
		nodeTrips.AddToNodes(t, ts.rdb)
	}
	if _, err := c.RecordEvents(ctx, batch[:1]); err != nil { // the script loaded, connections made
		t.Fatal(err)
	}
	flushLog(t, ts) // the decision's receipt, written apart
	trips, nodes := ts.trips.N(), nodeTrips.N()
	rs, err = c.RecordEvents(ctx, batch[1:])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Outcome != client.EventApplied {
			t.Fatalf("batch[%d]: %s", i+1, resultText(r))
		}
	}
	if got := ts.trips.N() - trips; got != 1 {
		t.Errorf("a batch of 299 events made %d Redis round trips, want 1 (one pipeline)", got)
	}
	if got := nodeTrips.N() - nodes; b.Cluster && got > 3 {
		t.Errorf("a batch of 299 events made %d round trips to cluster nodes, want one per master at most (3)", got)
	}

	// The request's bounds.
	for _, n := range []int{0, client.MaxEventsPerCall + 1} {
		many := make([]client.Event, n)
		for i := range many {
			many[i] = batch[0]
		}
		_, err := c.RecordEvents(ctx, many)
		if status.Code(err) != codes.InvalidArgument || client.FieldViolations(err)["events"] == "" {
			t.Errorf("%d events: %v, want INVALID_ARGUMENT naming events", n, err)
		}
	}
}

// An event's bad UTF-8 is its own rejection, named by its path; the
// batch's other events are applied.
func TestRecordEventsBadUTF8(t *testing.T) {
	ts := start(t, embedded, 5)
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good, err := proto.Marshal(&nbapb.Event{EventId: newID("utf8"), HcpId: demo.HCPID(1), Type: nbapb.EventType_EVENT_TYPE_OPENED,
		Channel: nbapb.Channel_CHANNEL_EMAIL, OccurredAt: timestamppb.New(time.Now().Add(-time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	// RecordEventsRequest{events: [good, {event_id: "\xfe"}]}
	body := append([]byte{0x0a, byte(len(good))}, good...)
	body = append(body, 0x0a, 0x03, 0x0a, 0x01, 0xfe)
	var out []byte
	if err := conn.Invoke(context.Background(), "/nba.v1.EventService/RecordEvents", body, &out, grpc.ForceCodec(rawCodec{})); err != nil {
		t.Fatal(err)
	}
	var resp nbapb.RecordEventsResponse
	if err := proto.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	rs := resp.GetResults()
	if len(rs) != 2 || rs[0].GetOutcome() != nbapb.EventOutcome_EVENT_OUTCOME_APPLIED ||
		rs[1].GetOutcome() != nbapb.EventOutcome_EVENT_OUTCOME_REJECTED || rs[1].GetCode() != int32(codes.InvalidArgument) {
		t.Fatalf("results %v, want the good event applied and the other rejected", rs)
	}
	if v := rs[1].GetViolations(); len(v) == 0 || v[0].GetField() != "events[1].event_id" || !strings.Contains(v[0].GetDescription(), "UTF-8") {
		t.Errorf("violations %v, want events[1].event_id: must be valid UTF-8", v)
	}
	if resp.GetApplied() != 1 || resp.GetRejected() != 1 || resp.GetDuplicates() != 0 {
		t.Errorf("counts %d applied, %d duplicates, %d rejected; want 1, 0, 1", resp.GetApplied(), resp.GetDuplicates(), resp.GetRejected())
	}
}

func TestRecordEventsJourneysAsSingleCalls(t *testing.T) {
	eachBackend(t, testRecordEventsJourneysAsSingleCalls)
}

// The same events, sent by one recipient's feed one RecordEvent at a
// time and by another's as one RecordEvents batch, leave the two in the
// same place: the same journey progress and membership, counters,
// consent (an unsubscribe), and the same decision.
func testRecordEventsJourneysAsSingleCalls(t *testing.T, b redistest.Backend) {
	ts := start(t, b, 1, "-rules", "../../rules/demo_rules.json", "-definitions-poll", "1h")
	c := ts.client
	ctx := context.Background()
	now := ms(time.Now())
	ids := []string{newID("JOURNEY-SINGLE"), newID("JOURNEY-BATCH")}
	events := func(id string) []client.Event {
		day := 24 * time.Hour
		ev := func(name string, typ arbiter.EventType, ch arbiter.Channel, action string, at time.Time) client.Event {
			return client.Event{ID: id + "-" + name, HCPID: id, Type: typ, Channel: ch, ActionID: action, OccurredAt: at}
		}
		invite := ev("invite", arbiter.EventSent, arbiter.Webinar, launchSteps[0], now.Add(-5*day))
		invite.MessageID = "m-invite"
		delivered := ev("invite-delivered", arbiter.EventDelivered, arbiter.Webinar, launchSteps[0], now.Add(-5*day+time.Minute))
		delivered.MessageID = "m-invite"
		attended := ev("attended", arbiter.EventAttended, arbiter.Webinar, launchSteps[0], now.Add(-3*day))
		// After the clicks addEndocrinologist records (two days ago, at
		// times of its own): the last engagement is this one's.
		opened := ev("opened", arbiter.EventOpened, arbiter.Email, "email-glucanor-dosing", now.Add(-30*time.Minute))
		opened.Topic = "glucanor_dosing"
		return []client.Event{
			invite, delivered, attended,
			attended, // a redelivery
			ev("video", arbiter.EventSent, arbiter.Portal, launchSteps[1], now.Add(-26*time.Hour)),
			opened,
			ev("bounced", arbiter.EventBounced, arbiter.Email, launchSteps[2], now.Add(-time.Hour)),
		}
	}
	for _, id := range ids {
		addEndocrinologist(t, c, id)
	}
	single, batch := events(ids[0]), events(ids[1])
	var dups []bool
	for _, e := range single {
		dup, err := c.RecordEvent(ctx, e)
		if err != nil {
			t.Fatalf("RecordEvent %s: %v", e.ID, err)
		}
		dups = append(dups, dup)
	}
	rs, err := c.RecordEvents(ctx, batch)
	if err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
	for i, r := range rs {
		if want := map[bool]client.EventOutcome{false: client.EventApplied, true: client.EventDuplicate}[dups[i]]; r.Outcome != want {
			t.Errorf("events[%d] (%s): %s in the batch, %s one at a time", i, batch[i].ID, resultText(r), want)
		}
	}
	compareRecipients(t, ts, ids, "after the journey's events")

	// An unsubscribe in a batch: the off-ramp, and the opt-out in the
	// consent ledger, as one RecordEvent makes them.
	unsub := func(id string) client.Event {
		return client.Event{ID: id + "-unsub", HCPID: id, Type: arbiter.EventUnsubscribed, Channel: arbiter.Email, OccurredAt: now.Add(-time.Minute)}
	}
	recordTouch(t, c, unsub(ids[0]))
	if rs, err := c.RecordEvents(ctx, []client.Event{unsub(ids[1]), unsub(ids[1])}); err != nil ||
		rs[0].Outcome != client.EventApplied || rs[1].Outcome != client.EventDuplicate {
		t.Fatalf("an unsubscribe, twice in a batch: %+v, %v; want applied, then a duplicate", rs, err)
	}
	compareRecipients(t, ts, ids, "after the unsubscribe")
	for _, id := range ids {
		if p := launchProgress(t, c, id); p.Status != "exited" || p.OffRampID != "unsubscribed" {
			t.Errorf("%s after the unsubscribe: %+v, want exited by the unsubscribed off-ramp", id, p)
		}
	}
}

// compareRecipients fails the test where two recipients that were sent
// the same events differ: journey progress and membership, counters,
// consent, the touch ledger and the decision (through Decide).
func compareRecipients(t *testing.T, ts *testServer, ids []string, when string) {
	t.Helper()
	c := ts.client
	ctx := context.Background()
	var progress [2][]client.JourneyProgress
	var counters [2]*client.Counters
	var cons [2][]string
	var decisions [2][]string
	var members [2]float64
	for k, id := range ids {
		ps, _, err := c.JourneyProgress(ctx, id, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range ps {
			ps[i].Description = "" // in words, relative to the time of reading
		}
		progress[k] = ps
		if _, counters[k], err = c.GetProfile(ctx, id); err != nil {
			t.Fatal(err)
		}
		st, err := c.GetConsent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st.Records {
			cons[k] = append(cons[k], fmt.Sprint(r.Channel, r.Purpose, r.Status, r.Source))
		}
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 10, Explain: true,
			Candidates: append(append([]string{}, launchSteps...), "email-preference-centre", "email-glucanor-dosing")})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Recommendations {
			decisions[k] = append(decisions[k], fmt.Sprint("rec ", r.ActionID, " ", r.Journey != nil))
		}
		for _, s := range d.Suppressed {
			decisions[k] = append(decisions[k], fmt.Sprint("sup ", s.ActionID, " ", s.Reason, " ", s.ClearsAt.Unix()))
		}
		score, err := ts.rdb.ZScore(ctx, ts.cfg.RedisPrefix+":journey:glucanor-launch:members", id).Result()
		if err != nil {
			t.Fatalf("%s: %s is not a member of the journey: %v", when, id, err)
		}
		members[k] = score
	}
	if !reflect.DeepEqual(progress[0], progress[1]) {
		t.Errorf("%s: journey progress\n  one at a time: %+v\n  batched:       %+v", when, progress[0], progress[1])
	}
	if members[0] != members[1] {
		t.Errorf("%s: journey membership scored %v one at a time, %v batched", when, members[0], members[1])
	}
	if !reflect.DeepEqual(cons[0], cons[1]) {
		t.Errorf("%s: consent\n  one at a time: %v\n  batched:       %v", when, cons[0], cons[1])
	}
	if !reflect.DeepEqual(decisions[0], decisions[1]) {
		t.Errorf("%s: decision\n  one at a time: %v\n  batched:       %v", when, decisions[0], decisions[1])
	}
	// The counters are decayed to the time of reading: equal but for the
	// decay between two reads.
	a, b := counters[0], counters[1]
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-6*math.Max(1, math.Abs(x)) }
	if len(a.Channels) != len(b.Channels) || len(a.Topics) != len(b.Topics) || !a.LastEngagement.Equal(b.LastEngagement) {
		t.Errorf("%s: counters\n  one at a time: %+v\n  batched:       %+v", when, a, b)
		return
	}
	for ch, x := range a.Channels {
		y := b.Channels[ch]
		if !near(x.Engagement, y.Engagement) || !near(x.Sent, y.Sent) || !x.LastContact.Equal(y.LastContact) {
			t.Errorf("%s: %s counters %+v one at a time, %+v batched", when, ch, x, y)
		}
	}
	for topic, x := range a.Topics {
		if !near(x, b.Topics[topic]) {
			t.Errorf("%s: topic %s %v one at a time, %v batched", when, topic, x, b.Topics[topic])
		}
	}
}

// POST /v1/events:batch: the JSON results in order, with the rejected
// event's path; an empty batch is a 400 naming events.
func TestHTTPRecordEvents(t *testing.T) {
	ts := start(t, embedded, 5, "-http-listen", "127.0.0.1:0")
	api := newHTTPAPI(t, ts, nil)
	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	id := newID("http")
	ev := func(id string, at string) string {
		return fmt.Sprintf(`{"event_id": %q, "hcp_id": "HCP-000001", "type": "EVENT_TYPE_CLICKED", "channel": "CHANNEL_EMAIL", "occurred_at": %q}`, id, at)
	}
	body := `{"events": [` + ev(id, at) + `, ` + ev(id, at) + `, ` + `{"event_id": "x", "hcp_id": "HCP-000001", "type": "EVENT_TYPE_CLICKED", "channel": "CHANNEL_EMAIL"}]}`
	code, out := api.do(t, "POST", "/v1/events:batch", body, "")
	if code != http.StatusOK {
		t.Fatalf("POST /v1/events:batch: HTTP %d: %s", code, out)
	}
	var resp struct {
		Results []struct {
			Outcome    string `json:"outcome"`
			Code       int    `json:"code"`
			Violations []struct {
				Field       string `json:"field"`
				Description string `json:"description"`
			} `json:"violations"`
		} `json:"results"`
		Applied, Duplicates, Rejected int
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(resp.Results) != 3 || resp.Results[0].Outcome != "EVENT_OUTCOME_APPLIED" || resp.Results[1].Outcome != "EVENT_OUTCOME_DUPLICATE" ||
		resp.Results[2].Outcome != "EVENT_OUTCOME_REJECTED" || resp.Results[2].Code != 3 ||
		len(resp.Results[2].Violations) != 1 || resp.Results[2].Violations[0].Field != "events[2].occurred_at" {
		t.Errorf("results: %s", out)
	}
	if resp.Applied != 1 || resp.Duplicates != 1 || resp.Rejected != 1 {
		t.Errorf("counts: %s", out)
	}
	code, out = api.do(t, "POST", "/v1/events:batch", `{"events": []}`, "")
	if code != http.StatusBadRequest {
		t.Fatalf("an empty batch: HTTP %d, want 400: %s", code, out)
	}
	if v := violations(t, rpcStatus(t, out)); v["events"] == "" {
		t.Errorf("an empty batch: violations %v, want events", v)
	}
}

// With Redis down, a batch fails as a whole, UNAVAILABLE, saying that its
// events may or may not have been applied and that sending it again is
// safe; a batch of invalid events alone is still answered, event by
// event (nothing of it needed storage).
func TestRecordEventsRedisDown(t *testing.T) {
	rs := ownRedis(t)
	ts := start(t, redistest.Backend{Name: "redis", Addrs: []string{rs.Addr}}, 5)
	ctx := context.Background()
	ok := client.Event{ID: newID("down"), HCPID: demo.HCPID(1), Type: arbiter.EventOpened, Channel: arbiter.Email,
		OccurredAt: time.Now().Add(-time.Minute)}
	if res, err := ts.client.RecordEvents(ctx, []client.Event{ok}); err != nil || res[0].Outcome != client.EventApplied {
		t.Fatalf("with Redis up: %+v, %v", res, err)
	}
	rs.Kill()
	ok.ID = newID("down")
	bad := client.Event{ID: newID("down"), HCPID: demo.HCPID(1), Type: arbiter.EventOpened, Channel: arbiter.Email}
	_, err := ts.client.RecordEvents(ctx, []client.Event{ok, bad})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("with Redis down: %v, want UNAVAILABLE", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "may or may not have been applied") ||
		!strings.Contains(msg, "send the whole batch again") || strings.Contains(msg, "127.0.0.1") {
		t.Errorf("with Redis down the message is %q; want that the events may have been applied and the batch may be sent again", msg)
	}
	res, err := ts.client.RecordEvents(ctx, []client.Event{bad})
	if err != nil || res[0].Outcome != client.EventRejected || res[0].Code != codes.InvalidArgument {
		t.Errorf("invalid events alone with Redis down: %+v, %v; want each rejected", res, err)
	}
}
