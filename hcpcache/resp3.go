package hcpcache

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// A minimal RESP3 reader for the cache's tracking connection (cache.go),
// which go-redis does not give direct access to. It reads exactly what that
// connection receives: replies to HELLO, CLIENT TRACKING and PING, error
// replies and "invalidate" push messages; any other type is read and kept
// generically so that an unexpected frame never desynchronises the stream.

// respValue is one RESP3 frame.
type respValue struct {
	kind  byte // '+', '-', ':', '$', '*', '>', '%', '~', '_', ...
	str   string
	elems []respValue // for aggregates; a map's keys and values alternate
	null  bool
}

// Limits on what the reader accepts: the tracking connection only ever
// receives key names and small replies.
const (
	respMaxBulk  = 1 << 20
	respMaxElems = 1 << 20
	respMaxDepth = 8
)

var errRESP = errors.New("hcpcache: malformed RESP3 frame")

func readRESP(r *bufio.Reader) (respValue, error) { return readRESPDepth(r, 0) }

func readRESPDepth(r *bufio.Reader, depth int) (respValue, error) {
	if depth > respMaxDepth {
		return respValue{}, errRESP
	}
	line, err := readLine(r)
	if err != nil {
		return respValue{}, err
	}
	if len(line) == 0 {
		return respValue{}, errRESP
	}
	v := respValue{kind: line[0]}
	body := string(line[1:])
	switch v.kind {
	case '+', '-', ':', ',', '#', '(':
		v.str = body
	case '_':
		v.null = true
	case '$', '=', '!':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > respMaxBulk {
			return respValue{}, errRESP
		}
		if n == -1 {
			v.null = true
			return v, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return respValue{}, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return respValue{}, errRESP
		}
		v.str = string(buf[:n])
	case '*', '>', '~', '%', '|':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > respMaxElems {
			return respValue{}, errRESP
		}
		if n == -1 {
			v.null = true
			return v, nil
		}
		if v.kind == '%' || v.kind == '|' {
			n *= 2
		}
		v.elems = make([]respValue, n)
		for i := range v.elems {
			if v.elems[i], err = readRESPDepth(r, depth+1); err != nil {
				return respValue{}, err
			}
		}
		if v.kind == '|' {
			// An attribute precedes the value it describes: skip it.
			return readRESPDepth(r, depth)
		}
	default:
		return respValue{}, fmt.Errorf("%w: type %q", errRESP, v.kind)
	}
	return v, nil
}

// readLine reads one CRLF-terminated line without the CRLF.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errRESP
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errRESP
	}
	return line[:len(line)-2], nil
}

// writeCommand writes args as a RESP array of bulk strings.
func writeCommand(w *bufio.Writer, args ...string) error {
	w.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		w.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	return w.Flush()
}
