package decision

// Reason is why a candidate was held back: a short snake_case code
// ("no_consent"), stable across versions, used in metrics labels and
// mapped by name to the API's SuppressionReason (SUPPRESSION_REASON_ and
// the code in upper case). Each gate declares the reasons it blocks with,
// beside it; the empty Reason means allowed.
type Reason string

// ReasonUnspecified is no reason: the candidate is allowed.
const ReasonUnspecified Reason = ""

func (r Reason) String() string {
	if r == ReasonUnspecified {
		return "unspecified"
	}
	return string(r)
}
