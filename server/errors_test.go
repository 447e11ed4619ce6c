package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
)

func TestToStatus(t *testing.T) {
	raw := errors.New("dial tcp 10.0.0.7:6379: connect: connection refused")
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		mustNot  string // text that must not reach the client
		violates string // a field violation that must be present
	}{
		{"not found", fmt.Errorf("features: load: hcp HCP-1: %w", arbiter.ErrNotFound), codes.NotFound, "HCP-1", ""},
		{"unavailable", fmt.Errorf("features: load: %w: %w", arbiter.ErrUnavailable, raw), codes.Unavailable, "10.0.0.7", ""},
		{"exhausted", fmt.Errorf("x: %w", arbiter.ErrResourceExhausted), codes.ResourceExhausted, "", ""},
		{"invalid", fmt.Errorf("decide: %w", arbiter.Invalid("candidates[3]", "unknown action id")), codes.InvalidArgument, "", "candidates[3]"},
		{"deadline", fmt.Errorf("load: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "", ""},
		{"canceled", context.Canceled, codes.Canceled, "", ""},
		{"corrupt is internal", fmt.Errorf("features: load: %w: bad field e:email", arbiter.ErrCorrupt), codes.Internal, "e:email", ""},
		{"unknown is internal", errors.New("ERR user_script:12: attempt to index a nil value"), codes.Internal, "user_script", ""},
		{"status passes through", status.Error(codes.Unauthenticated, "no"), codes.Unauthenticated, "", ""},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(toStatus(context.Background(), log, tt.err))
			if st.Code() != tt.code {
				t.Errorf("code = %v, want %v", st.Code(), tt.code)
			}
			if tt.mustNot != "" && strings.Contains(st.Message(), tt.mustNot) {
				t.Errorf("message %q leaks %q", st.Message(), tt.mustNot)
			}
			if tt.violates != "" {
				var found bool
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.FieldViolations {
							found = found || v.Field == tt.violates
						}
					}
				}
				if !found {
					t.Errorf("details %v lack a field violation for %q", st.Details(), tt.violates)
				}
			}
		})
	}
	if toStatus(context.Background(), log, nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}
