package decision

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"time"
)

// idSource makes decision ids: the decision time in milliseconds (base 36,
// so ids sort by time), a per-process random tag and a counter. Unique
// across processes without coordination, and cheap: one small allocation.
type idSource struct {
	tag string
	seq atomic.Uint64
}

func newIDSource() *idSource {
	var b [4]byte
	rand.Read(b[:])
	return &idSource{tag: hex.EncodeToString(b[:])}
}

func (s *idSource) next(at time.Time) string {
	var buf [48]byte
	out := strconv.AppendInt(buf[:0], at.UnixMilli(), 36)
	out = append(out, '-')
	out = append(out, s.tag...)
	out = append(out, '-')
	out = strconv.AppendUint(out, s.seq.Add(1), 36)
	return string(out)
}
