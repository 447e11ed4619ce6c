package server

import (
	"bytes"
	"context"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// utf8Codec is the standard protobuf codec, except for requests it cannot
// decode, which the stock codec fails before any handler runs, and gRPC
// then answers codes.Internal with the parser's text:
//
//   - a request whose string fields hold invalid UTF-8 is still decoded,
//     with each bad byte replaced by U+FFFD, so that validation can answer
//     InvalidArgument naming the field (validation rejects U+FFFD in every
//     string field, so the replacement never reaches the core);
//   - any other malformed request is decoded as an empty message marked
//     malformed (malformedMarker), which the rejectMalformed interceptors
//     answer with InvalidArgument before any handler sees it.
type utf8Codec struct{ encoding.CodecV2 }

// malformedMarker is the unknown field a malformed request is marked with:
// field 536870911 (the highest field number), length-delimited, holding
// "arbiter: malformed". No message of the API has that field.
var malformedMarker = protowire.AppendBytes(protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.BytesType),
	[]byte("arbiter: malformed"))

// isMalformed reports whether m was marked by the codec as malformed.
func isMalformed(m proto.Message) bool {
	return bytes.Equal(m.ProtoReflect().GetUnknown(), malformedMarker)
}

func newCodec() encoding.CodecV2 {
	return utf8Codec{encoding.GetCodecV2(protoenc.Name)}
}

func (c utf8Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*nbapb.DecideRequest); ok && decodeDecideRequest(data, m) {
		return nil
	}
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	if strings.Contains(err.Error(), "invalid UTF-8") {
		if fixed, ok := sanitizeUTF8(data.Materialize(), m.ProtoReflect().Descriptor()); ok {
			proto.Reset(m)
			if proto.Unmarshal(fixed, m) == nil {
				return nil
			}
		}
	}
	proto.Reset(m)
	m.ProtoReflect().SetUnknown(malformedMarker)
	return nil
}

// errMalformed answers a request the codec could not decode. It names no
// field (none could be read) and never echoes the parser's text.
func errMalformed(m proto.Message) error {
	return status.Errorf(codes.InvalidArgument, "the request is not a valid %s message", m.ProtoReflect().Descriptor().FullName())
}

// rejectMalformed answers a malformed unary request with InvalidArgument.
func rejectMalformed(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok && isMalformed(m) {
		return nil, errMalformed(m)
	}
	return handler(ctx, req)
}

// rejectMalformedStream does the same for every message a stream receives.
func rejectMalformedStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, malformedCheckingStream{ss})
}

type malformedCheckingStream struct{ grpc.ServerStream }

func (s malformedCheckingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok && isMalformed(pm) {
		return errMalformed(pm)
	}
	return nil
}

// sanitizeUTF8 rewrites a wire-format message, replacing invalid UTF-8 in
// string fields (at any depth, map entries included) with U+FFFD.
func sanitizeUTF8(b []byte, md protoreflect.MessageDescriptor) ([]byte, bool) {
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return nil, false
			}
			out = append(out, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, false
		}
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
			v = []byte(strings.ToValidUTF8(string(v), string(utf8.RuneError)))
		case fd.Kind() == protoreflect.MessageKind:
			var ok bool
			if v, ok = sanitizeUTF8(v, fd.Message()); !ok {
				return nil, false
			}
		}
		out = protowire.AppendTag(out, num, typ)
		out = protowire.AppendBytes(out, v)
		b = b[n+m:]
	}
	return out, true
}

// decodeDecideRequest decodes the hot path's request with few allocations
// for its strings: the message is copied once into a string and every
// candidate is a substring of it, where protobuf's decoder allocates each
// candidate id on its own (a 100 candidate request: 100 allocations). The
// HCP id and the candidate set get copies of their own, since they outlive
// the request (an HCP cache key) and must not keep it all alive. The result is what proto.Unmarshal
// gives (FuzzDecodeDecideRequest). It declines (false, m reset) anything
// but the well-formed request of known fields with valid UTF-8: unknown
// fields, a wire type that does not match, invalid UTF-8, a malformed
// message; the stock path then decodes it as it always did.
func decodeDecideRequest(data mem.BufferSlice, m *nbapb.DecideRequest) bool {
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	// A first pass checks the framing and counts the candidates.
	n := 0
	for rest := b; len(rest) > 0; {
		num, typ, k := protowire.ConsumeTag(rest)
		if k < 0 || num < 1 || num > 6 {
			return false
		}
		want := protowire.BytesType
		if num == 2 || num == 5 {
			want = protowire.VarintType
		}
		if typ != want {
			return false
		}
		l := protowire.ConsumeFieldValue(num, typ, rest[k:])
		if l < 0 {
			return false
		}
		if num == 3 {
			n++
		}
		rest = rest[k+l:]
	}
	proto.Reset(m)
	if len(b) == 0 {
		return true
	}
	s := string(b) // the one copy: every string field is a part of it
	if n > 0 {
		m.Candidates = make([]string, 0, n)
	}
	str := func(off, k int) (string, bool) {
		_, l := protowire.ConsumeVarint(b[off:])
		v := s[off+l : off+k]
		return v, utf8.ValidString(v)
	}
	for off := 0; off < len(b); {
		num, typ, k := protowire.ConsumeTag(b[off:])
		off += k
		l := protowire.ConsumeFieldValue(num, typ, b[off:])
		var ok bool
		switch num {
		case 1:
			// A copy of its own: the id outlives the request (the HCP
			// cache's key, the cached state), which must not keep the
			// whole message alive.
			m.HcpId, ok = str(off, l)
			m.HcpId = strings.Clone(m.HcpId)
		case 2:
			v, _ := protowire.ConsumeVarint(b[off:])
			m.Limit, ok = int32(v), true
		case 3:
			var c string
			c, ok = str(off, l)
			m.Candidates = append(m.Candidates, c)
		case 4:
			v, _ := protowire.ConsumeBytes(b[off:])
			if m.Context == nil {
				m.Context = &nbapb.DecisionContext{}
			}
			ok = proto.UnmarshalOptions{Merge: true}.Unmarshal(v, m.Context) == nil
		case 5:
			v, _ := protowire.ConsumeVarint(b[off:])
			m.Explain, ok = v != 0, true
		case 6:
			m.CandidateSet, ok = str(off, l)
			m.CandidateSet = strings.Clone(m.CandidateSet)
		}
		if !ok {
			proto.Reset(m)
			return false
		}
		off += l
	}
	return true
}
