package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// The transport's tap refuses a call before its message is read only once
// every slot is taken and calls already wait for one; health checks pass.
func TestTapAdmissionRefusesOnlyWithABacklog(t *testing.T) {
	s := &Server{}
	WithAdmission(8, 5*time.Millisecond)(s)
	decide := &tap.Info{FullMethodName: "/nba.v1.DecisionService/Decide"}
	health := &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"}
	tapErr := func(info *tap.Info) error {
		_, err := s.TapAdmission(context.Background(), info)
		return err
	}

	for range 7 {
		s.admission <- struct{}{}
	}
	if err := tapErr(decide); err != nil {
		t.Fatalf("a free slot left: refused with %v", err)
	}
	s.admission <- struct{}{} // all 8 taken
	if err := tapErr(decide); err != nil {
		t.Fatalf("all slots taken but no call waits: refused with %v (the interceptor's short wait should decide)", err)
	}
	s.waiting.Add(1)
	if err := tapErr(decide); err != nil {
		t.Fatalf("one call waits: refused with %v", err)
	}
	s.waiting.Add(1) // a quarter of the slots wait
	err := tapErr(decide)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("full with a backlog: got %v, want ResourceExhausted", err)
	}
	if err := tapErr(health); err != nil {
		t.Fatalf("a health check was refused: %v", err)
	}
	<-s.admission
	if err := tapErr(decide); err != nil {
		t.Fatalf("a slot freed: refused with %v", err)
	}
}
