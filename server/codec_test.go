package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

func TestCodecDecodesInvalidUTF8ForValidation(t *testing.T) {
	// ImportProfilesRequest{profile: {hcp_id: "HCP-1", attributes: {"\xff": 1}}, consents: [{source: "a\xfeb"}]}
	var entry []byte
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendBytes(entry, []byte{0xff})
	entry = protowire.AppendTag(entry, 2, protowire.Fixed64Type)
	entry = protowire.AppendFixed64(entry, 0x3ff0000000000000)
	var prof []byte
	prof = protowire.AppendTag(prof, 1, protowire.BytesType)
	prof = protowire.AppendString(prof, "HCP-1")
	prof = protowire.AppendTag(prof, 8, protowire.BytesType)
	prof = protowire.AppendBytes(prof, entry)
	var rec []byte
	rec = protowire.AppendTag(rec, 8, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte{'a', 0xfe, 'b'})
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.BytesType)
	msg = protowire.AppendBytes(msg, prof)
	msg = protowire.AppendTag(msg, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, rec)
	msg = protowire.AppendTag(msg, 3, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 1)

	var req nbapb.ImportProfilesRequest
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, &req); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if req.GetProfile().GetHcpId() != "HCP-1" || !req.GetConsentComplete() {
		t.Errorf("valid fields lost: %v", &req)
	}
	err := checkStrings(&req)
	if err == nil {
		t.Fatal("checkStrings accepted invalid UTF-8")
	}
	got := map[string]bool{}
	for _, v := range err.(*arbiter.InvalidError).Violations {
		got[v.Field] = true
	}
	for _, want := range []string{"profile.attributes", "consents[0].source"} {
		if !got[want] {
			t.Errorf("violations %v lack %q", got, want)
		}
	}

	// Valid messages decode as usual; truncated ones are marked malformed,
	// for the interceptors to answer InvalidArgument.
	var ok nbapb.DecideRequest
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x01, 'x'})}, &ok); err != nil || ok.HcpId != "x" || isMalformed(&ok) {
		t.Errorf("valid message: %v, %q, malformed %v", err, ok.HcpId, isMalformed(&ok))
	}
	var bad nbapb.DecideRequest
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05, 0xff})}, &bad); err != nil || !isMalformed(&bad) {
		t.Errorf("truncated message: error %v, malformed %v; want no error and the malformed mark", err, isMalformed(&bad))
	}
}

// Malformed protobuf of every kind is answered InvalidArgument with a
// message naming the request type, never Internal or the parser's text:
// through the real gRPC server, for a unary call and a stream.
func TestMalformedRequestsAreInvalidArgument(t *testing.T) {
	conn := serveLoopback(t, newServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bodies := map[string][]byte{
		"truncated string":      {0x0a, 0x05, 0xff},
		"bad tag":               {0x00},
		"truncated varint":      {0x10, 0xff},
		"wrong wire type":       {0x0d, 0x01, 0x02, 0x03, 0x04, 0x0a},
		"group start":           {0x0b},
		"length past the end":   {0x1a, 0x7f, 'a'},
		"nested garbage":        {0x22, 0x02, 0x08},
		"field number zero":     {0x02, 0x00},
		"overlong varint":       {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"the marker itself (a)": malformedMarker,
	}
	for name, body := range bodies {
		var out nbapb.DecideResponse
		err := conn.Invoke(ctx, "/nba.v1.DecisionService/Decide", rawMessage(body), &out, grpc.ForceCodecV2(rawCodec{}))
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "nba.v1.DecideRequest") {
			t.Errorf("%s: %v %q, want InvalidArgument naming nba.v1.DecideRequest", name, st.Code(), st.Message())
		}
	}
	// A stream's messages are checked as they are received.
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/nba.v1.DecisionService/DecideBatch",
		grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(rawMessage{0x0a, 0x05, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var item nbapb.DecideBatchResponse
	st := status.Convert(cs.RecvMsg(&item))
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "nba.v1.DecideBatchRequest") {
		t.Errorf("malformed DecideBatch request: %v %q, want InvalidArgument naming nba.v1.DecideBatchRequest", st.Code(), st.Message())
	}
}

// rawMessage is a request body sent as it is.
type rawMessage []byte

// rawCodec sends rawMessage bodies unchanged and decodes replies as
// protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// The store numbers a batch's items from 0: the stream's paths count from
// its first item.
func TestShiftItems(t *testing.T) {
	err := &arbiter.InvalidError{}
	err.Add("items[190].profile.hcp_id", "duplicates items[12]")
	err.Add("items[3].consents[1].source", "is required")
	got := shiftItems(err, 500)
	var inv *arbiter.InvalidError
	if !errors.As(got, &inv) || len(inv.Violations) != 2 ||
		inv.Violations[0].Field != "items[690].profile.hcp_id" || inv.Violations[0].Description != "duplicates items[512]" ||
		inv.Violations[1].Field != "items[503].consents[1].source" {
		t.Errorf("shifted: %+v", got)
	}
	if plain := errors.New("x"); shiftItems(plain, 500) != plain {
		t.Error("a non-validation error was changed")
	}
}

// The handling-time histograms reach past the 5 s deadline: a call that
// takes up to it is not lumped into +Inf with the rest (overload shows).
func TestHandlingBucketsCoverTheDeadline(t *testing.T) {
	if top := decideSecondsBuckets[len(decideSecondsBuckets)-1]; top < 2*5 {
		t.Errorf("the top bucket is %.2f s, want at least twice the 5 s deadline", top)
	}
}
