package arbiter

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Packages wrap them (fmt.Errorf("redisstore: load: %w", ...))
// and the gRPC boundary maps them to status codes with errors.Is. Anything
// that wraps none of them is an internal error: the caller is told only that.
var (
	// ErrNotFound: the recipient, action or record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: storage could not be reached or did not answer in time.
	// Decisions fail closed on it: no recommendation is made.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrResourceExhausted: a limit was hit (request too large, too many
	// in flight).
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrCorrupt: stored data could not be decoded. Callers get Internal;
	// consent evaluation treats it as unknown, which means deny.
	ErrCorrupt = errors.New("stored data corrupt")
)

// FieldViolation names one bad field of a request and what is wrong with it.
// The description must not echo personal data.
type FieldViolation struct {
	Field       string
	Description string
}

// InvalidError is returned for bad input. It lists every violation found.
type InvalidError struct {
	Violations []FieldViolation
}

// Invalid returns an InvalidError with one violation.
func Invalid(field, description string) *InvalidError {
	return &InvalidError{Violations: []FieldViolation{{field, description}}}
}

// Add appends a violation.
func (e *InvalidError) Add(field, description string) {
	e.Violations = append(e.Violations, FieldViolation{field, description})
}

// Err returns e as an error, or nil when it holds no violations.
func (e *InvalidError) Err() error {
	if e == nil || len(e.Violations) == 0 {
		return nil
	}
	return e
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("invalid argument: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// PreconditionError is a request that is well formed but cannot be done in
// the state things are in (a reservation released twice). The gRPC
// boundary answers FailedPrecondition, with Subject and Description in a
// google.rpc.PreconditionFailure detail. Neither holds personal data.
type PreconditionError struct {
	Subject     string
	Description string
}

func (e *PreconditionError) Error() string { return e.Subject + ": " + e.Description }

// JSONProblem says what is wrong with a JSON document (a definitions file)
// without quoting it: where the syntax breaks, or which field has the
// wrong type.
func JSONProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s: wrong type (%s)", te.Field, te.Value)
	}
	return err.Error()
}

// AddressRefProblem is the violation of an address field that holds an
// e-mail address: the API takes a reference to the address (a CRM id, a
// hash), never the address itself, so that no address reaches the store
// or the logs. (A phone number cannot be told from a numeric id, and is
// not refused.)
const AddressRefProblem = "must be a reference to the address (a CRM id or a hash), never the address itself"
