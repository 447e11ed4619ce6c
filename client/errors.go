package client

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// IsNotFound reports whether err is a gRPC status with codes.NotFound: the
// HCP (or the record asked for) does not exist.
func IsNotFound(err error) bool {
	return status.Code(err) == codes.NotFound
}

// StatusOf returns the gRPC code and message that err carries, for callers
// that would rather not import grpc's status package. ok is false when err
// is not a gRPC status (a local error): then code is codes.Unknown and
// message is err's text. A nil err is codes.OK.
func StatusOf(err error) (code codes.Code, message string, ok bool) {
	st, ok := status.FromError(err)
	return st.Code(), st.Message(), ok
}

// FieldViolations returns the invalid request fields named by err's
// errdetails.BadRequest, field path to description ("record.channel":
// "required"). Several violations of one field are joined with "; ". It
// returns nil when err carries none.
func FieldViolations(err error) map[string]string {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out map[string]string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if out == nil {
				out = make(map[string]string)
			}
			if prev, ok := out[v.GetField()]; ok {
				out[v.GetField()] = prev + "; " + v.GetDescription()
			} else {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}
