package client

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestIsNotFound(t *testing.T) {
	notFound := status.Error(codes.NotFound, "hcp not found")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", notFound, true},
		{"wrapped not found", fmt.Errorf("lookup: %w", notFound), true},
		{"other code", status.Error(codes.InvalidArgument, "bad"), false},
		{"plain error", errors.New("not found"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsNotFound(tt.err); got != tt.want {
				t.Errorf("IsNotFound(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestFieldViolations(t *testing.T) {
	withDetails := func(details ...*errdetails.BadRequest) error {
		st := status.New(codes.InvalidArgument, "invalid argument")
		for _, d := range details {
			var err error
			if st, err = st.WithDetails(d); err != nil {
				t.Fatalf("WithDetails: %v", err)
			}
		}
		return st.Err()
	}
	invalid := withDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "limit", Description: "must be 1 to 50"},
		{Field: "candidates[3]", Description: "duplicate"},
		{Field: "limit", Description: "must be a number"},
	}})
	tests := []struct {
		name string
		err  error
		want map[string]string
	}{
		{"nil", nil, nil},
		{"plain error", errors.New("boom"), nil},
		{"status without details", status.Error(codes.InvalidArgument, "bad"), nil},
		{"empty bad request", withDetails(&errdetails.BadRequest{}), nil},
		{
			name: "violations",
			err:  invalid,
			want: map[string]string{
				"limit":         "must be 1 to 50; must be a number",
				"candidates[3]": "duplicate",
			},
		},
		{
			name: "wrapped",
			err:  fmt.Errorf("decide: %w", invalid),
			want: map[string]string{
				"limit":         "must be 1 to 50; must be a number",
				"candidates[3]": "duplicate",
			},
		},
		{
			name: "two bad requests",
			err: withDetails(
				&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "a", Description: "x"}}},
				&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "b", Description: "y"}}},
			),
			want: map[string]string{"a": "x", "b": "y"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FieldViolations(tt.err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FieldViolations() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  string
		wantOK   bool
	}{
		{"nil", nil, codes.OK, "", true},
		{"status", status.Error(codes.Unavailable, "storage unavailable"), codes.Unavailable, "storage unavailable", true},
		{"wrapped status", fmt.Errorf("decide: %w", status.Error(codes.NotFound, "not found")), codes.NotFound, "decide: rpc error: code = NotFound desc = not found", true},
		{"local error", errors.New("open hcps.jsonl: no such file"), codes.Unknown, "open hcps.jsonl: no such file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg, ok := StatusOf(tt.err)
			if code != tt.wantCode || msg != tt.wantMsg || ok != tt.wantOK {
				t.Errorf("StatusOf(%v) = %v, %q, %v; want %v, %q, %v", tt.err, code, msg, ok, tt.wantCode, tt.wantMsg, tt.wantOK)
			}
		})
	}
}
