package redisstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
)

// The tamper-evident consent ledger.
//
// With a chain key (SetChainKey, derived from the deployment's audit
// secret, which is held outside Redis), every ledger entry is sealed: its
// digest field holds
//
//	MAC_i = HMAC-SHA256(key, "consent" 0 recipient 0 MAC_{i-1} 0 D_i)[:16]
//	D_i   = SHA-256(SHA-256(proof fields of entry_i) || SHA-256(personal fields of entry_i))
//
// (base64url), entry_i being the stored entry, "3|<seq>|...", and MAC_{-1}
// empty. The proof fields say what consent was given or withdrawn and
// when (position, times, flags, channel, purpose, status, expiry); the
// personal ones the rest (topic, address reference, source, who captured
// it, principal, notice version). The chain covers digests, not payloads:
// erasure (erase.go) replaces an entry's personal fields with their
// digest, and the chain still verifies. The MAC covers the recipient,
// the entry's position and content, and the chain before it: an entry
// edited, removed, moved or added, or a chain rebuilt with another key,
// no longer verifies (VerifyLedger), and someone who can write Redis
// cannot compute a MAC. What a chain alone cannot show, the last entries
// cut off, a checkpoint kept outside the store shows (ChainHeads).
//
// Sealing needs the position and the previous MAC before the write, so a
// sealed write reads the ledger's length and last entry first, works out
// which records apply (as set_consent.lua does, which checks it agrees),
// seals, and writes only if the ledger is still that long; otherwise it
// reads and seals again. A consent write is then two round trips; a
// decision, which reads no ledger, is unchanged.

// sealAttempts bounds a sealed write's retries under concurrent writes.
const sealAttempts = 8

// SetChainKey seals every consent ledger entry written from now on with
// key (nil: entries are written unsealed, as before).
func (s *Store) SetChainKey(key []byte) {
	if key == nil {
		s.chainKey.Store(nil)
		return
	}
	k := append([]byte(nil), key...)
	s.chainKey.Store(&k)
}

var macEncoding = base64.RawURLEncoding

// chainMAC is the MAC of a ledger entry (canon: the stored entry with an
// empty digest field) after prev, for recipient id.
func chainMAC(key []byte, id, prev, canon string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("consent\x00"))
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(prev))
	m.Write([]byte{0})
	d := entryDigest(canon)
	m.Write(d[:])
	return macEncoding.EncodeToString(m.Sum(nil)[:16])
}

// The fields of a stored entry ("3", seq, recorded, flags, channel,
// purpose, topic, address, status, captured, expires, source, captured
// by, principal, digest[, notice]) that prove what consent was given or
// withdrawn and when, and those that erasure removes.
var (
	proofFields    = [...]int{0, 1, 2, 3, 4, 5, 8, 9, 10}
	personalFields = [...]int{6, 7, 11, 12, 13}
)

// erasedSource marks an erased entry, whose notice field holds
// erasedPrefix and the digest of its personal fields.
const (
	erasedSource = consent.ErasedSource
	erasedPrefix = consent.ErasedNoticePrefix
)

// entryDigest is D_i of a stored entry (with or without its digest field).
func entryDigest(canon string) [32]byte {
	f := strings.Split(canon, "|")
	var proof, personal strings.Builder
	for _, i := range proofFields {
		if i < len(f) {
			proof.WriteString(f[i])
		}
		proof.WriteByte('|')
	}
	var rest [32]byte
	if d, ok := erasedDigest(f); ok {
		rest = d
	} else {
		for _, i := range personalFields {
			if i < len(f) {
				personal.WriteString(f[i])
			}
			personal.WriteByte('|')
		}
		if len(f) > ledgerFields {
			personal.WriteString(f[ledgerFields]) // the notice version
		}
		rest = sha256.Sum256([]byte(personal.String()))
	}
	p := sha256.Sum256([]byte(proof.String()))
	return sha256.Sum256(append(p[:], rest[:]...))
}

// erasedDigest is the personal fields' digest an erased entry keeps.
func erasedDigest(f []string) ([32]byte, bool) {
	var d [32]byte
	if len(f) <= ledgerFields || f[11] != erasedSource || !strings.HasPrefix(f[ledgerFields], erasedPrefix) {
		return d, false
	}
	b, err := macEncoding.DecodeString(strings.TrimPrefix(f[ledgerFields], erasedPrefix))
	if err != nil || len(b) != len(d) {
		return d, false
	}
	copy(d[:], b)
	return d, true
}

// eraseEntry returns a stored entry with its personal fields replaced by
// their digest: the proof and the chain stay.
func eraseEntry(stored string) (string, bool) {
	f := strings.Split(stored, "|")
	if len(f) < ledgerFields {
		return "", false
	}
	if _, ok := erasedDigest(f); ok {
		return stored, true // already erased
	}
	var personal strings.Builder
	for _, i := range personalFields {
		personal.WriteString(f[i])
		personal.WriteByte('|')
	}
	if len(f) > ledgerFields {
		personal.WriteString(f[ledgerFields])
	}
	d := sha256.Sum256([]byte(personal.String()))
	for _, i := range personalFields {
		f[i] = ""
	}
	f[11] = erasedSource
	f = append(f[:ledgerFields], erasedPrefix+macEncoding.EncodeToString(d[:]))
	return strings.Join(f, "|"), true
}

// ledgerDigestField is the index of the digest among a stored entry's
// '|'-separated fields ("3", seq, recorded, flags, 9 record fields,
// principal, digest[, notice]).
const ledgerDigestField = 14

// canonEntry returns a stored entry with its digest field emptied, and the
// digest; false if it has too few fields.
func canonEntry(stored string) (canon, digest string, ok bool) {
	f := strings.Split(stored, "|")
	if len(f) <= ledgerDigestField {
		return "", "", false
	}
	digest = f[ledgerDigestField]
	f[ledgerDigestField] = ""
	return strings.Join(f, "|"), digest, true
}

// writeSealed is writeConsent with the entries sealed (see above).
func (s *Store) writeSealed(ctx context.Context, key []byte, id string, recs []consent.Record, markComplete bool, opKey string,
	base []consent.LedgerEntry, args []any) (entries []consent.LedgerEntry, duplicate bool, err error) {
	keys := s.consentKeys(id)
	fields := make([]string, len(recs))
	for i := range recs {
		fields[i] = consentField(&base[i].Record)
	}
	for range sealAttempts {
		// One transaction: the current values, the length and the last
		// entry as of one instant.
		pipe := s.rdb.TxPipeline()
		var cur *redis.SliceCmd
		if len(fields) > 0 {
			cur = pipe.HMGet(ctx, keys[0], fields...)
		}
		n := pipe.LLen(ctx, keys[1])
		last := pipe.LIndex(ctx, keys[1], -1)
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, false, storageErr("set consent", err)
		}
		prev := ""
		if raw, err := last.Result(); err == nil {
			if _, d, ok := canonEntry(raw); ok {
				prev = d
			} else {
				return nil, false, fmt.Errorf("redisstore: set consent: %w", corrupt("the last ledger entry does not decode"))
			}
		}
		// Which records apply: as set_consent.lua decides, record by
		// record (an earlier record of the write may share a scope).
		current := map[string]consent.Record{}
		if cur != nil {
			for i, v := range cur.Val() {
				if sv, ok := v.(string); ok {
					r, err := decodeRecord(fields[i], sv)
					if err != nil {
						return nil, false, fmt.Errorf("redisstore: set consent: %w", corrupt("current consent value does not decode"))
					}
					current[fields[i]] = r
				}
			}
		}
		seq := n.Val()
		entries = make([]consent.LedgerEntry, len(base))
		copy(entries, base)
		a := append([]any(nil), args...)
		a[5] = seq
		for i := range recs {
			e := &entries[i]
			c, ok := current[fields[i]]
			e.Applied = !ok || consent.Supersedes(&e.Record, &c)
			if e.Applied {
				current[fields[i]] = e.Record
			}
			e.Seq = seq
			text, err := sealEntry(key, id, &prev, e, false)
			if err != nil {
				return nil, false, err
			}
			j := 6 + 5*i
			a[j+2], a[j+3] = text, text
			a[j+4] = "0"
			if e.Applied {
				a[j+4] = "1"
			}
			seq++
		}
		if len(recs) == 0 {
			e := &entries[0]
			e.Seq = seq
			text, err := sealEntry(key, id, &prev, e, true)
			if err != nil {
				return nil, false, err
			}
			a[2] = text
		}
		res, err := s.runConsentScript(ctx, keys, a)
		if err != nil {
			return nil, false, storageErr("set consent", err)
		}
		switch {
		case opKey != "" && len(res) == 0:
			return nil, true, nil
		case len(res) == 1 && (res[0] == -1 || res[0] == -2):
			continue // another write came in between: read and seal again
		}
		if err := checkSealed(res, entries); err != nil {
			return nil, false, err
		}
		return entries, false, nil
	}
	return nil, false, fmt.Errorf("redisstore: set consent: the ledger kept changing during %d attempts: %w", sealAttempts, arbiter.ErrUnavailable)
}

// sealEntry returns e's stored form (without the "3|<seq>|" the script
// prepends) sealed after *prev, and moves *prev to its MAC.
func sealEntry(key []byte, id string, prev *string, e *consent.LedgerEntry, markerOnly bool) (string, error) {
	e.Digest = ""
	ifApplied, ifNot, err := encodeLedger(*e, markerOnly)
	if err != nil {
		return "", fmt.Errorf("redisstore: set consent: encode ledger entry: %w", err)
	}
	text := ifNot
	if e.Applied {
		text = ifApplied
	}
	prefix := "3|" + strconv.FormatInt(e.Seq, 10) + "|"
	e.Digest = chainMAC(key, id, *prev, prefix+text)
	*prev = e.Digest
	ifApplied, ifNot, err = encodeLedger(*e, markerOnly)
	if err != nil {
		return "", fmt.Errorf("redisstore: set consent: encode ledger entry: %w", err)
	}
	if e.Applied {
		return ifApplied, nil
	}
	return ifNot, nil
}

// checkSealed checks the script's answer against what was sealed.
func checkSealed(res []int64, entries []consent.LedgerEntry) error {
	if len(res) != 2*len(entries) {
		return fmt.Errorf("redisstore: set consent: script returned %d values for %d ledger entries", len(res), len(entries))
	}
	for i := range entries {
		if res[2*i] != entries[i].Seq || (res[2*i+1] == 1) != entries[i].Applied {
			return fmt.Errorf("redisstore: set consent: %w", corrupt("the ledger was written other than sealed"))
		}
	}
	return nil
}

// ------------------------------------------------------------ verification

// ChainHead is a ledger's length and its last entry's MAC.
type ChainHead struct {
	Length int64
	Head   string
}

// Finding is a problem VerifyLedgers found in one recipient's trail.
type Finding struct {
	HCPID string
	// Seq is the position of the first entry found wrong; -1: not about
	// one entry.
	Seq     int64
	Problem string
}

// ChainHeads calls fn with every recipient's ledger length and last MAC,
// walking the keyspace (every master of a Cluster), and first with the
// operations trail's (trail.go), under the empty id.
func (s *Store) ChainHeads(ctx context.Context, fn func(hcpID string, h ChainHead) error) error {
	h, err := s.trailHead(ctx)
	if err != nil {
		return err
	}
	if err := fn("", h); err != nil {
		return err
	}
	return s.scanLedgers(ctx, func(ctx context.Context, c redis.Cmdable, id string) error {
		pipe := c.Pipeline()
		n := pipe.LLen(ctx, s.key(id, suffixConsentLog))
		last := pipe.LIndex(ctx, s.key(id, suffixConsentLog), -1)
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return storageErr("chain heads", err)
		}
		h := ChainHead{Length: n.Val()}
		if _, d, ok := canonEntry(last.Val()); ok {
			h.Head = d
		}
		return fn(id, h)
	})
}

// scanLedgers calls fn with the id of every recipient that has a consent
// ledger, on the client of the node that holds it.
func (s *Store) scanLedgers(ctx context.Context, fn func(ctx context.Context, c redis.Cmdable, id string) error) error {
	match := s.prefix + ":{*}" + suffixConsentLog
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 500).Iterator()
		for it.Next(ctx) {
			if id, ok := recipientOfKey(it.Val(), s.prefix, suffixConsentLog); ok {
				if err := fn(ctx, c, id); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return storageErr("scan ledgers", err)
		}
		return nil
	}
	return forEachNode(ctx, s.rdb, scan)
}

// forEachNode runs scan on the single Redis, or on every master of a
// Cluster, one after the other: callers' callbacks (a stream's Send, a
// map) need not be safe for concurrent use.
func forEachNode(ctx context.Context, rdb redis.UniversalClient, scan func(ctx context.Context, c redis.Cmdable) error) error {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, rdb)
	}
	var mu sync.Mutex
	return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		return scan(ctx, c)
	})
}

// VerifyLedgers checks every recipient's consent ledger with key: the
// chain of MACs, each entry's place, that the current consent follows from
// the ledger, and, for the recipients a checkpoint saw (nil: none), that
// the ledger still holds what it held then. fn gets each recipient's first
// finding, or nil after a ledger without one (for progress); entries, when
// not nil, counts the entries checked, recipients the ledgers, and
// unsealed the entries written before sealing began (each ledger's
// unsealed first entries: not findings).
func (s *Store) VerifyLedgers(ctx context.Context, key []byte, checkpoint map[string]ChainHead, recipients, entries, unsealed *atomic.Int64,
	fn func(*Finding) error) error {
	cp, inCheckpoint := checkpoint[""]
	f, bad, n, err := s.verifyTrail(ctx, key, cp, inCheckpoint)
	if err != nil {
		return err
	}
	if entries != nil {
		entries.Add(int64(n))
	}
	if bad {
		err = fn(&f)
	} else {
		err = fn(nil)
	}
	if err != nil {
		return err
	}
	seen := map[string]bool{"": true}
	err = s.scanLedgers(ctx, func(ctx context.Context, c redis.Cmdable, id string) error {
		pipe := c.TxPipeline() // the ledger and the current consent as of one instant
		log := pipe.LRange(ctx, s.key(id, suffixConsentLog), 0, -1)
		cur := pipe.HGetAll(ctx, s.key(id, suffixConsent))
		if _, err := pipe.Exec(ctx); err != nil {
			return storageErr("verify", err)
		}
		if checkpoint != nil {
			seen[id] = true
		}
		if recipients != nil {
			recipients.Add(1)
		}
		if entries != nil {
			entries.Add(int64(len(log.Val())))
		}
		cp, inCheckpoint := checkpoint[id]
		var n int64
		f, bad := verifyLedger(key, id, log.Val(), cur.Val(), cp, inCheckpoint, &n)
		if unsealed != nil {
			unsealed.Add(n)
		}
		if bad {
			return fn(&f)
		}
		return fn(nil)
	})
	if err != nil {
		return err
	}
	// Current consent with no ledger at all: made outside it.
	err = forEachNode(ctx, s.rdb, func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, s.prefix+":{*}"+suffixConsent, 500).Iterator()
		for it.Next(ctx) {
			id, ok := recipientOfKey(it.Val(), s.prefix, suffixConsent)
			if !ok {
				continue
			}
			n, err := c.Exists(ctx, s.key(id, suffixConsentLog)).Result()
			if err != nil {
				return storageErr("verify", err)
			}
			if n == 0 {
				if err := fn(&Finding{HCPID: id, Seq: -1, Problem: "current consent without a ledger: it was made outside it"}); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return storageErr("verify", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, cp := range checkpoint {
		if !seen[id] && cp.Length > 0 {
			if err := fn(&Finding{HCPID: id, Seq: -1, Problem: fmt.Sprintf("the ledger is gone: the checkpoint saw %d entries", cp.Length)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyLedger checks one recipient's ledger (log, oldest first) and
// current consent (cur, the hash), and returns its first finding.
func verifyLedger(key []byte, id string, log []string, cur map[string]string, cp ChainHead, inCheckpoint bool, unsealed *int64) (Finding, bool) {
	bad := func(seq int64, format string, args ...any) (Finding, bool) {
		return Finding{HCPID: id, Seq: seq, Problem: fmt.Sprintf(format, args...)}, true
	}
	prev := ""
	want := map[string]string{} // the current consent the ledger makes
	// Erased at ledger length erasedAt (-1: never): the completeness
	// marker was cleared then.
	erasedAt := int64(-1)
	if v, ok := cur[erasedField]; ok {
		_, n, _ := strings.Cut(v, "|")
		if x, err := strconv.ParseInt(n, 10, 64); err == nil {
			erasedAt = x
		}
	}
	complete := "" // the marker the ledger makes
	for i, raw := range log {
		e, err := decodeLedger(raw)
		if err != nil {
			return bad(int64(i), "entry %d does not decode: it was edited", i)
		}
		if e.Seq != int64(i) {
			return bad(int64(i), "entry %d holds sequence number %d: an entry was removed, added or moved", i, e.Seq)
		}
		canon, digest, _ := canonEntry(raw)
		if digest == "" {
			if prev != "" {
				return bad(int64(i), "entry %d is not sealed, after sealed ones: it was added, or written by a server without the audit key", i)
			}
			// Written before sealing began (an earlier version, or no
			// audit key then): counted, not a finding, and still what the
			// current consent follows from. Only a checkpoint shows a
			// ledger replaced wholesale by unsealed entries.
			*unsealed++
		} else {
			if !hmac.Equal([]byte(digest), []byte(chainMAC(key, id, prev, canon))) {
				return bad(int64(i), "entry %d does not verify: it was edited, added, moved, or the chain was sealed with another key", i)
			}
			prev = digest
		}
		if e.MarkedComplete && int64(i) >= erasedAt {
			complete = strconv.FormatInt(e.RecordedAt.UnixMilli(), 10)
		}
		switch {
		case !e.Applied || !e.Record.Channel.Valid():
		case e.Erased:
			// Erasure kept the withdrawals, at channel level (erase.go).
			if st := e.Record.Status.String(); st == "opt_out" || st == "barred" {
				v := consentValue(&e.Record)
				if old, ok := want[consentField(&e.Record)]; !ok || laterValue(v, old) {
					want[consentField(&e.Record)] = v
				}
			}
		default:
			want[consentField(&e.Record)] = consentValue(&e.Record)
		}
	}
	if inCheckpoint {
		switch n := int64(len(log)); {
		case n < cp.Length:
			return bad(n, "the ledger has %d entries, the checkpoint saw %d: entries from %d on were removed", n, cp.Length, n)
		case cp.Length > 0 && !strings.HasPrefix(log[cp.Length-1], "3|"+strconv.FormatInt(cp.Length-1, 10)+"|"):
			return bad(cp.Length-1, "entry %d is not where the checkpoint saw it", cp.Length-1)
		case cp.Length > 0:
			if _, d, _ := canonEntry(log[cp.Length-1]); d != cp.Head {
				return bad(cp.Length-1, "entry %d differs from the one the checkpoint saw", cp.Length-1)
			}
		}
	}
	if cur[completeField] != complete {
		return bad(-1, "the completeness marker does not follow from the ledger: it was set or changed outside it")
	}
	if v, ok := cur[versionField]; ok && v != strconv.Itoa(len(log)) {
		return bad(-1, "the consent version is %s, the ledger has %d entries", v, len(log))
	}
	for f, v := range cur {
		if f == completeField || f == versionField || f == erasedField {
			continue
		}
		// A record written for a rolling upgrade (WithPreviousReaders)
		// keeps its notice version in the ledger only.
		if w := want[f]; w != v && withoutNotice(w) != v {
			return bad(-1, "the current %s consent does not follow from the ledger: it was changed outside it", scopeChannel(f))
		}
	}
	for f := range want {
		if _, ok := cur[f]; !ok {
			return bad(-1, "a current %s consent record the ledger made is missing", scopeChannel(f))
		}
	}
	return Finding{}, false
}

// scopeChannel is the channel and purpose of a scope field, for a finding
// (not its topic or address).
func scopeChannel(field string) string {
	ch, rest, _ := strings.Cut(field, "|")
	pu, _, _ := strings.Cut(rest, "|")
	return ch + " " + pu
}
