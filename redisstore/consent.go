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
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/recipient"
)

// The consent half of the Store: each recipient's current consent in one
// hash, every change in an append-only ledger (a list), written together by
// set_consent.lua. Layouts: consent_codec.go.

// maxHistoryLimit bounds one page of ConsentHistory.
const maxHistoryLimit = 1000

var (
	//go:embed set_consent.lua
	setConsentSrc    string
	setConsentScript = redis.NewScript(setConsentSrc)

	// precedenceArg is consent.PrecedenceOrder as set_consent.lua takes it:
	// status names from the least to the most restrictive, space-separated.
	// The script knows no order of its own.
	precedenceArg = func() string {
		var names []string
		for _, st := range consent.PrecedenceOrder() {
			names = append(names, st.String())
		}
		return strings.Join(names, " ")
	}()
)

// SetConsent stores one record for a recipient, and the completeness marker
// when markComplete is true. See SetConsentMany.
func (s *Store) SetConsent(ctx context.Context, id string, r consent.Record, markComplete bool) (consent.LedgerEntry, error) {
	now := s.now()
	recs := []consent.Record{r}
	if err := validateConsentWrite(id, recs, func(int) string { return "record" }, now); err != nil {
		return consent.LedgerEntry{}, err
	}
	entries, _, err := s.writeConsent(ctx, id, recs, markComplete, "", now)
	if err != nil {
		return consent.LedgerEntry{}, err
	}
	return entries[0], nil
}

// SetConsentMany stores records for one recipient, atomically, and writes
// the completeness marker when markComplete is true (a bulk import passes
// true once the recipient's consent is loaded in full, even with no
// records).
//
// Each record becomes current for its scope unless a record captured later,
// or at the same time with a status of higher precedence
// (consent.Supersedes), is already current. Either way it is appended to
// the ledger with the next sequence number, and the returned entries (one
// per record, in order, or a single marker-only entry with a zero Record
// when recs is empty) say whether it applied. Times are stored with
// millisecond precision, in UTC. Appending costs the same whatever the
// ledger's length.
//
// Invalid input (an *arbiter.InvalidError naming "hcp_id" or
// "records[i].field") writes nothing. A Redis failure wraps
// arbiter.ErrUnavailable; an undecodable stored value, arbiter.ErrCorrupt.
// After an error other than invalid input the write may or may not have
// happened; repeating it is safe (the repeat is ledgered as not applied).
func (s *Store) SetConsentMany(ctx context.Context, id string, recs []consent.Record, markComplete bool) ([]consent.LedgerEntry, error) {
	now := s.now()
	name := func(i int) string { return "records[" + strconv.Itoa(i) + "]" }
	if err := validateConsentWrite(id, recs, name, now); err != nil {
		return nil, err
	}
	if len(recs) == 0 && !markComplete {
		return nil, nil
	}
	entries, _, err := s.writeConsent(ctx, id, recs, markComplete, "", now)
	return entries, err
}

// validateConsentWrite is consent.ValidateWrite, and the recipient id is
// one that can be a hash tag (recipient.ValidID).
func validateConsentWrite(id string, recs []consent.Record, name func(int) string, now time.Time) error {
	if id != "" {
		if err := recipient.ValidID(id); err != nil {
			return arbiter.Invalid("hcp_id", err.Error())
		}
	}
	return consent.ValidateWrite(id, recs, name, now)
}

// validID checks a recipient id for a read.
func validID(id string) error {
	if id == "" {
		return arbiter.Invalid("hcp_id", "is required")
	}
	if err := recipient.ValidID(id); err != nil {
		return arbiter.Invalid("hcp_id", err.Error())
	}
	return nil
}

// writeConsent runs set_consent.lua for valid records; each ledger entry
// records the authenticated caller ctx carries, if any (access.Principal).
// A non-empty opKey
// makes the write idempotent: when a write with the same key was already
// made for the recipient, nothing is written and duplicate is true.
func (s *Store) writeConsent(ctx context.Context, id string, recs []consent.Record, markComplete bool, opKey string, now time.Time) (entries []consent.LedgerEntry, duplicate bool, err error) {
	recordedAt := msTime(now.UnixMilli())
	principal := principalOf(ctx)
	mark := "0"
	if markComplete {
		mark = "1"
	}
	args := make([]any, 6, 6+5*len(recs))
	args[0], args[1], args[2], args[3], args[4], args[5] = recordedAt.UnixMilli(), mark, "", opKey, precedenceArg, ""
	entries = make([]consent.LedgerEntry, 0, max(len(recs), 1))
	for _, r := range recs {
		r = normalize(r)
		e := consent.LedgerEntry{Record: r, RecordedAt: recordedAt, MarkedComplete: markComplete, Principal: principal}
		ifApplied, ifNot, err := encodeLedger(e, false)
		if err != nil {
			return nil, false, fmt.Errorf("redisstore: set consent: encode ledger entry: %w", err)
		}
		value := consentValue(&r)
		if s.previousReaders {
			value = withoutNotice(value) // in the ledger only: the previous release refuses it in the hash
		}
		args = append(args, consentField(&r), value, ifApplied, ifNot, "")
		entries = append(entries, e)
	}
	if len(recs) == 0 {
		e := consent.LedgerEntry{RecordedAt: recordedAt, Applied: true, MarkedComplete: true, Principal: principal}
		entry, _, err := encodeLedger(e, true)
		if err != nil {
			return nil, false, fmt.Errorf("redisstore: set consent: encode ledger entry: %w", err)
		}
		args[2] = entry
		entries = append(entries, e)
	}
	// During a rolling upgrade the previous release appends unsealed
	// entries, which after sealed ones would be findings: the chain starts
	// once the upgrade is over (an unsealed prefix verifies).
	if key := s.chainKey.Load(); key != nil && !s.previousReaders {
		return s.writeSealed(ctx, *key, id, recs, markComplete, opKey, entries, args)
	}

	res, err := s.runConsentScript(ctx, s.consentKeys(id), args)
	if err != nil {
		return nil, false, storageErr("set consent", err)
	}
	if opKey != "" && len(res) == 0 {
		return nil, true, nil
	}
	if len(res) != 2*len(entries) {
		return nil, false, fmt.Errorf("redisstore: set consent: script returned %d values for %d ledger entries", len(res), len(entries))
	}
	for i := range entries {
		entries[i].Seq = res[2*i]
		entries[i].Applied = res[2*i+1] == 1
	}
	return entries, false, nil
}

// consentKeys are set_consent.lua's keys for recipient id.
func (s *Store) consentKeys(id string) []string {
	return []string{s.key(id, suffixConsent), s.key(id, suffixConsentLog), s.key(id, suffixConsentOps), s.key(id, suffixLegacyLedger)}
}

// runConsentScript runs set_consent.lua, with the replicas' acknowledgement
// when the store asks for one.
func (s *Store) runConsentScript(ctx context.Context, keys []string, args []any) ([]int64, error) {
	if s.replicas > 0 {
		return s.runReplicated(ctx, keys, args)
	}
	return setConsentScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
}

// runReplicated runs set_consent.lua and WAIT in one pipeline on the
// recipient's master, so that WAIT covers the connection's own write.
func (s *Store) runReplicated(ctx context.Context, keys []string, args []any) ([]int64, error) {
	node, ok := s.rdb.(*redis.Client)
	cc, isCluster := s.rdb.(*redis.ClusterClient)
	if isCluster {
		var err error
		if node, err = cc.MasterForKey(ctx, keys[0]); err != nil {
			return nil, err
		}
		ok = true
	}
	if !ok {
		return nil, fmt.Errorf("replica acknowledgement needs a single Redis or a Redis Cluster client, not %T", s.rdb)
	}
	var set, wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		set = setConsentScript.Eval(ctx, p, keys, args...)
		wait = p.Do(ctx, "WAIT", s.replicas, s.replicaTimeout.Milliseconds())
		return nil
	})
	if err != nil {
		return nil, err
	}
	res, err := set.Int64Slice()
	if err != nil {
		if isCluster && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")) {
			cc.ReloadState(ctx) // the caller's retry goes to the slot's new owner
		}
		return nil, err
	}
	got, err := wait.Int64()
	if err != nil {
		return nil, err
	}
	if got < int64(s.replicas) {
		return nil, fmt.Errorf("only %d of %d replicas confirmed the write in time", got, s.replicas)
	}
	return res, nil
}

// GetConsent returns a recipient's current consent. A recipient with
// nothing stored gets an empty, incomplete State (which denies), not an
// error.
func (s *Store) GetConsent(ctx context.Context, id string) (consent.State, error) {
	if err := validID(id); err != nil {
		return consent.State{}, err
	}
	fields, err := s.rdb.HGetAll(ctx, s.key(id, suffixConsent)).Result()
	if err != nil {
		return consent.State{}, storageErr("get consent", err)
	}
	st, err := decodeConsent(fields)
	if err != nil {
		return consent.State{}, fmt.Errorf("redisstore: get consent: %w", err)
	}
	return st, nil
}

// ConsentHistory returns up to limit ledger entries of a recipient from
// offset, in the order they were appended, and the total number of
// entries. It reads only the page asked for, so a page costs the same
// whatever the ledger's length (but for Redis walking to offset).
func (s *Store) ConsentHistory(ctx context.Context, id string, offset, limit int) ([]consent.LedgerEntry, int64, error) {
	e := &arbiter.InvalidError{}
	if err := validID(id); err != nil {
		e.Violations = append(e.Violations, err.(*arbiter.InvalidError).Violations...)
	}
	if offset < 0 {
		e.Add("offset", "must not be negative")
	}
	if limit < 1 || limit > maxHistoryLimit {
		e.Add("limit", fmt.Sprintf("must be between 1 and %d", maxHistoryLimit))
	}
	if err := e.Err(); err != nil {
		return nil, 0, err
	}
	key := s.key(id, suffixConsentLog)
	pipe := s.rdb.Pipeline()
	legacy := pipe.Exists(ctx, s.key(id, suffixLegacyLedger))
	total := pipe.LLen(ctx, key)
	page := pipe.LRange(ctx, key, int64(offset), int64(offset+limit-1))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, storageErr("consent history", err)
	}
	if legacy.Val() != 0 {
		return nil, 0, fmt.Errorf("redisstore: consent history: %w: the ledger awaits migration (arbiter migrate)", arbiter.ErrUnavailable)
	}
	entries := make([]consent.LedgerEntry, 0, len(page.Val()))
	for i, data := range page.Val() {
		entry, err := decodeLedger(data)
		if err != nil {
			return nil, 0, fmt.Errorf("redisstore: consent history: entry %d: %w", offset+i, err)
		}
		if entry.Seq != int64(offset+i) {
			return nil, 0, fmt.Errorf("redisstore: consent history: entry %d: %w", offset+i, corrupt("sequence number out of place"))
		}
		entries = append(entries, entry)
	}
	return entries, total.Val(), nil
}
