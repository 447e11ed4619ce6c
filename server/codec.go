package server

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// utf8Codec is the standard protobuf codec, except that a request whose
// string fields hold invalid UTF-8 is still decoded, with each bad byte
// replaced by U+FFFD, so that validation can answer InvalidArgument naming
// the field. The stock codec fails such a request before any handler runs,
// and gRPC then answers codes.Internal. Validation rejects U+FFFD in every
// string field, so the replacement never reaches the core.
type utf8Codec struct{ encoding.CodecV2 }

func newCodec() encoding.CodecV2 {
	return utf8Codec{encoding.GetCodecV2(protoenc.Name)}
}

func (c utf8Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		return err
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	buf := data.Materialize()
	fixed, ok := sanitizeUTF8(buf, m.ProtoReflect().Descriptor())
	if !ok {
		return err
	}
	proto.Reset(m)
	return proto.Unmarshal(fixed, m)
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
