package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// decideRequest100 is a Decide request naming 100 candidates, as the
// end-to-end benchmark's.
func decideRequest100(tb testing.TB) []byte {
	req := &nbapb.DecideRequest{HcpId: "HCP-000042", Limit: 3,
		Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL}}
	for i := range 100 {
		req.Candidates = append(req.Candidates, fmt.Sprintf("a%04d-email", i))
	}
	data, err := proto.Marshal(req)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// The codec's own decoding of DecideRequest gives what protobuf's does,
// or declines and leaves the request to it: whatever the bytes, the
// codec's answer is the stock path's.
func FuzzDecodeDecideRequest(f *testing.F) {
	f.Add(decideRequest100(f))
	for _, m := range []*nbapb.DecideRequest{
		{},
		{HcpId: "HCP-1", Limit: -5, Explain: true, CandidateSet: "first-10"},
		{HcpId: "HCP-1", Candidates: []string{"a", "", "caf\u00e9"}, Context: &nbapb.DecisionContext{
			DecisionTime: timestamppb.New(time.Unix(1e9, 5)), Channels: []nbapb.Channel{1, 2, 3}}},
	} {
		data, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(append(data, data...)) // fields repeated: the last scalar wins, lists and messages merge
	}
	f.Add([]byte{0x0a, 0x02, 0xff, 0xfe})                                           // hcp_id of invalid UTF-8
	f.Add([]byte{0x1a, 0x05, 'a'})                                                  // a candidate cut short
	f.Add([]byte{0x38, 0x01})                                                       // an unknown field
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // limit: a 64-bit varint
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast nbapb.DecideRequest
		if !decodeDecideRequest(mem.BufferSlice{mem.SliceBuffer(data)}, &fast) {
			if !proto.Equal(&fast, &nbapb.DecideRequest{}) {
				t.Fatalf("declined, but left %v", &fast)
			}
			return
		}
		var want nbapb.DecideRequest
		if err := proto.Unmarshal(data, &want); err != nil {
			t.Fatalf("decoded what protobuf refuses (%v): %v", err, &fast)
		}
		if !proto.Equal(&fast, &want) {
			t.Fatalf("decoded %v, protobuf %v", &fast, &want)
		}
		// In pieces, as a stream's frames may come.
		if len(data) > 1 {
			var split nbapb.DecideRequest
			half := len(data) / 2
			if !decodeDecideRequest(mem.BufferSlice{mem.SliceBuffer(data[:half]), mem.SliceBuffer(data[half:])}, &split) ||
				!proto.Equal(&split, &want) {
				t.Fatalf("in two buffers: decoded %v, protobuf %v", &split, &want)
			}
		}
	})
}

// BenchmarkDecodeDecideRequest is the server's decoding of a Decide
// request of 100 candidates.
func BenchmarkDecodeDecideRequest(b *testing.B) {
	data := decideRequest100(b)
	codec := newCodec()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		var req nbapb.DecideRequest
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &req); err != nil || len(req.Candidates) != 100 {
			b.Fatal(err)
		}
	}
}
