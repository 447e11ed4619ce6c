package features

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
)

// Profile hash fields (<prefix>:{<hcpID>}:p). Names are short because every
// decision reads all of them.
//
//	sp            specialty
//	mk            market
//	au            audience name ("hcp", "patient")
//	sg            segment (persona); absent when empty
//	tz            IANA time zone; absent when empty
//	ua            profile updated at, unix ms
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
	fUpdatedAt = "ua"
	fLastEng   = "le"
	// fCounterTime is the time the decayed counters are as of.
	fCounterTime = "ct"

	pAddress     = "a:"
	pAttribute   = "x:"
	pEngagement  = "e:"
	pSent        = "s:"
	pTopic       = "t:"
	pLastContact = "lc:"
)

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
	applyEventScript = redis.NewScript(applyEventSrc)

	//go:embed put_profile.lua
	putProfileSrc    string
	putProfileScript = redis.NewScript(putProfileSrc)
)

// Store reads and writes per-HCP state in Redis. It is safe for concurrent
// use.
type Store struct {
	rdb         redis.UniversalClient
	consent     *consent.Store
	prefix      string
	halfLife    time.Duration
	halfLifeMs  float64
	dedupWindow time.Duration
	now         func() time.Time

	// loader, when set, coalesces concurrent Loads into shared pipelines.
	loader                 *loader
	pipeWorkers, pipeBatch int
	pipeTimeout            time.Duration

	// cache, when set, keeps recently read HCPs (EnableCache).
	cache *hcpCache
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the prefix of every key (default "arbiter"). It must be
// the prefix the consent store uses, and may not contain '{' or '}'.
func WithPrefix(prefix string) Option { return func(s *Store) { s.prefix = prefix } }

// WithHalfLife sets the half-life of the decayed counters (default 30 days).
func WithHalfLife(d time.Duration) Option { return func(s *Store) { s.halfLife = d } }

// WithDedupWindow sets how long event ids are remembered to drop duplicate
// deliveries (default 90 days).
func WithDedupWindow(d time.Duration) Option { return func(s *Store) { s.dedupWindow = d } }

// WithClock sets the clock (default time.Now). It stamps profiles, imported
// counters and dedup entries, bounds event times and is the "now" of
// GetProfile.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithAutoPipeline makes concurrent Loads share pipelines: workers
// goroutines each send up to maxBatch queued loads in one pipeline, with
// the given timeout per pipeline. Each Load is still one round trip. Close
// the Store to stop the workers. Off by default.
func WithAutoPipeline(workers, maxBatch int, timeout time.Duration) Option {
	return func(s *Store) { s.pipeWorkers, s.pipeBatch, s.pipeTimeout = workers, maxBatch, timeout }
}

// WithConsentStore sets the consent store that Import and unsubscribe
// events write through (default: a consent.Store on the same client,
// prefix and clock). Pass the server's own, so that its settings (replica
// acknowledgement) apply to every consent write.
func WithConsentStore(cs *consent.Store) Option { return func(s *Store) { s.consent = cs } }

// NewStore returns a Store on rdb, which may be a single Redis, a Redis
// Cluster or miniredis. Import writes consent through a consent.Store on the
// same client, prefix and clock. NewStore panics on an invalid option (an
// empty prefix or one with a brace, a non-positive half-life or window, a nil
// clock): those are wiring mistakes, not runtime conditions.
func NewStore(rdb redis.UniversalClient, opts ...Option) *Store {
	s := &Store{
		rdb:         rdb,
		prefix:      defaultPrefix,
		halfLife:    defaultHalfLife,
		dedupWindow: defaultDedupWindow,
		now:         time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	switch {
	case rdb == nil:
		panic("features: NewStore: nil redis client")
	case s.prefix == "" || strings.ContainsAny(s.prefix, "{}"):
		panic("features: NewStore: prefix must be non-empty and contain no braces")
	case s.halfLife <= 0:
		panic("features: NewStore: half-life must be positive")
	case s.dedupWindow < time.Millisecond:
		panic("features: NewStore: dedup window must be at least 1ms")
	case s.now == nil:
		panic("features: NewStore: nil clock")
	}
	if s.pipeWorkers > 0 {
		if s.pipeBatch < 1 || s.pipeTimeout <= 0 {
			panic("features: NewStore: auto-pipeline needs a batch size >= 1 and a positive timeout")
		}
		s.loader = newLoader(rdb, s.pipeWorkers, s.pipeBatch, s.pipeTimeout)
	}
	s.halfLifeMs = float64(s.halfLife) / float64(time.Millisecond)
	if s.consent == nil {
		s.consent = consent.NewStore(rdb, consent.WithPrefix(s.prefix), consent.WithClock(s.now))
	}
	return s
}

func (s *Store) profileKey(hcpID string) string { return s.prefix + ":{" + hcpID + "}:p" }
func (s *Store) eventsKey(hcpID string) string  { return s.prefix + ":{" + hcpID + "}:ev" }
func (s *Store) historyKey(hcpID string) string { return s.prefix + ":{" + hcpID + "}:h" }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return storageErr("ping", err)
	}
	return nil
}

// Load reads everything a decision needs about one HCP in one round trip:
// the profile, the counters decayed to at, and the consent state.
//
// It returns an error wrapping arbiter.ErrNotFound when the HCP has no
// profile, arbiter.ErrUnavailable when Redis cannot be reached, and
// arbiter.ErrCorrupt when the profile cannot be decoded. Consent that cannot
// be decoded is not an error here: Snapshot.ConsentErr is set and
// Snapshot.Consent is the zero State, which denies everything.
func (s *Store) Load(ctx context.Context, hcpID string, at time.Time) (*Snapshot, error) {
	if err := ValidHCPID(hcpID); err != nil {
		return nil, fmt.Errorf("features: load: %w", arbiter.Invalid("hcp_id", err.Error()))
	}
	if s.cache != nil {
		var fields, consentFields map[string]string
		st, ok, err := s.cache.cached(ctx, hcpID, func() (*stable, error) {
			var err error
			if fields, consentFields, err = s.readRedis(ctx, hcpID); err != nil {
				return nil, storageErr("load", err)
			}
			if len(fields) == 0 {
				return nil, nil
			}
			st, err := decodeStable(fields, consentFields, s.halfLifeMs)
			if err != nil {
				return nil, fmt.Errorf("features: load: %w", err)
			}
			return st, nil
		})
		switch {
		case ok && err != nil:
			return nil, err
		case st != nil:
			return st.snapshot(hcpID, at.UnixMilli(), s.halfLifeMs), nil
		case ok: // read but not cacheable: decode what was read
			return s.decode(hcpID, at, fields, consentFields)
		}
	}
	fields, consentFields, err := s.readRedis(ctx, hcpID)
	if err != nil {
		return nil, storageErr("load", err)
	}
	return s.decode(hcpID, at, fields, consentFields)
}

// decode builds the Snapshot of hcpID's hashes, its counters decayed to at.
func (s *Store) decode(hcpID string, at time.Time, fields, consentFields map[string]string) (*Snapshot, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("features: load: %w", arbiter.ErrNotFound)
	}
	snap := &Snapshot{}
	snap.Profile.HCPID = hcpID
	if err := decodeProfile(fields, at.UnixMilli(), s.halfLifeMs, &snap.Profile, &snap.Counters); err != nil {
		return nil, fmt.Errorf("features: load: %w", err)
	}
	st, err := consent.Decode(consentFields)
	if err != nil {
		snap.ConsentErr = err
	} else {
		snap.Consent = st
	}
	return snap, nil
}

// readRedis fetches the profile and consent hashes in one round trip: its
// own pipeline, or a shared one when auto-pipelining is on.
func (s *Store) readRedis(ctx context.Context, hcpID string) (profile, consentFields map[string]string, err error) {
	pk, ck := s.profileKey(hcpID), consent.Key(s.prefix, hcpID)
	if s.loader != nil {
		return s.loader.load(ctx, pk, ck)
	}
	pipe := s.rdb.Pipeline()
	pc := pipe.HGetAll(ctx, pk)
	cc := pipe.HGetAll(ctx, ck)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, err
	}
	return pc.Val(), cc.Val(), nil
}

// Close stops the HCP cache and the auto-pipelining workers, if any; a
// second call does nothing. It does not close the Redis client, which the
// caller owns.
func (s *Store) Close() {
	if s.cache != nil {
		s.cache.close()
	}
	if s.loader != nil {
		s.loader.close()
	}
}

// GetProfile returns an HCP's profile and counters, decayed to the clock's
// now. Errors are as for Load.
func (s *Store) GetProfile(ctx context.Context, hcpID string) (Profile, Counters, error) {
	if err := ValidHCPID(hcpID); err != nil {
		return Profile{}, Counters{}, fmt.Errorf("features: get profile: %w", arbiter.Invalid("hcp_id", err.Error()))
	}
	fields, err := s.rdb.HGetAll(ctx, s.profileKey(hcpID)).Result()
	if err != nil {
		return Profile{}, Counters{}, storageErr("get profile", err)
	}
	if len(fields) == 0 {
		return Profile{}, Counters{}, fmt.Errorf("features: get profile: %w", arbiter.ErrNotFound)
	}
	p := Profile{HCPID: hcpID}
	var c Counters
	if err := decodeProfile(fields, s.now().UnixMilli(), s.halfLifeMs, &p, &c); err != nil {
		return Profile{}, Counters{}, fmt.Errorf("features: get profile: %w", err)
	}
	return p, c, nil
}

// UpsertProfile validates p and replaces the HCP's descriptive fields in one
// atomic step: addresses and attributes that p no longer has are removed;
// counters are kept. A zero p.UpdatedAt is stamped with the clock's now;
// times are stored with millisecond precision.
func (s *Store) UpsertProfile(ctx context.Context, p Profile) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("features: upsert profile: %w", err)
	}
	args := profileArgs(make([]any, 0, 16), "0", p, s.now())
	if err := putProfileScript.Run(ctx, s.rdb, []string{s.profileKey(p.HCPID)}, args...).Err(); err != nil {
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
//     contact count and moves its last-contact time; the event is pushed on
//     the history list (last 50) and its id remembered.
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
// can never leave the event acknowledged and the opt-out lost; a retried
// delivery writes it again, which the ledger records as not applied.
func (s *Store) ApplyEvent(ctx context.Context, e Event) (duplicate bool, err error) {
	now := s.now()
	if err := e.validate(now); err != nil {
		return false, fmt.Errorf("features: apply event: %w", err)
	}
	if e.Type == arbiter.EventUnsubscribed {
		optOut := consent.Record{
			Channel: e.Channel, Purpose: arbiter.Promotional, Status: consent.OptOut,
			CapturedAt: e.OccurredAt, Source: "unsubscribe-event",
		}
		if len(e.ID) <= 64 && !strings.Contains(e.ID, "|") {
			optOut.CapturedBy = e.ID
		}
		if _, err := s.consent.Set(ctx, e.HCPID, optOut, false); err != nil {
			return false, fmt.Errorf("features: apply event: unsubscribe: %w", err)
		}
	}
	nowMs := now.UnixMilli()
	windowMs := s.dedupWindow.Milliseconds()
	te := e.OccurredAt.UnixMilli()
	contact := "0"
	if e.Type.IsContact() {
		contact = "1"
	}
	keys := []string{s.profileKey(e.HCPID), s.eventsKey(e.HCPID), s.historyKey(e.HCPID)}
	res, err := applyEventScript.Run(ctx, s.rdb, keys,
		e.ID,
		te,
		nowMs,
		nowMs-windowMs,
		windowMs,
		s.halfLifeMs,
		e.Channel.String(),
		e.Type.Engagement(),
		contact,
		e.Topic,
		historyEntry(e, te),
		historyLen,
	).Int64()
	if err != nil {
		return false, storageErr("apply event", err)
	}
	switch res {
	case 0:
		return false, nil
	case 1:
		return true, nil
	case 2:
		return false, fmt.Errorf("features: apply event: %w", arbiter.ErrNotFound)
	case 3:
		return false, fmt.Errorf("features: apply event: counter: %w", arbiter.ErrCorrupt)
	}
	return false, fmt.Errorf("features: apply event: unexpected script result %d", res)
}

// historyEntry is the compact form of an event on the history list:
// "<occurred ms>|<type>|<channel>|<action id>|<topic>". Validation keeps '|'
// out of action ids and topics.
func historyEntry(e Event, te int64) string {
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
	return b.String()
}

// storageErr wraps a go-redis error for the caller: "features: <op>: "
// and the classified cause.
func storageErr(op string, err error) error {
	return fmt.Errorf("features: %s: %w", op, classify(err))
}

// classify wraps a go-redis error in the sentinel it means. Connection
// failures, timeouts and a server that is loading, read-only, busy or out of
// capacity are arbiter.ErrUnavailable; a key of the wrong type is
// arbiter.ErrCorrupt. Other server errors (a script bug) wrap no sentinel:
// they are internal. The cause stays wrapped for the server's log; Redis
// errors name no personal data.
func classify(err error) error {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		// Network error, timeout, context cancelled, closed client, pool
		// exhausted: the server did not answer.
		return fmt.Errorf("%w: %w", arbiter.ErrUnavailable, err)
	}
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return fmt.Errorf("%w: %w", arbiter.ErrCorrupt, err)
	case redis.IsLoadingError(err), redis.IsReadOnlyError(err), redis.IsClusterDownError(err),
		redis.IsTryAgainError(err), redis.IsMasterDownError(err), redis.IsMaxClientsError(err),
		redis.IsNoReplicasError(err), redis.IsOOMError(err), redis.HasErrorPrefix(err, "BUSY"):
		return fmt.Errorf("%w: %w", arbiter.ErrUnavailable, err)
	}
	return err
}
