package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Profile hash fields (<prefix>:{<hcpID>}:p). Names are short because every
// decision reads all of them.
//
//	sp            specialty
//	mk            market
//	au            audience name ("hcp", "patient")
//	sg            segment (persona); absent when empty
//	tz            IANA time zone; absent when empty
//	tr            territories, comma-separated; absent when none
//	ua            profile updated at, unix ms
//	ub            who updated it: the authenticated principal; absent when none
//	a:<channel>   address reference on the channel ("a:email")
//	x:<name>      numeric attribute ("x:decile" = "7")
//
// Counters, written by events (and by Import). The decayed ones hold their
// values as of one time per HCP, so that decay is exact without a timestamp
// on each (apply_event.lua says how events move it):
//
//	ct            the time the decayed counters are as of, unix ms
//	e:<channel>   decayed engagement, "<value>"
//	s:<channel>   decayed contacts (sends, visits, meetings), same format
//	t:<topic>     decayed engagement with a content topic, same format
//	lc:<channel>  last contact on the channel, unix ms
//	le            last positive engagement on any channel, unix ms
//
// Reps' feedback, written by dismissal events (apply_event.lua) and kept
// by profile writes, like operators' journey moves (j:<journey>, journeys.go):
//
//	dm:<action>   the latest dismissal of a suggestion of the action as
//	              not relevant, "<unix ms>|<principal>"; fields older than
//	              dismissalRetention are dropped at the next dismissal
//
// Channels are stored by name (arbiter.Channel.String), not by number, so
// that reordering the enum never reinterprets stored data. Fields this
// version does not know are ignored when loading, so that a newer writer can
// add fields during a rolling deploy.
const (
	fSpecialty = "sp"
	fMarket    = "mk"
	fAudience  = "au"
	fSegment   = "sg"
	fTimeZone  = "tz"
	// fTerritories: the territories, comma-separated (validation keeps
	// commas out of them); absent when none.
	fTerritories = "tr"
	fUpdatedAt   = "ua"
	// fUpdatedBy: the authenticated principal of the last profile write;
	// absent without authentication.
	fUpdatedBy = "ub"
	fLastEng   = "le"
	// fCounterTime is the time the decayed counters are as of.
	fCounterTime = "ct"

	pAddress     = "a:"
	pAttribute   = "x:"
	pEngagement  = "e:"
	pSent        = "s:"
	pTopic       = "t:"
	pLastContact = "lc:"
	// pJourney: an operator's move in a journey, j:<journey id> =
	// "<step>|<ms>|<principal>" (step -1: out of it). Kept by profile
	// writes (put_profile.lua).
	pJourney = "j:"
	// pDismissal: a rep's dismissal of a suggested action as not
	// relevant, dm:<action id> = "<ms>|<principal>". Kept by profile
	// writes (put_profile.lua).
	pDismissal = "dm:"
)

// dismissalRetention is how long a dismissal stays in the profile hash:
// longer than the decision's dismissal gate holds an action back
// (decision.DismissalPeriod; a test checks it), so that a decision always
// reads the dismissals that still count.
const dismissalRetention = 90 * 24 * time.Hour

const (
	defaultPrefix      = "arbiter"
	defaultHalfLife    = 30 * 24 * time.Hour
	defaultDedupWindow = 90 * 24 * time.Hour

	// historyLen is how many events the history list keeps.
	historyLen = 50
)

var (
	//go:embed apply_event.lua
	applyEventSrc    string
	applyEventScript = redis.NewScript(touchesLib + applyEventSrc)

	//go:embed put_profile.lua
	putProfileSrc    string
	putProfileScript = redis.NewScript(putProfileSrc)
)

// Store reads and writes per-recipient state in Redis: profiles, counters,
// events and consent with its ledger. It implements decision.Loader. It is
// safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	options
	halfLifeMs float64
	// loader, when set, coalesces concurrent Loads into shared pipelines.
	loader *loader
	// touchBounds are the touch ledger's bounds (SetTouchBounds).
	touchBounds atomic.Pointer[contact.Bounds]
	// recent is what decisions read of the history (SetRecentEvents).
	recent atomic.Pointer[RecentEvents]
	// receiptRetention is how long receipts are kept, ns (0: the default).
	receiptRetention atomic.Int64
	// receiptScriptLoaded: append_receipt.lua is loaded (receipts.go).
	receiptScriptLoaded atomic.Bool
	// eventScriptLoaded: apply_event.lua is loaded (events.go).
	eventScriptLoaded atomic.Bool
	// chainKey seals consent ledger entries (chain.go; nil: unsealed).
	chainKey atomic.Pointer[[]byte]
}

// options are the Store's settings; New copies the Options onto defaults.
type options struct {
	prefix      string
	halfLife    time.Duration
	dedupWindow time.Duration
	now         func() time.Time

	pipeWorkers, pipeBatch int
	pipeTimeout            time.Duration

	// replicas > 0: a consent write is acknowledged only once that many
	// replicas have it (WAIT), within replicaTimeout.
	replicas       int
	replicaTimeout time.Duration

	// previousReaders: the previous release shares this Redis during a
	// rolling upgrade (WithPreviousReaders).
	previousReaders bool
}

// Option configures a Store.
type Option func(*options)

// WithPrefix sets the prefix of every key (default "arbiter"). It may not
// contain '{' or '}'.
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithHalfLife sets the half-life of the decayed counters (default 30 days).
func WithHalfLife(d time.Duration) Option { return func(o *options) { o.halfLife = d } }

// WithDedupWindow sets how long event ids are remembered to drop duplicate
// deliveries (default 90 days).
func WithDedupWindow(d time.Duration) Option { return func(o *options) { o.dedupWindow = d } }

// WithClock sets the clock (default time.Now). It stamps profiles, imported
// counters, dedup entries and consent ledger entries, bounds event and
// capture times and is the "now" of GetProfile.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithAutoPipeline makes concurrent Loads share pipelines: workers
// goroutines each send up to maxBatch queued loads in one pipeline, with
// the given timeout per pipeline. Each Load is still one round trip. Close
// the Store to stop the workers. Off by default.
func WithAutoPipeline(workers, maxBatch int, timeout time.Duration) Option {
	return func(o *options) { o.pipeWorkers, o.pipeBatch, o.pipeTimeout = workers, maxBatch, timeout }
}

// WithReplicaAck makes every consent write wait until n replicas of the
// recipient's master have it (Redis WAIT on the connection that wrote), for
// at most timeout. Replication is asynchronous: without this, a consent
// change acknowledged just before its master dies can be missing on the
// promoted replica. When fewer replicas confirm in time, the write is
// reported as failed (arbiter.ErrUnavailable) although the master has it:
// the caller retries, and the retry is merged and ledgered as a repeat.
// Default 0 (no wait), for a Redis without replicas.
func WithReplicaAck(n int, timeout time.Duration) Option {
	return func(o *options) { o.replicas, o.replicaTimeout = n, timeout }
}

// WithPreviousReaders makes the store write only the forms the previous
// release reads, while both serve one Redis during a rolling upgrade: a
// consent record's notice version goes to the ledger (where the previous
// release reads only history) and not to the current-consent hash (which
// it reads for every decision, and refuses whole with a field it does not
// know); an erasure, whose marker it cannot read, is refused; consent
// ledger entries are not sealed (the previous release appends unsealed
// ones, and unsealed after sealed is a finding). The previous release
// still fails to read, in a recipient's history, an entry with a notice
// version: its GetConsentHistory answers an error for them. Deploy with
// it, then, once every replica runs this release, deploy again without
// it.
func WithPreviousReaders(on bool) Option { return func(o *options) { o.previousReaders = on } }

// New returns a Store on rdb, which may be a single Redis, a Redis Cluster
// or miniredis. An invalid option (an empty prefix or one with a brace, a
// non-positive half-life or window, a nil clock, a bad auto-pipeline or
// replica setting) is an error.
func New(rdb redis.UniversalClient, opts ...Option) (*Store, error) {
	o := options{
		prefix:      defaultPrefix,
		halfLife:    defaultHalfLife,
		dedupWindow: defaultDedupWindow,
		now:         time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case rdb == nil:
		return nil, errors.New("redisstore: nil redis client")
	case o.prefix == "" || strings.ContainsAny(o.prefix, "{}"):
		return nil, errors.New("redisstore: the key prefix must be non-empty and contain no braces")
	case o.halfLife < time.Millisecond:
		return nil, errors.New("redisstore: the half-life must be at least 1ms")
	case o.dedupWindow < time.Millisecond:
		return nil, errors.New("redisstore: the dedup window must be at least 1ms")
	case o.now == nil:
		return nil, errors.New("redisstore: nil clock")
	case o.pipeWorkers < 0 || o.pipeWorkers > 0 && (o.pipeBatch < 1 || o.pipeTimeout <= 0):
		return nil, errors.New("redisstore: auto-pipelining needs workers >= 0, a batch size >= 1 and a positive timeout")
	case o.replicas < 0 || o.replicas > 0 && o.replicaTimeout <= 0:
		return nil, errors.New("redisstore: replica acknowledgement needs replicas >= 0 and a positive timeout")
	}
	s := &Store{rdb: rdb, options: o, halfLifeMs: float64(o.halfLife) / float64(time.Millisecond)}
	if o.pipeWorkers > 0 {
		s.loader = newLoader(rdb, o.pipeWorkers, o.pipeBatch, o.pipeTimeout)
	}
	return s, nil
}

// HalfLife is the half-life the counters decay with.
func (s *Store) HalfLife() time.Duration { return s.halfLife }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return storageErr("ping", err)
	}
	return nil
}

// Load reads everything a decision needs about one recipient in one round
// trip, following the read plan (plan.go): the profile, the counters
// decayed to at (as stored when at is zero), and the consent state.
//
// It returns an error wrapping arbiter.ErrNotFound when the recipient has
// no profile, arbiter.ErrUnavailable when Redis cannot be reached, and
// arbiter.ErrCorrupt when the profile cannot be decoded. Consent that
// cannot be decoded is not an error here: State.ConsentErr is set and
// State.Consent is the zero consent.State, which denies everything.
func (s *Store) Load(ctx context.Context, id string, at time.Time) (*recipient.State, error) {
	if err := recipient.ValidID(id); err != nil {
		return nil, fmt.Errorf("redisstore: load: %w", arbiter.Invalid("hcp_id", err.Error()))
	}
	if s.loader != nil {
		return s.loader.load(ctx, s, id, at)
	}
	var cmds [planSize]redis.Cmder
	pipe := s.rdb.Pipeline()
	s.queuePlan(ctx, pipe, id, &cmds)
	_, _ = pipe.Exec(ctx) // errors are read per command
	return s.decodePlan(id, &cmds, at)
}

// Close stops the auto-pipelining workers, if any; a second call does
// nothing. It does not close the Redis client, which the caller owns.
func (s *Store) Close() {
	if s.loader != nil {
		s.loader.close()
	}
}

// GetProfile returns an HCP's profile and counters, decayed to the clock's
// now. Errors are as for Load.
func (s *Store) GetProfile(ctx context.Context, hcpID string) (recipient.Profile, recipient.Counters, error) {
	if err := recipient.ValidID(hcpID); err != nil {
		return recipient.Profile{}, recipient.Counters{}, fmt.Errorf("redisstore: get profile: %w", arbiter.Invalid("hcp_id", err.Error()))
	}
	fields, err := s.rdb.HGetAll(ctx, s.key(hcpID, suffixProfile)).Result()
	if err != nil {
		return recipient.Profile{}, recipient.Counters{}, storageErr("get profile", err)
	}
	if len(fields) == 0 {
		return recipient.Profile{}, recipient.Counters{}, fmt.Errorf("redisstore: get profile: %w", arbiter.ErrNotFound)
	}
	p := recipient.Profile{HCPID: hcpID}
	var c recipient.Counters
	if err := decodeProfile(fields, &decoder{at: s.now(), halfLife: s.halfLife}, &p, &c, nil, nil); err != nil {
		return recipient.Profile{}, recipient.Counters{}, fmt.Errorf("redisstore: get profile: %w", err)
	}
	return p, c, nil
}

// UpsertProfile validates p and replaces the HCP's descriptive fields in one
// atomic step: addresses and attributes that p no longer has are removed;
// counters, operators' journey moves and reps' dismissals are kept. The
// territory index follows the profile's territories (territories.go). A zero p.UpdatedAt is stamped with the clock's now;
// times are stored with millisecond precision.
func (s *Store) UpsertProfile(ctx context.Context, p recipient.Profile) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("redisstore: upsert profile: %w", err)
	}
	p.UpdatedBy = principalOf(ctx)
	args := profileArgs(make([]any, 0, 16), "0", p, s.now())
	// The territory index is written around the profile (territories.go):
	// the recipient is in its new territories' sets before the profile
	// names them, and leaves the old ones' after.
	if err := s.enterTerritories(ctx, []territoryWrite{{id: p.HCPID, new: p.Territories}}); err != nil {
		return storageErr("upsert profile", err)
	}
	old, err := putProfileScript.Run(ctx, s.rdb, []string{s.key(p.HCPID, suffixProfile)}, args...).Text()
	if err != nil {
		return storageErr("upsert profile", err)
	}
	if err := s.settleTerritories(ctx, []territoryWrite{{id: p.HCPID, old: old, new: p.Territories}}); err != nil {
		return storageErr("upsert profile", err)
	}
	return nil
}

// ApplyEvent validates e and applies it to the HCP's counters and history in
// one atomic Lua script:
//
//   - an event id already seen within the dedup window: duplicate is true
//     and nothing changes;
//   - no profile for the HCP: an error wrapping arbiter.ErrNotFound, and
//     nothing changes (the id is not remembered, so the event can be
//     delivered again once the profile exists);
//   - otherwise the channel's engagement counter is decayed and the event's
//     weight (arbiter.EventType.Engagement) added; a positive weight also
//     feeds the topic counter and the last-engagement time; a contact
//     (arbiter.EventType.IsContact) adds one to the channel's decayed
//     contact count and moves its last-contact time; a rep's dismissal of
//     a suggestion as not relevant is kept in the profile (pDismissal); the
//     event is pushed on the history list (last 50) and its id remembered.
//
// Events may arrive out of order; the decay handles an event older than a
// counter's timestamp exactly (see apply_event.lua), and last-contact and
// last-engagement times keep the maximum. The dedup set is scored by the
// time the event was recorded (the clock), not when it occurred, so that an
// old event replayed within the window is still recognised.
//
// An unsubscribe is also a consent change: before the event is applied, an
// opt-out of promotional contact on the event's channel, captured at the
// event's time, is written through the consent store (merged and ledgered
// like any other record). It is written first so that a failure in between
// can never leave the event acknowledged and the opt-out lost. The write is
// keyed by the event id, so a redelivered event (after a failure, or a
// duplicate delivery) adds nothing to the ledger.
func (s *Store) ApplyEvent(ctx context.Context, e recipient.Event) (duplicate bool, err error) {
	now := s.now()
	if err := e.ValidateAt(now); err != nil {
		return false, fmt.Errorf("redisstore: apply event: %w", err)
	}
	if err := s.unsubscribeFirst(ctx, e, now); err != nil {
		return false, err
	}
	keys, args := s.eventScriptCall(ctx, e, now, s.TouchBounds())
	res, err := applyEventScript.Run(ctx, s.rdb, keys, args...).Int64()
	if err != nil {
		return false, storageErr("apply event", err)
	}
	return eventResult(res)
}

// unsubscribeFirst writes the opt-out an unsubscribe event carries (see
// ApplyEvent), before the event itself; other events write nothing.
func (s *Store) unsubscribeFirst(ctx context.Context, e recipient.Event, now time.Time) error {
	if e.Type != arbiter.EventUnsubscribed {
		return nil
	}
	by := ""
	if len(e.ID) <= 64 && !strings.Contains(e.ID, "|") {
		by = e.ID
	}
	optOut := consent.Unsubscribe(e.Channel, e.OccurredAt, "unsubscribe-event", by)
	// Keyed by the event id: a redelivered event adds nothing to the
	// ledger (set_consent.lua remembers the key).
	recs := []consent.Record{optOut}
	if err := consent.ValidateWrite(e.HCPID, recs, func(int) string { return "" }, now); err != nil {
		return fmt.Errorf("redisstore: apply event: unsubscribe: %w", err)
	}
	if _, _, err := s.writeConsent(ctx, e.HCPID, recs, false, "event:"+e.ID, now); err != nil {
		return fmt.Errorf("redisstore: apply event: unsubscribe: %w", err)
	}
	return nil
}

// eventScriptCall returns the keys and arguments of apply_event.lua for a
// valid event e, recorded at now, with the touch ledger's bounds b.
func (s *Store) eventScriptCall(ctx context.Context, e recipient.Event, now time.Time, b contact.Bounds) ([]string, []any) {
	nowMs := now.UnixMilli()
	windowMs := s.dedupWindow.Milliseconds()
	te := e.OccurredAt.UnixMilli()
	isContact := "0"
	if e.Type.IsContact() {
		isContact = "1"
	}
	touch := ""
	if e.Type.IsTouch() {
		touch = encodeTouch(&contact.Touch{At: e.OccurredAt, Channel: e.Channel, Purpose: e.Purpose, Topic: e.Topic,
			ActionID: e.ActionID, MessageID: e.MessageID, State: contact.Sent, ReservationID: e.ReservationID})
	}
	keys := []string{s.key(e.HCPID, suffixProfile), s.key(e.HCPID, suffixEvents), s.key(e.HCPID, suffixHistory),
		s.key(e.HCPID, suffixTouches)}
	dismissal, dismissedBy := "", ""
	if e.Type == arbiter.EventDismissed && e.Dismissal == arbiter.DismissNotRelevant {
		dismissal = pDismissal + e.ActionID
		dismissedBy = formatInt(te) + "|" + principalOf(ctx)
	}
	return keys, []any{
		e.ID,
		te,
		nowMs,
		nowMs - windowMs,
		windowMs,
		s.halfLifeMs,
		e.Channel.String(),
		e.Type.Engagement(),
		isContact,
		e.Topic,
		historyEntry(e, te, principalOf(ctx)),
		historyLen,
		touch, e.MessageID, e.ReservationID, cutoff(now, b), b.MaxTouches,
		dismissal, dismissedBy, nowMs - dismissalRetention.Milliseconds(),
	}
}

// eventResult interprets apply_event.lua's result.
func eventResult(res int64) (duplicate bool, err error) {
	switch res {
	case 0:
		return false, nil
	case 1:
		return true, nil
	case 2:
		return false, fmt.Errorf("redisstore: apply event: %w", arbiter.ErrNotFound)
	case 3:
		return false, fmt.Errorf("redisstore: apply event: counter: %w", arbiter.ErrCorrupt)
	case 4:
		return false, fmt.Errorf("redisstore: apply event: touch ledger: %w", arbiter.ErrCorrupt)
	}
	return false, fmt.Errorf("redisstore: apply event: unexpected script result %d", res)
}

// historyEntry is the compact form of an event on the history list:
// "<occurred ms>|<type>|<channel>|<action id>|<topic>|<principal>", then
// "|<purpose>" when the event gave one (entries of earlier versions end
// before the principal), then for a suggestion's feedback
// "|<dismissal reason>|<note>" (the purpose empty if it gave none).
// Validation keeps '|' out of action ids, topics and notes; the principal
// (who the server knows reported the event) is escaped as in the consent
// ledger.
func historyEntry(e recipient.Event, te int64, principal string) string {
	var b strings.Builder
	b.Grow(64 + len(e.ActionID) + len(e.Topic))
	b.WriteString(formatInt(te))
	b.WriteByte('|')
	b.WriteString(e.Type.String())
	b.WriteByte('|')
	b.WriteString(e.Channel.String())
	b.WriteByte('|')
	b.WriteString(e.ActionID)
	b.WriteByte('|')
	b.WriteString(e.Topic)
	b.WriteByte('|')
	b.WriteString(principalEscaper.Replace(principal))
	feedback := e.Dismissal != arbiter.DismissUnspecified || e.Note != ""
	if e.Purpose != arbiter.PurposeUnspecified || feedback {
		b.WriteByte('|')
		if e.Purpose != arbiter.PurposeUnspecified {
			b.WriteString(e.Purpose.String())
		}
	}
	if feedback {
		b.WriteByte('|')
		if e.Dismissal != arbiter.DismissUnspecified {
			b.WriteString(e.Dismissal.String())
		}
		b.WriteByte('|')
		b.WriteString(e.Note)
	}
	return b.String()
}

// principalOf is the subject of the authenticated caller ctx carries, or
// "" (access.Principal).
func principalOf(ctx context.Context) string {
	if p, ok := access.FromContext(ctx); ok {
		return p.Subject
	}
	return ""
}
