package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter/consent"
)

// Restores. A Redis restored from an older backup has forgotten every
// consent change made since the backup, withdrawals included: a recipient
// who opted out yesterday is opted in again. The way back is the ledger,
// exported and kept outside the store (LedgerSince, arbiterctl consent
// export), and re-applied after the restore (Reapply): each entry the
// restored ledger does not hold is written again, merged like any record
// (consent.Supersedes: a record captured later, already current, still
// wins), and ledgered anew, by whoever re-applies it.

// LedgerSince calls fn with each recipient's ledger entries recorded at or
// after from, recipient by recipient; progress, when not nil, counts the
// ledgers read.
func (s *Store) LedgerSince(ctx context.Context, from time.Time, progress *atomic.Int64, fn func(id string, es []consent.LedgerEntry) error) error {
	return s.scanLedgers(ctx, func(ctx context.Context, c redis.Cmdable, id string) error {
		raw, err := c.LRange(ctx, s.key(id, suffixConsentLog), 0, -1).Result()
		if err != nil {
			return storageErr("export ledger", err)
		}
		if progress != nil {
			progress.Add(1)
		}
		var out []consent.LedgerEntry
		for i, r := range raw {
			e, err := decodeLedger(r)
			if err != nil {
				return fmt.Errorf("redisstore: export ledger: entry %d: %w", i, err)
			}
			if !e.RecordedAt.Before(from) {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return fn(id, out)
	})
}

// Reapply writes an exported ledger entry of recipient id again, unless
// the ledger holds it (present). Erased entries are never written again.
// It is idempotent: the same entry re-applied twice is written once.
func (s *Store) Reapply(ctx context.Context, id string, e consent.LedgerEntry) (present bool, err error) {
	if err := validID(id); err != nil {
		return false, err
	}
	if e.Erased {
		return true, nil // its recipient was erased: nothing of it is to come back
	}
	raw, err := s.rdb.LRange(ctx, s.key(id, suffixConsentLog), 0, -1).Result()
	if err != nil {
		return false, storageErr("reapply", err)
	}
	for _, r := range raw {
		have, err := decodeLedger(r)
		if err == nil && sameEntry(&have, &e) {
			return true, nil
		}
	}
	var recs []consent.Record
	if e.Record.Channel.Valid() {
		recs = []consent.Record{normalize(e.Record)}
	}
	if len(recs) == 0 && !e.MarkedComplete {
		return true, nil // nothing to write
	}
	now := s.now()
	if err := validateConsentWrite(id, recs, func(int) string { return "entry.record" }, now); err != nil {
		return false, err
	}
	_, dup, err := s.writeConsent(ctx, id, recs, e.MarkedComplete, reapplyKey(id, &e), now)
	return dup, err // a duplicate: re-applied before
}

// sameEntry reports whether two ledger entries record the same change at
// the same time.
func sameEntry(a, b *consent.LedgerEntry) bool {
	if a.RecordedAt.UnixMilli() != b.RecordedAt.UnixMilli() || a.MarkedComplete != b.MarkedComplete || a.Principal != b.Principal {
		return false
	}
	if a.Record.Channel.Valid() != b.Record.Channel.Valid() {
		return false
	}
	if !a.Record.Channel.Valid() {
		return true
	}
	ra, rb := normalize(a.Record), normalize(b.Record)
	return consentField(&ra) == consentField(&rb) && consentValue(&ra) == consentValue(&rb)
}

// reapplyKey is the idempotency key of re-applying e.
func reapplyKey(id string, e *consent.LedgerEntry) string {
	r := normalize(e.Record)
	sum := sha256.Sum256([]byte(id + "\x00" + strconv.FormatInt(e.RecordedAt.UnixMilli(), 10) + "\x00" + consentField(&r) + "\x00" +
		consentValue(&r) + "\x00" + strconv.FormatBool(e.MarkedComplete) + "\x00" + e.Principal))
	return "reapply:" + hex.EncodeToString(sum[:12])
}

// ConsentAsOf is recipient id's consent as the ledger stood at t: for each
// scope, the last entry recorded by then that applied (WhyNot as of a past
// time). An erased opt-in allows nothing: erasure kept withdrawals only.
func (s *Store) ConsentAsOf(ctx context.Context, id string, t time.Time) (consent.State, error) {
	var st consent.State
	if err := validID(id); err != nil {
		return st, err
	}
	raw, err := s.rdb.LRange(ctx, s.key(id, suffixConsentLog), 0, -1).Result()
	if err != nil {
		return st, storageErr("consent as of", err)
	}
	current := map[string]int{} // scope -> index in st.Records
	for i, r := range raw {
		e, err := decodeLedger(r)
		if err != nil {
			return st, fmt.Errorf("redisstore: consent as of: entry %d: %w", i, err)
		}
		if e.RecordedAt.After(t) {
			break
		}
		st.Version = e.Seq + 1
		if e.MarkedComplete {
			st.Complete, st.CompleteAt = true, e.RecordedAt
		}
		if !e.Applied || !e.Record.Channel.Valid() ||
			(e.Erased && e.Record.Status != consent.OptOut && e.Record.Status != consent.Barred) {
			continue
		}
		f := consentField(&e.Record)
		if j, ok := current[f]; ok {
			st.Records[j] = e.Record
		} else {
			current[f] = len(st.Records)
			st.Records = append(st.Records, e.Record)
		}
	}
	slices.SortFunc(st.Records, compareScope)
	return st, nil
}
