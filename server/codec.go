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
