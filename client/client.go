package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// DefaultTimeout is the per-call timeout of a unary call whose context has
// no deadline, unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Client calls an Arbiter server. It is safe for concurrent use.
type Client struct {
	conn     *grpc.ClientConn // nil when the caller owns the connection
	timeout  time.Duration
	decision nbapb.DecisionServiceClient
	events   nbapb.EventServiceClient
	profiles nbapb.ProfileServiceClient
	consent  nbapb.ConsentServiceClient
	send     nbapb.SendServiceClient
	journeys nbapb.JourneyServiceClient
	dlog     nbapb.DecisionLogServiceClient
	audit    nbapb.AuditServiceClient
	defs     nbapb.DefinitionsServiceClient
	suggest  nbapb.SuggestionServiceClient
}

// Option configures a Client.
type Option func(*options)

type options struct {
	dialOpts []grpc.DialOption
	timeout  time.Duration
	token    string
}

// WithDialOptions adds gRPC dial options, applied after the default
// insecure transport credentials: pass grpc.WithTransportCredentials to use
// TLS. New ignores them (the caller has dialled already).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// WithToken sends token as a bearer credential ("authorization: Bearer
// <token>") with every call: the server's -auth-jwks verifies it. A token
// is a secret: send it over TLS only, which Dial then insists on
// (WithDialOptions with TLS transport credentials), unless the target is
// a loopback address.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// bearerToken is a per-call credential carrying a fixed token.
type bearerToken struct {
	token      string
	requireTLS bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.requireTLS }

// WithTimeout sets the timeout of a unary call whose context has no
// deadline (default DefaultTimeout). Zero or less: no timeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

func newOptions(opts []Option) options {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Dial returns a client of the server at target (a gRPC target such as
// "host:port" or "dns:///arbiter.internal:50051"). It connects lazily: an
// unreachable server shows as codes.Unavailable on the first call. Close
// releases the connection.
func Dial(target string, opts ...Option) (*Client, error) {
	o := newOptions(opts)
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, o.dialOpts...)
	if o.token != "" {
		// Over plaintext only to loopback: a token is a secret.
		loop := loopbackTarget(target)
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearerToken{o.token, !loop}))
	}
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", target, err)
	}
	c := newClient(conn, o)
	c.conn = conn
	return c, nil
}

// New returns a client that calls through conn, which the caller owns and
// closes. Of the options, only WithTimeout applies.
func New(conn grpc.ClientConnInterface, opts ...Option) *Client {
	return newClient(conn, newOptions(opts))
}

func newClient(conn grpc.ClientConnInterface, o options) *Client {
	return &Client{
		timeout:  o.timeout,
		decision: nbapb.NewDecisionServiceClient(conn),
		events:   nbapb.NewEventServiceClient(conn),
		profiles: nbapb.NewProfileServiceClient(conn),
		consent:  nbapb.NewConsentServiceClient(conn),
		send:     nbapb.NewSendServiceClient(conn),
		journeys: nbapb.NewJourneyServiceClient(conn),
		dlog:     nbapb.NewDecisionLogServiceClient(conn),
		audit:    nbapb.NewAuditServiceClient(conn),
		defs:     nbapb.NewDefinitionsServiceClient(conn),
		suggest:  nbapb.NewSuggestionServiceClient(conn),
	}
}

// Close closes the connection that Dial made. For a client made by New it
// does nothing.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// withTimeout applies the default timeout when ctx has no deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Ping checks that the server answers and accepts the client's token: it
// does nothing else. Unauthenticated means the token was refused.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	_, err := c.decision.Ping(ctx, &nbapb.PingRequest{})
	return err
}

// Decide asks for the next best actions for one HCP: the candidates that
// pass eligibility, consent and contact policy, scored and ranked, plus the
// ones that were suppressed and why.
func (c *Client) Decide(ctx context.Context, hcpID string, opts DecideOptions) (*Decision, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.decision.Decide(ctx, decideRequestToPB(hcpID, opts))
	if err != nil {
		return nil, err
	}
	return decisionFromPB(resp), nil
}

// BatchItem is one HCP's answer in a DecideBatch: a Decision, or Err (a
// gRPC status error, codes.NotFound for an HCP the server does not know).
type BatchItem struct {
	HCPID    string
	Decision *Decision
	Err      error
}

// MaxBatch is the most HCPs one DecideBatch may name (the server's
// default limit).
const MaxBatch = 1000

// DecideBatch decides for each of hcpIDs (1 to MaxBatch) with the same
// options, in one call: what a marketing platform asks before a send. The
// items come back in the order of hcpIDs. An unknown HCP is an item with
// Err; a failure of the call itself (storage unavailable, a deadline) is
// the returned error, with the items received before it.
func (c *Client) DecideBatch(ctx context.Context, hcpIDs []string, opts DecideOptions) ([]BatchItem, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	one := decideRequestToPB("", opts)
	stream, err := c.decision.DecideBatch(ctx, &nbapb.DecideBatchRequest{
		HcpIds: hcpIDs, Limit: one.Limit, Candidates: one.Candidates, CandidateSet: one.CandidateSet,
		Context: one.Context, Explain: one.Explain,
	})
	if err != nil {
		return nil, err
	}
	items := make([]BatchItem, 0, len(hcpIDs))
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if len(items) != len(hcpIDs) {
				return items, fmt.Errorf("decide batch: the stream ended after %d of %d HCPs", len(items), len(hcpIDs))
			}
			return items, nil
		}
		if err != nil {
			return items, err
		}
		if int(m.GetIndex()) != len(items) || len(items) >= len(hcpIDs) || m.GetHcpId() != hcpIDs[len(items)] {
			return items, fmt.Errorf("decide batch: item %d came for position %d", len(items), m.GetIndex())
		}
		it := BatchItem{HCPID: m.GetHcpId()}
		switch e, d := m.GetError(), m.GetDecision(); {
		case e != nil:
			code := codes.Code(e.GetCode())
			if code == codes.OK {
				code = codes.Unknown
			}
			it.Err = status.Error(code, e.GetMessage())
		case d != nil:
			it.Decision = decisionFromPB(d)
		default:
			it.Err = status.Error(codes.Unknown, "neither a decision nor an error")
		}
		items = append(items, it)
	}
}

// RecordEvent reports one outcome. It is idempotent by Event.ID: a repeat
// is acknowledged with duplicate true and changes nothing.
func (c *Client) RecordEvent(ctx context.Context, e Event) (duplicate bool, err error) {
	dup, _, err := c.RecordEventLinked(ctx, e)
	return dup, err
}

// RecordEventLinked is RecordEvent, also saying what the event's
// DecisionID was found to be: VERIFIED (a decision of this deployment for
// this recipient) or UNVERIFIED (an id it cannot open; the event is
// applied all the same). A decision of another recipient is
// FAILED_PRECONDITION, and nothing is applied.
func (c *Client) RecordEventLinked(ctx context.Context, e Event) (duplicate bool, link nbapb.DecisionLink, err error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.events.RecordEvent(ctx, &nbapb.RecordEventRequest{Event: eventToPB(e)})
	if err != nil {
		return false, 0, err
	}
	return resp.GetDuplicate(), resp.GetDecisionLink(), nil
}

// UpsertProfile creates or replaces an HCP's profile.
func (c *Client) UpsertProfile(ctx context.Context, p Profile) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	_, err := c.profiles.UpsertProfile(ctx, &nbapb.UpsertProfileRequest{Profile: profileToPB(p)})
	return err
}

// GetProfile returns an HCP's profile and counters (decayed to the time of
// reading). An unknown HCP is codes.NotFound (see IsNotFound).
func (c *Client) GetProfile(ctx context.Context, hcpID string) (*Profile, *Counters, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.profiles.GetProfile(ctx, &nbapb.GetProfileRequest{HcpId: hcpID})
	if err != nil {
		return nil, nil, err
	}
	p := profileFromPB(resp.GetProfile())
	p.Persona = resp.GetPersona()
	return p, countersFromPB(resp.GetCounters()), nil
}

// SetConsent records one consent change. It is appended to the HCP's ledger
// and becomes current unless a more recent record for the same scope exists
// (LedgerEntry.Applied says which). markComplete asserts that the HCP's
// consent data is now complete. A nil error means the change is durable.
func (c *Client) SetConsent(ctx context.Context, hcpID string, r ConsentRecord, markComplete bool) (*LedgerEntry, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.consent.SetConsent(ctx, setConsentRequestToPB(hcpID, r, markComplete))
	if err != nil {
		return nil, err
	}
	e := ledgerEntryFromPB(resp.GetEntry())
	return &e, nil
}

// ChannelChange names one channel of one HCP for Unsubscribe and
// StopAllContact: when the HCP asked, and the source system that heard it.
type ChannelChange struct {
	Channel    arbiter.Channel
	CapturedAt time.Time
	Source     string
	CapturedBy string // optional
}

// Unsubscribe records what an unsubscribe link means: an opt-out of
// promotional contact on the channel. Medical and service contact on the
// channel are not affected; StopAllContact stops them too.
func (c *Client) Unsubscribe(ctx context.Context, hcpID string, ch ChannelChange) (*LedgerEntry, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.consent.Unsubscribe(ctx, &nbapb.UnsubscribeRequest{HcpId: hcpID, Channel: channelToPB(ch.Channel),
		CapturedAt: timeToPB(ch.CapturedAt), Source: ch.Source, CapturedBy: ch.CapturedBy})
	if err != nil {
		return nil, err
	}
	e := ledgerEntryFromPB(resp.GetEntry())
	return &e, nil
}

// StopAllContact bars the channel outright for the HCP: no contact of any
// purpose until a CLEARED record lifts the bar.
func (c *Client) StopAllContact(ctx context.Context, hcpID string, ch ChannelChange) (*LedgerEntry, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.consent.StopAllContact(ctx, &nbapb.StopAllContactRequest{HcpId: hcpID, Channel: channelToPB(ch.Channel),
		CapturedAt: timeToPB(ch.CapturedAt), Source: ch.Source, CapturedBy: ch.CapturedBy})
	if err != nil {
		return nil, err
	}
	e := ledgerEntryFromPB(resp.GetEntry())
	return &e, nil
}

// GetConsent returns an HCP's current consent records and completeness
// marker.
func (c *Client) GetConsent(ctx context.Context, hcpID string) (*ConsentState, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.consent.GetConsent(ctx, &nbapb.GetConsentRequest{HcpId: hcpID})
	if err != nil {
		return nil, err
	}
	return consentStateFromPB(resp), nil
}

// ConsentHistory returns a page of an HCP's consent ledger, oldest first,
// and the ledger's total length. limit is 1 to 1000; 0 means 100.
func (c *Client) ConsentHistory(ctx context.Context, hcpID string, offset, limit int) ([]LedgerEntry, int64, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.consent.GetConsentHistory(ctx, &nbapb.GetConsentHistoryRequest{
		HcpId:  hcpID,
		Offset: int32Of(offset),
		Limit:  int32Of(limit),
	})
	if err != nil {
		return nil, 0, err
	}
	return ledgerEntriesFromPB(resp.GetEntries()), resp.GetTotal(), nil
}

// Import opens a bulk import stream. The server validates and writes items
// in batches, each HCP's profile and consent together or not at all. The
// stream has no default timeout; cancelling ctx aborts it. Always Close the
// Importer.
func (c *Client) Import(ctx context.Context) (*Importer, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.profiles.ImportProfiles(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &Importer{stream: stream, cancel: cancel}, nil
}

// Importer sends one import stream's items. It is not safe for concurrent
// use.
type Importer struct {
	stream grpc.ClientStreamingClient[nbapb.ImportProfilesRequest, nbapb.ImportProfilesResponse]
	cancel context.CancelFunc
	err    error // the stream's end: every later Send or Close returns it
}

// errImporterClosed is returned by Send and Close after a successful Close.
var errImporterClosed = errors.New("client: import: importer closed")

// Send queues one item. When the server has ended the stream, Send returns
// the status it ended with (the same error Close then returns).
func (im *Importer) Send(item ImportItem) error {
	if im.err != nil {
		return im.err
	}
	err := im.stream.Send(importItemToPB(item))
	if err == io.EOF {
		// The server ended the stream; its status says why.
		if _, err = im.stream.CloseAndRecv(); err == nil {
			err = errors.New("client: import: server ended the stream early")
		}
	}
	if err != nil {
		im.err = err
		im.cancel()
	}
	return err
}

// Close ends the stream and returns how many HCPs the server imported.
func (im *Importer) Close() (imported int64, err error) {
	if im.err != nil {
		return 0, im.err
	}
	defer im.cancel()
	resp, err := im.stream.CloseAndRecv()
	if err != nil {
		im.err = err
		return 0, err
	}
	im.err = errImporterClosed
	return resp.GetImported(), nil
}

// loopbackTarget reports whether a gRPC target is a loopback address
// ("127.0.0.1:50051", "[::1]:50051", "localhost:50051", with or without a
// "dns:///" or "passthrough:///" scheme).
func loopbackTarget(target string) bool {
	if _, rest, ok := strings.Cut(target, ":///"); ok {
		target = rest
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
