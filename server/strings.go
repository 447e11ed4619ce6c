package server

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/arbiter-nba/arbiter"
)

// checkStrings rejects a request any of whose string fields, at any depth,
// is not valid UTF-8 (the codec turns invalid bytes into U+FFFD so they
// reach this check), or any of whose timestamps is not a valid time from
// 1970 to 9999 (invalid nanoseconds, year 10000; and 0001-01-01, which
// would otherwise read as an absent time: an opt-in with such an expiry
// would never expire). Field paths use the proto names: "event.hcp_id",
// "consents[2].source", "attributes[x]".
func checkStrings(m proto.Message) error {
	var c checker
	walkStrings(m.ProtoReflect(), "", &c)
	return c.Err()
}

func walkStrings(m protoreflect.Message, prefix string, c *checker) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapKey().Kind() == protoreflect.StringKind && badUTF8(k.String()) {
					c.Add(name, "keys must be valid UTF-8")
				}
				if fd.MapValue().Kind() == protoreflect.StringKind && badUTF8(mv.String()) {
					c.Add(name, "values must be valid UTF-8")
				}
				return true
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				item := fmt.Sprintf("%s[%d]", name, i)
				switch fd.Kind() {
				case protoreflect.StringKind:
					if badUTF8(l.Get(i).String()) {
						c.Add(item, "must be valid UTF-8")
					}
				case protoreflect.MessageKind:
					if fd.Message().FullName() == timestampName {
						checkTimestamp(l.Get(i).Message(), item, c)
					} else {
						walkStrings(l.Get(i).Message(), item+".", c)
					}
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if badUTF8(v.String()) {
				c.Add(name, "must be valid UTF-8")
			}
		case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == timestampName:
			checkTimestamp(v.Message(), name, c)
		case fd.Kind() == protoreflect.MessageKind:
			walkStrings(v.Message(), name+".", c)
		}
		return true
	})
}

const timestampName = protoreflect.FullName("google.protobuf.Timestamp")

// maxTimestampSeconds is 9999-12-31T23:59:59Z.
const maxTimestampSeconds = 253402300799

// checkTimestamp checks a present google.protobuf.Timestamp: valid
// nanoseconds, from 1970-01-01 (times are stored as Unix milliseconds;
// earlier is a data error) to 9999-12-31.
func checkTimestamp(m protoreflect.Message, name string, c *checker) {
	fields := m.Descriptor().Fields()
	secs := m.Get(fields.ByName("seconds")).Int()
	nanos := m.Get(fields.ByName("nanos")).Int()
	if nanos < 0 || nanos >= 1e9 || secs < 0 || secs > maxTimestampSeconds {
		c.Add(name, "must be a valid time from 1970-01-01 to 9999-12-31 (nanos 0 to 999,999,999)")
	}
}

// prefixFields prefixes the field names of a validation error, to turn a
// domain field ("market") into the request's path ("items[3].profile.market").
func prefixFields(prefix string, err error) error { return renameFields("", prefix, err) }

// renameFields replaces the leading from of a validation error's field
// names with to; other errors, and names without from, are kept.
func renameFields(from, to string, err error) error {
	var inv *arbiter.InvalidError
	if !errors.As(err, &inv) {
		return err
	}
	out := &arbiter.InvalidError{}
	for _, v := range inv.Violations {
		if rest, ok := strings.CutPrefix(v.Field, from); ok {
			v.Field = to + rest
		}
		out.Add(v.Field, v.Description)
	}
	return out
}
