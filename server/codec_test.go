package server

import (
	"testing"

	"google.golang.org/grpc/mem"
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

	// Valid messages decode as usual; truncated ones still fail.
	var ok nbapb.DecideRequest
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x01, 'x'})}, &ok); err != nil || ok.HcpId != "x" {
		t.Errorf("valid message: %v, %q", err, ok.HcpId)
	}
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05, 0xff})}, &ok); err == nil {
		t.Error("truncated message decoded without error")
	}
}
