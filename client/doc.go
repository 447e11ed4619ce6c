// Package client is the Go client of Arbiter's gRPC API, for the rep tools,
// marketing automation platforms and data feeds that ask for next best
// actions and report outcomes back.
//
// It speaks the API in plain Go types (Decision, Event, Profile,
// ConsentRecord...) and converts them to and from the protobuf messages in
// one place, convert.go; callers never need the generated nbapb package.
// Enumerations shared with the server (channels, purposes, audiences, caller
// kinds, event types) are the root package's arbiter types; the client's own
// (ConsentStatus, SuppressionReason) are strings.
//
// The types have a JSON form with snake_case names and enums by name
// ("channel": "email"), which is also the JSON Lines format of a bulk import
// feed: one ImportItem per line.
//
// # What it never does
//
//   - It never imports server-side packages (storage, consent rules, scoring,
//     the server itself) or their dependencies: a caller's binary carries
//     gRPC and protobuf, nothing more.
//   - It never rewrites an error from the server. A failed call returns the
//     gRPC status error as received, so that callers can switch on
//     status.Code(err); IsNotFound and FieldViolations read it for the common
//     cases.
//   - It never retries on its own. The caller knows whether a repeat is
//     safe: RecordEvent is idempotent by event id, a repeated Decide logs a
//     second decision.
//
// # Deadlines
//
// A unary call whose context has no deadline gets the client's default
// timeout (10 seconds; see WithTimeout). An Import stream gets none: a large
// feed takes as long as it takes, bounded only by the caller's context.
//
// # Example
//
//	c, err := client.Dial("arbiter.internal:50051", client.WithTimeout(2*time.Second))
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//
//	d, err := c.Decide(ctx, "HCP-000042", client.DecideOptions{
//		Limit:    3,
//		Caller:   arbiter.CallerRepTool,
//		Channels: []arbiter.Channel{arbiter.Email, arbiter.RepVisit},
//		Explain:  true,
//	})
//	if client.IsNotFound(err) {
//		return errUnknownHCP
//	}
//	if err != nil {
//		return err // a gRPC status: status.Code(err), client.FieldViolations(err)
//	}
//	for _, r := range d.Recommendations {
//		fmt.Println(r.Rank, r.ActionID, r.Channel, r.Reason)
//	}
//	for _, s := range d.Suppressed {
//		fmt.Println("suppressed", s.ActionID, s.Reason)
//	}
//
//	// Later, when the email was opened, tie the outcome to the decision.
//	_, err = c.RecordEvent(ctx, client.Event{
//		ID: "esp-7781", HCPID: "HCP-000042", Type: arbiter.EventOpened,
//		Channel: arbiter.Email, DecisionID: d.ID, OccurredAt: time.Now(),
//	})
package client
