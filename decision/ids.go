package decision

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// idSource makes decision ids:
//
//	<decision time, Unix ms, base 36>-<process tag, 8 hex>-<counter, base 36>[-<sealed recipient>]
//
// The time comes first so that ids sort by time; the random per-process
// tag and the counter make them unique across processes without
// coordination. With an IDKey the id ends with the recipient id sealed
// (AES-GCM): whoever holds the key finds the recipient's receipts, on its
// Redis Cluster shard, from the id alone, and can tell an id of this
// recipient's from a forged or another recipient's one (an outcome's
// decision_id); whoever does not learns nothing of the recipient. The
// time is the server's clock when the decision was made (a receipt is
// filed under it), not the decision time the caller asked about.
type idSource struct {
	tag  string
	seq  atomic.Uint64
	seal *IDKey
}

func newIDSource() *idSource {
	var raw [4]byte
	rand.Read(raw[:])
	return &idSource{tag: hex.EncodeToString(raw[:])}
}

func (s *idSource) next(at time.Time, hcpID string) string {
	var buf [160]byte
	out := strconv.AppendInt(buf[:0], at.UnixMilli(), 36)
	out = append(out, '-')
	out = append(out, s.tag...)
	out = append(out, '-')
	out = strconv.AppendUint(out, s.seq.Add(1), 36)
	if s.seal != nil {
		out = s.seal.seal(out, hcpID)
	}
	return string(out)
}

// IDKey seals the recipient into decision ids (WithIDKey) and opens them
// again (Open). Every server of a deployment must use the same key.
type IDKey struct {
	aead cipher.AEAD
}

// NewIDKey derives the decision-id key from secret (at least 16 bytes,
// kept outside Redis; the same secret gives the same key).
func NewIDKey(secret []byte) (*IDKey, error) {
	if len(secret) < 16 {
		return nil, errors.New("decision: the id secret must be at least 16 bytes")
	}
	k, err := hkdf.Key(sha256.New, secret, nil, "arbiter decision id v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &IDKey{aead: aead}, nil
}

// WithIDKey seals the recipient into every decision id (see idSource).
func WithIDKey(k *IDKey) Option { return func(e *Engine) { e.ids.seal = k } }

var idEncoding = base64.RawURLEncoding

// seal appends "-" and the sealed hcpID to the id prefix in out: a random
// nonce, then the ciphertext, the prefix authenticated with it. The nonce
// is random, not derived from the prefix: callers choose the decision
// time, and a nonce repeated under one key would give the key away.
func (k *IDKey) seal(out []byte, hcpID string) []byte {
	var buf [12 + 64 + 16]byte
	nonce := buf[:12]
	rand.Read(nonce)
	sealed := k.aead.Seal(buf[:12], nonce, []byte(hcpID), out)
	out = append(out, '-')
	return idEncoding.AppendEncode(out, sealed)
}

// ErrForeignID is the error of Open for an id that this key did not seal:
// made by a server with another key or none, altered, or made up.
var ErrForeignID = errors.New("decision id: not sealed by this deployment's key")

// Open returns the recipient and the decision time sealed in a decision
// id. An id it cannot open is ErrForeignID.
func (k *IDKey) Open(id string) (hcpID string, at time.Time, err error) {
	parts := strings.SplitN(id, "-", 4) // the sealed part may hold "-" (base64url)
	if len(parts) != 4 || len(parts[1]) != 8 {
		return "", time.Time{}, ErrForeignID
	}
	ms, err1 := strconv.ParseInt(parts[0], 36, 64)
	_, err2 := strconv.ParseUint(parts[2], 36, 64)
	var tag [4]byte
	_, err3 := hex.Decode(tag[:], []byte(parts[1]))
	sealed, err4 := idEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(sealed) < 12+k.aead.Overhead() {
		return "", time.Time{}, ErrForeignID
	}
	prefix := id[:len(id)-len(parts[3])-1]
	plain, err := k.aead.Open(nil, sealed[:12], sealed[12:], []byte(prefix))
	if err != nil {
		return "", time.Time{}, ErrForeignID
	}
	return string(plain), time.UnixMilli(ms).UTC(), nil
}
