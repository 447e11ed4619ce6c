package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
)

// The touch ledger (key suffix :t): one list per recipient, read by every
// decision (plan.go) and written by three scripts, each run with
// touches.lua, the ledger's format, in front of it. The format is written
// in touches.lua's header; encodeTouch and decodeTouches are its Go side.

var (
	//go:embed touches.lua
	touchesLib string
	//go:embed reserve.lua
	reserveSrc    string
	reserveScript = redis.NewScript(touchesLib + reserveSrc)
	//go:embed release.lua
	releaseSrc    string
	releaseScript = redis.NewScript(touchesLib + releaseSrc)
	//go:embed import_touches.lua
	importTouchesSrc    string
	importTouchesScript = redis.NewScript(touchesLib + importTouchesSrc)
)

// MaxClockSkew is the most the server's clock and Redis's may differ for a
// booking: caps count windows by the server's clock, so two replicas whose
// clocks differ by d may disagree on touches within d of a window's edge.
// The booking script refuses (Unavailable) when the server's clock is
// further than this from Redis's, which bounds d by twice it.
const MaxClockSkew = time.Second

var touchEscaper = strings.NewReplacer("%", "%25", "|", "%7C")

func escapeTouch(s string) string {
	if strings.ContainsAny(s, "%|") {
		return touchEscaper.Replace(s)
	}
	return s
}

func unescapeTouch(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	s = strings.ReplaceAll(s, "%7C", "|")
	return strings.ReplaceAll(s, "%25", "%")
}

// encodeTouch is a touch's list element (touches.lua).
func encodeTouch(t *contact.Touch) string {
	var b strings.Builder
	b.Grow(64 + len(t.ReservationID) + len(t.MessageID) + len(t.ActionID) + len(t.Topic))
	b.WriteString(formatInt(t.At.UnixMilli()))
	b.WriteByte('|')
	b.WriteByte(" srx"[t.State])
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(int(t.Channel)))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(int(t.Purpose)))
	b.WriteByte('|')
	var exp int64
	if !t.ExpiresAt.IsZero() {
		exp = t.ExpiresAt.UnixMilli()
	}
	b.WriteString(formatInt(exp))
	b.WriteByte('|')
	b.WriteString(t.ReservationID)
	b.WriteByte('|')
	b.WriteString(t.MessageID)
	b.WriteByte('|')
	b.WriteString(escapeTouch(t.ActionID))
	b.WriteByte('|')
	b.WriteString(escapeTouch(t.Topic))
	return b.String()
}

// decodeTouches decodes the ledger's list. A list that does not decode is
// an unreadable ledger (contact.Ledger.Unreadable): the contact policy
// then blocks every capped send rather than count what it cannot read.
func decodeTouches(raw []string) contact.Ledger {
	var l contact.Ledger
	if len(raw) == 0 {
		return l
	}
	hdr, ok := strings.CutPrefix(raw[0], "h|")
	h, v, ok2 := strings.Cut(hdr, "|1|")
	horizon, err1 := strconv.ParseInt(h, 10, 64)
	version, err2 := strconv.ParseInt(v, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil || horizon < 0 || version < 0 {
		return contact.Ledger{Unreadable: true}
	}
	if horizon > 0 {
		l.Horizon = msTime(horizon)
	}
	l.Version = version
	l.Touches = make([]contact.Touch, len(raw)-1)
	for i, s := range raw[1:] {
		if !decodeTouch(s, &l.Touches[i]) {
			return contact.Ledger{Unreadable: true}
		}
	}
	return l
}

func decodeTouch(s string, t *contact.Touch) bool {
	var f [9]string
	for i := range 8 {
		var ok bool
		if f[i], s, ok = strings.Cut(s, "|"); !ok {
			return false
		}
	}
	f[8] = s
	at, err1 := strconv.ParseInt(f[0], 10, 64)
	ch, err2 := strconv.Atoi(f[2])
	pu, err3 := strconv.Atoi(f[3])
	exp, err4 := strconv.ParseInt(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(f[1]) != 1 ||
		!arbiter.Channel(ch).Valid() || pu < 0 || pu >= arbiter.NumPurposes {
		return false
	}
	switch f[1][0] {
	case 's':
		t.State = contact.Sent
	case 'r':
		t.State = contact.Reserved
	case 'x':
		t.State = contact.Released
	default:
		return false
	}
	t.At, t.Channel, t.Purpose = msTime(at), arbiter.Channel(ch), arbiter.Purpose(pu)
	if exp != 0 {
		t.ExpiresAt = msTime(exp)
	}
	t.ReservationID, t.MessageID = f[5], f[6]
	t.ActionID, t.Topic = unescapeTouch(f[7]), unescapeTouch(f[8])
	return true
}

func lrangeAll(_ *Store, ctx context.Context, p redis.Pipeliner, key string) redis.Cmder {
	return p.LRange(ctx, key, 0, -1)
}

func decodeTouchesEntry(cmd redis.Cmder, st *recipient.State, _ *decoder) error {
	st.Touches = decodeTouches(cmd.(*redis.StringSliceCmd).Val())
	return nil
}

// Touches returns recipient id's touch ledger.
func (s *Store) Touches(ctx context.Context, id string) (contact.Ledger, error) {
	if err := recipient.ValidID(id); err != nil {
		return contact.Ledger{}, arbiter.Invalid("hcp_id", err.Error())
	}
	raw, err := s.rdb.LRange(ctx, s.key(id, suffixTouches), 0, -1).Result()
	if err != nil {
		return contact.Ledger{}, storageErr("touches", err)
	}
	return decodeTouches(raw), nil
}

// Reserve books b's touch in the recipient's ledger, atomically, if its
// compiled limits still have room and the consent and profile the check
// read are unchanged. It is idempotent by reservation id: booking one
// already in the ledger books nothing and reports it (contact.BookExists).
func (s *Store) Reserve(ctx context.Context, hcpID string, b *contact.Booking) (contact.BookResult, error) {
	now := s.now()
	args := make([]any, 0, 13+5*len(b.Limits))
	args = append(args, now.UnixMilli(), MaxClockSkew.Milliseconds(), b.Touch.ReservationID, encodeTouch(&b.Touch),
		b.ConsentVersion, b.Guard.Market+"|"+b.Guard.Audience.String()+"|"+b.Guard.TimeZone+"|",
		cutoff(now, b.Bounds), b.Bounds.MaxTouches, b.LedgerVersion)
	args = s.receiptArgs(args, b, now)
	for _, l := range b.Limits {
		args = append(args, l.From, l.To, l.Max, int(l.Filter.Channels), int(l.Filter.Purposes))
	}
	keys := []string{s.key(hcpID, suffixTouches), s.key(hcpID, suffixConsent), s.key(hcpID, suffixProfile),
		s.key(hcpID, suffixReceipts)}
	// Bookings travel in the decision reads' batches when those are
	// auto-pipelined: a campaign books thousands at once.
	var cmd *redis.Cmd
	if s.loader != nil {
		cmd = s.loader.eval(ctx, reserveScript, keys, args...)
	} else {
		cmd = reserveScript.Run(ctx, s.rdb, keys, args...)
	}
	res, err := cmd.Slice()
	if err != nil {
		return contact.BookResult{}, storageErr("reserve", err)
	}
	status, _ := res[0].(string)
	switch status {
	case "booked":
		return contact.BookResult{Status: contact.Booked}, nil
	case "exists":
		st, _ := res[1].(string)
		exp, _ := strconv.ParseInt(fmt.Sprint(res[2]), 10, 64)
		r := contact.BookResult{Status: contact.BookExists, State: contact.Reserved, ExpiresAt: msTime(exp)}
		switch st {
		case "s":
			r.State = contact.Sent
		case "x":
			r.State = contact.Released
		}
		return r, nil
	case "full":
		i, _ := res[1].(int64)
		return contact.BookResult{Status: contact.BookFull, Limit: int(i) - 1}, nil
	case "stale":
		return contact.BookResult{Status: contact.BookStale}, nil
	case "skew":
		return contact.BookResult{}, fmt.Errorf("redisstore: reserve: the server's clock is more than %s from Redis's: %w", MaxClockSkew, arbiter.ErrUnavailable)
	}
	return contact.BookResult{}, fmt.Errorf("redisstore: reserve: unexpected script result %v", res)
}

// Release gives reservation resID of recipient hcpID back. A reservation
// that is not in the recipient's ledger is arbiter.ErrNotFound; one already
// released, sent or expired is a *contact.ReleaseError.
func (s *Store) Release(ctx context.Context, hcpID, resID string) error {
	res, err := releaseScript.Run(ctx, s.rdb, []string{s.key(hcpID, suffixTouches)},
		resID, s.now().UnixMilli()).Text()
	if err != nil {
		return storageErr("release", err)
	}
	switch res {
	case "released":
		return nil
	case "notfound":
		return fmt.Errorf("redisstore: release: %w", arbiter.ErrNotFound)
	case "already", "sent", "expired":
		return &contact.ReleaseError{State: res}
	}
	return fmt.Errorf("redisstore: release: unexpected script result %q", res)
}

// SetTouchBounds sets the bounds events keep the touch ledger within: the
// contact policy's of the definitions in use (contact.Policy.Bounds).
// Until it is called, contact.DefaultBounds.
func (s *Store) SetTouchBounds(b contact.Bounds) {
	if b.MaxTouches <= 0 || b.Retention <= 0 {
		b = contact.DefaultBounds
	}
	s.touchBounds.Store(&b)
}

// TouchBounds returns the bounds set by SetTouchBounds.
func (s *Store) TouchBounds() contact.Bounds {
	if b := s.touchBounds.Load(); b != nil {
		return *b
	}
	return contact.DefaultBounds
}

// cutoff is the oldest time the ledger keeps: the retention, and an hour's
// slack for planned times in the recent past and clock skew.
func cutoff(now time.Time, b contact.Bounds) int64 {
	return now.Add(-b.Retention - time.Hour).UnixMilli()
}

// importTouches adds the touches of the items of batch whose profile was
// written (errs[i] == nil) to their ledgers, in one pipeline, and sets
// errs[i] for those that fail.
func (s *Store) importTouches(ctx context.Context, batch []recipient.ImportItem, errs []error, now time.Time) {
	b := s.TouchBounds()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	args := make([][]any, len(batch))
	for i := range batch {
		it := &batch[i]
		if errs[i] != nil || len(it.Touches) == 0 {
			continue
		}
		a := make([]any, 0, 2+len(it.Touches))
		a = append(a, cutoff(now, b), b.MaxTouches)
		for j := range it.Touches {
			a = append(a, encodeTouch(&it.Touches[j]))
		}
		args[i] = a
		cmds[i] = importTouchesScript.EvalSha(ctx, pipe, []string{s.key(it.Profile.HCPID, suffixTouches)}, a...)
	}
	if pipe.Len() == 0 {
		return
	}
	_, _ = pipe.Exec(ctx) // errors are read per command
	// The script cache may not have the script (the first import since a
	// restart): send the source for the commands that missed it.
	var retry redis.Pipeliner
	for i, c := range cmds {
		if c != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			if retry == nil {
				retry = s.rdb.Pipeline()
			}
			cmds[i] = importTouchesScript.Eval(ctx, retry, []string{s.key(batch[i].Profile.HCPID, suffixTouches)}, args[i]...)
		}
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}
	for i, c := range cmds {
		if c != nil && c.Err() != nil {
			errs[i] = fmt.Errorf("touches: %w", classify(c.Err()))
		}
	}
}
