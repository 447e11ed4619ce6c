package client

import (
	"encoding/json"
	"fmt"

	"github.com/arbiter-nba/arbiter"
)

// JSON forms. The types in types.go carry snake_case json tags; the ones
// with an arbiter enum (which has no text form of its own) marshal it by
// name ("email", "promotional", "opened") through the wrappers below. Each
// MarshalJSON embeds the type converted to a method-less twin, so every
// other field keeps its tag, and overrides the enum fields: a field at a
// shallower depth wins in encoding/json.

// MarshalJSON writes the channel and purpose by name.
func (r Recommendation) MarshalJSON() ([]byte, error) {
	type plain Recommendation
	return json.Marshal(struct {
		plain
		Channel jsonChannel `json:"channel"`
		Purpose jsonPurpose `json:"purpose"`
	}{plain(r), jsonChannel(r.Channel), jsonPurpose(r.Purpose)})
}

// UnmarshalJSON reads the channel and purpose by name.
func (r *Recommendation) UnmarshalJSON(b []byte) error {
	type plain Recommendation
	v := struct {
		*plain
		Channel jsonChannel `json:"channel"`
		Purpose jsonPurpose `json:"purpose"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Channel, r.Purpose = arbiter.Channel(v.Channel), arbiter.Purpose(v.Purpose)
	return nil
}

// MarshalJSON writes the type and channel by name.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		plain
		Type    jsonEventType `json:"type"`
		Channel jsonChannel   `json:"channel"`
	}{plain(e), jsonEventType(e.Type), jsonChannel(e.Channel)})
}

// UnmarshalJSON reads the type and channel by name.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	v := struct {
		*plain
		Type    jsonEventType `json:"type"`
		Channel jsonChannel   `json:"channel"`
	}{plain: (*plain)(e)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	e.Type, e.Channel = arbiter.EventType(v.Type), arbiter.Channel(v.Channel)
	return nil
}

// MarshalJSON writes the audience and the address channels by name.
func (p Profile) MarshalJSON() ([]byte, error) {
	type plain Profile
	return json.Marshal(struct {
		plain
		Audience  jsonAudience           `json:"audience"`
		Addresses map[jsonChannel]string `json:"addresses,omitempty"`
	}{plain(p), jsonAudience(p.Audience), rekey[jsonChannel](p.Addresses)})
}

// UnmarshalJSON reads the audience and the address channels by name.
func (p *Profile) UnmarshalJSON(b []byte) error {
	type plain Profile
	v := struct {
		*plain
		Audience  jsonAudience           `json:"audience"`
		Addresses map[jsonChannel]string `json:"addresses"`
	}{plain: (*plain)(p)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p.Audience, p.Addresses = arbiter.Audience(v.Audience), rekey[arbiter.Channel](v.Addresses)
	return nil
}

// MarshalJSON writes the channels by name.
func (c Counters) MarshalJSON() ([]byte, error) {
	type plain Counters
	return json.Marshal(struct {
		plain
		Channels map[jsonChannel]ChannelCounters `json:"channels,omitempty"`
	}{plain(c), rekey[jsonChannel](c.Channels)})
}

// UnmarshalJSON reads the channels by name.
func (c *Counters) UnmarshalJSON(b []byte) error {
	type plain Counters
	v := struct {
		*plain
		Channels map[jsonChannel]ChannelCounters `json:"channels"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c.Channels = rekey[arbiter.Channel](v.Channels)
	return nil
}

// MarshalJSON writes the channel and purpose by name.
func (r ConsentRecord) MarshalJSON() ([]byte, error) {
	type plain ConsentRecord
	return json.Marshal(struct {
		plain
		Channel jsonChannel `json:"channel"`
		Purpose jsonPurpose `json:"purpose,omitzero"` // none on a barred record
	}{plain(r), jsonChannel(r.Channel), jsonPurpose(r.Purpose)})
}

// UnmarshalJSON reads the channel and purpose by name.
func (r *ConsentRecord) UnmarshalJSON(b []byte) error {
	type plain ConsentRecord
	v := struct {
		*plain
		Channel jsonChannel `json:"channel"`
		Purpose jsonPurpose `json:"purpose"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Channel, r.Purpose = arbiter.Channel(v.Channel), arbiter.Purpose(v.Purpose)
	return nil
}

// The wrappers give the arbiter enums a text form: the name for a valid
// value, "" for the zero value, an error for anything else.
type (
	jsonChannel   arbiter.Channel
	jsonPurpose   arbiter.Purpose
	jsonAudience  arbiter.Audience
	jsonEventType arbiter.EventType
)

func (c jsonChannel) MarshalText() ([]byte, error) {
	return enumText("channel", arbiter.Channel(c))
}

func (c *jsonChannel) UnmarshalText(b []byte) error {
	return parseEnum("channel", b, arbiter.ParseChannel, (*arbiter.Channel)(c))
}

func (p jsonPurpose) MarshalText() ([]byte, error) {
	return enumText("purpose", arbiter.Purpose(p))
}

func (p *jsonPurpose) UnmarshalText(b []byte) error {
	return parseEnum("purpose", b, arbiter.ParsePurpose, (*arbiter.Purpose)(p))
}

func (a jsonAudience) MarshalText() ([]byte, error) {
	return enumText("audience", arbiter.Audience(a))
}

func (a *jsonAudience) UnmarshalText(b []byte) error {
	return parseEnum("audience", b, arbiter.ParseAudience, (*arbiter.Audience)(a))
}

func (t jsonEventType) MarshalText() ([]byte, error) {
	return enumText("event type", arbiter.EventType(t))
}

func (t *jsonEventType) UnmarshalText(b []byte) error {
	return parseEnum("event type", b, arbiter.ParseEventType, (*arbiter.EventType)(t))
}

type enum interface {
	~uint8
	String() string
	Valid() bool
}

func enumText[E enum](kind string, e E) ([]byte, error) {
	switch {
	case e == 0:
		return nil, nil
	case !e.Valid():
		return nil, fmt.Errorf("invalid %s %d", kind, e)
	}
	return []byte(e.String()), nil
}

func parseEnum[E enum](kind string, b []byte, parse func(string) (E, bool), dst *E) error {
	if len(b) == 0 {
		*dst = 0
		return nil
	}
	e, ok := parse(string(b))
	if !ok {
		return fmt.Errorf("unknown %s %q", kind, b)
	}
	*dst = e
	return nil
}

// rekey copies a map keyed by one enum type into a map keyed by another of
// the same underlying type (an arbiter enum and its JSON wrapper). It keeps
// nil as nil.
func rekey[K2, K1 ~uint8, V any](m map[K1]V) map[K2]V {
	if m == nil {
		return nil
	}
	out := make(map[K2]V, len(m))
	for k, v := range m {
		out[K2(k)] = v
	}
	return out
}
