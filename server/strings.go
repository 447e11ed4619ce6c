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
// reach this check). Field paths use the proto names: "event.hcp_id",
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
					walkStrings(l.Get(i).Message(), item+".", c)
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if badUTF8(v.String()) {
				c.Add(name, "must be valid UTF-8")
			}
		case fd.Kind() == protoreflect.MessageKind:
			walkStrings(v.Message(), name+".", c)
		}
		return true
	})
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
