package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
)

// Migrate converts, once, what earlier versions stored to the current
// formats, so that the hot path reads one format only:
//
//   - a consent ledger kept as one string (format 2 lines) or as a list
//     (format 1 JSON or format 2 lines) at :consent-ledger becomes the
//     append-only list at :consent-log, entries in order, numbered from 0;
//   - a profile whose decayed counters carry their own stamps
//     ("<value>|<t0 ms>") gets them as of one common time (ct), the latest
//     of the stamps, which is what apply_event.lua did on the next event;
//   - the territory index (territories.go) is built: every profile's
//     recipient joins the territories it names (profiles written before
//     the index existed), then every territory's set loses the
//     recipients whose profile no longer names it (a profile write
//     stopped half way, an erasure).
//
// Each recipient's conversion is one script, atomic: it checks that the
// data is still what was read (else the recipient is read again). Entries
// that servers of the earlier version wrote to the old key after a first
// run (during a rolling deploy) are appended after those converted, so run
// Migrate again once every server runs this version. Migrate is safe to
// repeat and to interrupt; what is already converted is skipped, and a
// recipient whose data cannot be converted is counted (Failed) and passed
// over. progress, if not nil, is called
// every 1000 keys scanned and at the end.
func (s *Store) Migrate(ctx context.Context, progress func(MigrateProgress)) (MigrateProgress, error) {
	var p MigrateProgress
	// mu guards p: on a cluster, ForEachMaster scans the masters at once.
	var mu sync.Mutex
	report := func() {
		if progress != nil {
			progress(p)
		}
	}
	count := func(f func()) {
		mu.Lock()
		defer mu.Unlock()
		f()
	}
	visit := func(ctx context.Context, node redis.UniversalClient) error {
		// Profiles join their territories in batches, after conversion.
		var toIndex []string
		index := func() error {
			n, err := s.indexTerritories(ctx, toIndex)
			toIndex = toIndex[:0]
			count(func() { p.Indexed += n })
			return err
		}
		iter := node.Scan(ctx, 0, globEscape(s.prefix)+":{*", 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			count(func() {
				if p.Scanned++; p.Scanned%1000 == 0 {
					report()
				}
			})
			id, suffix, ok := s.splitKey(key)
			if !ok {
				continue
			}
			var converted bool
			var err error
			switch suffix {
			case suffixLegacyLedger:
				converted, err = s.migrateLedger(ctx, id)
				if converted {
					count(func() { p.Ledgers++ })
				}
			case suffixProfile:
				converted, err = s.migrateProfile(ctx, id)
				if converted {
					count(func() { p.Profiles++ })
				}
				if toIndex = append(toIndex, id); len(toIndex) == 500 {
					if err := index(); err != nil {
						return err
					}
				}
			}
			if err != nil {
				// One recipient's data that cannot be converted stops
				// nothing else: it is counted, and the run goes on.
				if errors.Is(err, arbiter.ErrCorrupt) || errors.Is(err, errChanged) {
					count(func() { p.Failed++ })
					continue
				}
				return err
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return index()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return visit(ctx, node) })
	} else {
		err = visit(ctx, s.rdb)
	}
	if err == nil {
		var n int
		n, err = s.pruneTerritories(ctx)
		p.Unindexed = n
	}
	report()
	if err == nil && p.Failed > 0 {
		return p, fmt.Errorf("redisstore: migrate: %w: %d recipients could not be converted (their data is not in a format this version knows); the others were",
			arbiter.ErrCorrupt, p.Failed)
	}
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, arbiter.ErrCorrupt):
		return p, fmt.Errorf("redisstore: migrate: %w", err) // a decoding error: not Redis's
	}
	return p, storageErr("migrate", err)
}

// MigrateProgress counts what Migrate has done.
type MigrateProgress struct {
	Scanned  int // keys scanned
	Ledgers  int // consent ledgers converted
	Profiles int // profiles whose counters were converted
	Failed   int // recipients whose data could not be converted
	// Indexed counts the territory index's entries added (a profile's
	// recipient in a territory it names, and was not in); Unindexed the
	// entries removed because the profile no longer names the territory.
	Indexed, Unindexed int
}

// globEscape escapes the glob characters of s for a SCAN pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// splitKey returns the recipient id and suffix of one of this store's keys.
func (s *Store) splitKey(key string) (id, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+":{")
	if !ok {
		return "", "", false
	}
	id, suffix, ok = strings.Cut(rest, "}")
	return id, suffix, ok
}

var (
	//go:embed migrate_ledger.lua
	migrateLedgerSrc    string
	migrateLedgerScript = redis.NewScript(migrateLedgerSrc)

	//go:embed migrate_profile.lua
	migrateProfileSrc    string
	migrateProfileScript = redis.NewScript(migrateProfileSrc)
)

// errChanged: the data changed between the read and the conversion.
var errChanged = errors.New("changed meanwhile")

// migrateLedger converts recipient id's ledger of an earlier version.
func (s *Store) migrateLedger(ctx context.Context, id string) (bool, error) {
	old := s.key(id, suffixLegacyLedger)
	for attempt := 0; attempt < 5; attempt++ {
		kind, err := s.rdb.Type(ctx, old).Result()
		if err != nil {
			return false, err
		}
		var lines []string
		var witness string // what the script checks is still there
		switch kind {
		case "none":
			return false, nil
		case "string":
			data, err := s.rdb.Get(ctx, old).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return false, err
			}
			if data != "" && !strings.HasSuffix(data, "\n") {
				return false, fmt.Errorf("recipient ledger: %w", corrupt("the ledger does not end with a whole entry"))
			}
			witness = data
			if data != "" {
				lines = strings.Split(data[:len(data)-1], "\n")
			}
		case "list":
			if lines, err = s.rdb.LRange(ctx, old, 0, -1).Result(); err != nil {
				return false, err
			}
			witness = strings.Join(lines, "\n")
		default:
			return false, fmt.Errorf("recipient ledger: %w: a %s", arbiter.ErrCorrupt, kind)
		}
		args := make([]any, 0, 2+len(lines))
		args = append(args, kind, witness)
		for i, line := range lines {
			e, err := decodeOldLedger(line)
			if err != nil {
				return false, fmt.Errorf("recipient ledger entry %d: %w", i, err)
			}
			ifApplied, ifNot, err := encodeLedger(e, e.Record == (consent.Record{}))
			if err != nil {
				return false, fmt.Errorf("recipient ledger entry %d: %w", i, err)
			}
			entry := ifNot
			if e.Applied {
				entry = ifApplied
			}
			args = append(args, entry)
		}
		res, err := migrateLedgerScript.Run(ctx, s.rdb, []string{old, s.key(id, suffixConsentLog)}, args...).Int()
		switch {
		case err != nil:
			return false, err
		case res == 1:
			return true, nil
		}
		// res 0: changed meanwhile; read again.
	}
	return false, errChanged
}

// migrateProfile gives recipient id's per-counter stamps one common time.
func (s *Store) migrateProfile(ctx context.Context, id string) (bool, error) {
	key := s.key(id, suffixProfile)
	for attempt := 0; attempt < 5; attempt++ {
		fields, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return false, err
		}
		// The common time: ct if present, else the latest stamp.
		var ct int64 = math.MinInt64
		if v, ok := fields[fCounterTime]; ok {
			if ct, err = strconv.ParseInt(v, 10, 64); err != nil {
				return false, fmt.Errorf("recipient profile: %w", &fieldError{fCounterTime})
			}
		}
		type stamped struct {
			field string
			v     float64
			t0    int64
		}
		var legacy []stamped
		var plain []string
		for f, v := range fields {
			if !isDecayedField(f) {
				continue
			}
			num, stamp, isLegacy := strings.Cut(v, "|")
			if !isLegacy {
				plain = append(plain, f, v)
				continue
			}
			x, err1 := strconv.ParseFloat(num, 64)
			t0, err2 := strconv.ParseInt(stamp, 10, 64)
			if err1 != nil || err2 != nil || !finite(x) {
				return false, fmt.Errorf("recipient profile: %w", &fieldError{f})
			}
			legacy = append(legacy, stamped{f, x, t0})
		}
		if len(legacy) == 0 {
			return false, nil
		}
		for _, l := range legacy {
			ct = max(ct, l.t0)
		}
		halfLifeMs := s.halfLifeMs
		args := []any{}
		for _, l := range legacy {
			v := l.v * math.Exp2(-float64(ct-l.t0)/halfLifeMs)
			args = append(args, l.field, fields[l.field], formatFloat(v))
		}
		// Plain counters were as of the old ct (if any): decay them too.
		if old, ok := fields[fCounterTime]; ok && len(plain) > 0 {
			oldCT, _ := strconv.ParseInt(old, 10, 64)
			for i := 0; i < len(plain); i += 2 {
				x, err := strconv.ParseFloat(plain[i+1], 64)
				if err != nil || !finite(x) {
					return false, fmt.Errorf("recipient profile: %w", &fieldError{plain[i]})
				}
				args = append(args, plain[i], plain[i+1], formatFloat(x*math.Exp2(-float64(ct-oldCT)/halfLifeMs)))
			}
		}
		res, err := migrateProfileScript.Run(ctx, s.rdb, []string{key}, append([]any{fields[fCounterTime], strconv.FormatInt(ct, 10)}, args...)...).Int()
		if err != nil {
			return false, err
		}
		if res == 1 {
			return true, nil
		}
	}
	return false, errChanged
}

func isDecayedField(f string) bool {
	return strings.HasPrefix(f, pEngagement) || strings.HasPrefix(f, pSent) || strings.HasPrefix(f, pTopic)
}

// decodeOldLedger decodes a ledger entry of format 1 (JSON) or 2
// ("2|<recorded ms>|<flags>|<record fields>"), which carried no sequence
// number or digest.
func decodeOldLedger(data string) (consent.LedgerEntry, error) {
	if strings.HasPrefix(data, "{") {
		return decodeLedgerJSON(data)
	}
	f := strings.Split(data, "|")
	if len(f) != 12 || f[0] != "2" {
		return consent.LedgerEntry{}, corrupt("ledger entry does not decode")
	}
	recorded, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return consent.LedgerEntry{}, corrupt("ledger entry time is not a number")
	}
	e := consent.LedgerEntry{RecordedAt: msTime(recorded),
		Applied: strings.Contains(f[2], "a"), MarkedComplete: strings.Contains(f[2], "m")}
	if f[3] == "" {
		return e, nil
	}
	if e.Record, err = ledgerRecord(f[3:12]); err != nil {
		return consent.LedgerEntry{}, err
	}
	return e, nil
}

// ledgerJSON is a format 1 entry.
type ledgerJSON struct {
	V              int         `json:"v"`
	RecordedAt     time.Time   `json:"recorded_at"`
	Applied        bool        `json:"applied"`
	MarkedComplete bool        `json:"marked_complete,omitempty"`
	Record         *recordJSON `json:"record,omitempty"`
}

type recordJSON struct {
	Channel    string    `json:"channel"`
	Purpose    string    `json:"purpose"`
	Topic      string    `json:"topic,omitempty"`
	Address    string    `json:"address,omitempty"`
	Status     string    `json:"status"`
	CapturedAt time.Time `json:"captured_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	Source     string    `json:"source"`
	CapturedBy string    `json:"captured_by,omitempty"`
}

func decodeLedgerJSON(data string) (consent.LedgerEntry, error) {
	var j ledgerJSON
	if err := json.Unmarshal([]byte(data), &j); err != nil || j.V != 1 {
		return consent.LedgerEntry{}, corrupt("ledger entry does not decode")
	}
	e := consent.LedgerEntry{RecordedAt: msTime(j.RecordedAt.UnixMilli()), Applied: j.Applied, MarkedComplete: j.MarkedComplete}
	if j.Record == nil {
		return e, nil
	}
	r := &e.Record
	var ok1, ok2, ok3 bool
	r.Channel, ok1 = arbiter.ParseChannel(j.Record.Channel)
	r.Purpose, ok2 = parsePurpose(j.Record.Purpose)
	r.Status, ok3 = consent.ParseStatus(j.Record.Status)
	if !ok1 || !ok2 || !ok3 {
		return consent.LedgerEntry{}, corrupt("ledger entry has an unknown channel, purpose or status")
	}
	r.Topic, r.Address = j.Record.Topic, j.Record.Address
	r.CapturedAt = msTime(j.Record.CapturedAt.UnixMilli())
	if !j.Record.ExpiresAt.IsZero() {
		r.ExpiresAt = msTime(j.Record.ExpiresAt.UnixMilli())
	}
	r.Source, r.CapturedBy = j.Record.Source, j.Record.CapturedBy
	return e, nil
}
