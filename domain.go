package arbiter

// Channel is a way to reach a recipient. The zero value is "unspecified" and
// is never a valid channel for an action or a consent record.
type Channel uint8

const (
	ChannelUnspecified Channel = iota
	Email
	SMS
	Push
	RepVisit
	RemoteVisit
	MSLMeeting
	Webinar
	Portal
	DirectMail
	// InApp: a message in the recipient's app (a hospital's patient app),
	// shown when they open it.
	InApp
	// Chatbot: a hand-off to a conversational assistant, which the
	// recipient answers when they choose.
	Chatbot
	numChannels
)

// NumChannels is the size of arrays indexed by Channel (including the
// unspecified slot 0, so that a Channel indexes them directly).
const NumChannels = int(numChannels)

var channelNames = [NumChannels]string{
	"unspecified", "email", "sms", "push", "rep_visit", "remote_visit",
	"msl_meeting", "webinar", "portal", "direct_mail", "in_app", "chatbot",
}

// Channels lists every valid channel in declaration order.
func Channels() []Channel {
	out := make([]Channel, 0, NumChannels-1)
	for c := Email; c < numChannels; c++ {
		out = append(out, c)
	}
	return out
}

func (c Channel) String() string {
	if int(c) < NumChannels {
		return channelNames[c]
	}
	return "invalid"
}

// Valid reports whether c names a real channel.
func (c Channel) Valid() bool { return c > ChannelUnspecified && c < numChannels }

// ParseChannel returns the channel with the given name ("email", "rep_visit").
func ParseChannel(s string) (Channel, bool) {
	for i := 1; i < NumChannels; i++ {
		if channelNames[i] == s {
			return Channel(i), true
		}
	}
	return ChannelUnspecified, false
}

// Purpose is why a recipient is contacted. Consent is given per purpose: an
// opt-in for medical/scientific contact does not cover promotion.
type Purpose uint8

const (
	PurposeUnspecified Purpose = iota
	Promotional
	Medical
	Service
	numPurposes
)

// NumPurposes is the size of arrays indexed by Purpose.
const NumPurposes = int(numPurposes)

var purposeNames = [NumPurposes]string{"unspecified", "promotional", "medical", "service"}

func (p Purpose) String() string {
	if int(p) < NumPurposes {
		return purposeNames[p]
	}
	return "invalid"
}

// Valid reports whether p names a real purpose.
func (p Purpose) Valid() bool { return p > PurposeUnspecified && p < numPurposes }

// ParsePurpose returns the purpose with the given name ("promotional").
func ParsePurpose(s string) (Purpose, bool) {
	for i := 1; i < NumPurposes; i++ {
		if purposeNames[i] == s {
			return Purpose(i), true
		}
	}
	return PurposeUnspecified, false
}

// Audience is the kind of recipient an action is meant for.
type Audience uint8

const (
	AudienceUnspecified Audience = iota
	HCP
	Patient
	numAudiences
)

var audienceNames = [numAudiences]string{"unspecified", "hcp", "patient"}

func (a Audience) String() string {
	if a < numAudiences {
		return audienceNames[a]
	}
	return "invalid"
}

// Valid reports whether a names a real audience.
func (a Audience) Valid() bool { return a > AudienceUnspecified && a < numAudiences }

// ParseAudience returns the audience with the given name ("hcp", "patient").
func ParseAudience(s string) (Audience, bool) {
	for i := Audience(1); i < numAudiences; i++ {
		if audienceNames[i] == s {
			return i, true
		}
	}
	return AudienceUnspecified, false
}

// CallerKind is who asks for a decision. The model weighs channels
// differently for a rep planning a visit and a platform about to send email.
type CallerKind uint8

const (
	CallerUnspecified CallerKind = iota
	CallerRepTool
	CallerMarketingPlatform
	CallerBenchmark
	numCallerKinds
)

// NumCallerKinds is the size of arrays indexed by CallerKind.
const NumCallerKinds = int(numCallerKinds)

var callerNames = [NumCallerKinds]string{"unspecified", "rep_tool", "marketing_platform", "benchmark"}

func (k CallerKind) String() string {
	if int(k) < NumCallerKinds {
		return callerNames[k]
	}
	return "invalid"
}

// Valid reports whether k is a known caller kind (unspecified included:
// a caller need not say who it is).
func (k CallerKind) Valid() bool { return k < numCallerKinds }

// ParseCallerKind returns the caller kind with the given name.
func ParseCallerKind(s string) (CallerKind, bool) {
	for i := 0; i < NumCallerKinds; i++ {
		if callerNames[i] == s {
			return CallerKind(i), true
		}
	}
	return CallerUnspecified, false
}

// EventType is an outcome reported back by a data feed.
type EventType uint8

const (
	EventUnspecified EventType = iota
	EventSent
	EventDelivered
	EventOpened
	EventClicked
	EventAttended
	EventRepVisit
	EventMSLMeeting
	EventUnsubscribed
	EventBounced
	// EventRegistered: registered for a webinar or event.
	EventRegistered
	// EventNoShow: registered but did not attend.
	EventNoShow
	EventVideoWatched
	EventDownload
	EventSampleRequest
	// EventGoal: a goal a journey declares (a prescription started, a
	// trial enrolment), reported by the data feed.
	EventGoal
	// EventDismissed: a rep dismissed a suggestion of the action
	// (SuggestionFeedback), with a DismissReason. Not something that
	// happened to the recipient: it is no engagement, no touch, and does
	// not mark a journey step done (Undone).
	EventDismissed
	// EventCompleted: a rep marked a suggestion of the action done
	// (SuggestionFeedback): engagement on its channel. The touch itself
	// (a visit, a send) comes from the data feed, as any touch does.
	EventCompleted
	numEventTypes
)

// NumEventTypes is the size of arrays indexed by EventType (including the
// unspecified slot 0).
const NumEventTypes = int(numEventTypes)

var eventNames = [numEventTypes]string{
	"unspecified", "sent", "delivered", "opened", "clicked", "attended",
	"rep_visit", "msl_meeting", "unsubscribed", "bounced",
	"registered", "no_show", "video_watched", "download", "sample_request", "goal",
	"dismissed", "completed",
}

func (e EventType) String() string {
	if e < numEventTypes {
		return eventNames[e]
	}
	return "invalid"
}

// Valid reports whether e names a real event type.
func (e EventType) Valid() bool { return e > EventUnspecified && e < numEventTypes }

// ParseEventType returns the event type with the given name ("opened").
func ParseEventType(s string) (EventType, bool) {
	for i := EventType(1); i < numEventTypes; i++ {
		if eventNames[i] == s {
			return i, true
		}
	}
	return EventUnspecified, false
}

// Engagement is how much an event says about the recipient's interest, as
// added to the decayed engagement counters. Sends and deliveries are contact,
// not engagement; bounces and unsubscribes count against the channel.
func (e EventType) Engagement() float64 {
	switch e {
	case EventOpened:
		return 1
	case EventClicked:
		return 2
	case EventAttended, EventRepVisit, EventMSLMeeting, EventSampleRequest, EventGoal:
		return 3
	case EventVideoWatched, EventDownload:
		return 2
	case EventRegistered, EventCompleted:
		return 1
	case EventUnsubscribed:
		return -3
	case EventBounced, EventNoShow:
		return -1
	}
	return 0
}

// Undone reports whether the event says its action did not happen: a
// bounce (it did not reach the recipient) or a rep's dismissal of the
// suggestion. A journey does not count it as its step done.
func (e EventType) Undone() bool { return e == EventBounced || e == EventDismissed }

// IsTouch reports whether the event adds a touch to the recipient's touch
// ledger, which the contact policy counts: a send, a delivery (one touch
// with the send of the same message id), a rep visit, an MSL meeting.
// Opens, clicks and attendance are the recipient's doing, not a contact;
// a bounce did not reach them.
func (e EventType) IsTouch() bool {
	return e.IsContact() || e == EventDelivered
}

// IsContact reports whether the event is an outbound touch that counts
// towards contact frequency (a send, a visit, a meeting).
func (e EventType) IsContact() bool {
	switch e {
	case EventSent, EventRepVisit, EventMSLMeeting:
		return true
	}
	return false
}

// DismissReason is why a rep dismissed a suggestion (EventDismissed).
type DismissReason uint8

const (
	DismissUnspecified DismissReason = iota
	// DismissNotRelevant: the action is not relevant to the recipient. It
	// counts against the action for that recipient in later decisions
	// (the decision package's dismissal gate).
	DismissNotRelevant
	// DismissAlreadyDone: the rep did it already (or its like).
	DismissAlreadyDone
	DismissOther
	numDismissReasons
)

var dismissNames = [numDismissReasons]string{"unspecified", "not_relevant", "already_done", "other"}

func (r DismissReason) String() string {
	if r < numDismissReasons {
		return dismissNames[r]
	}
	return "invalid"
}

// Valid reports whether r names a real reason.
func (r DismissReason) Valid() bool { return r > DismissUnspecified && r < numDismissReasons }

// ParseDismissReason returns the reason with the given name ("not_relevant").
func ParseDismissReason(s string) (DismissReason, bool) {
	for i := DismissReason(1); i < numDismissReasons; i++ {
		if dismissNames[i] == s {
			return i, true
		}
	}
	return DismissUnspecified, false
}
