// Package servertest helps tests that run the arbiter server program in a
// process of its own.
package servertest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// ListenAddr reads the server's JSON log (its stderr) until the line that
// says where it serves ("arbiter serving", with its address), and returns
// that address; it goes on reading in the background, so that the server
// never blocks on its log. It fails after timeout.
func ListenAddr(log io.Reader, timeout time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(log)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "arbiter serving" {
				if _, _, err := net.SplitHostPort(rec.Addr); err == nil {
					select {
					case found <- rec.Addr:
					default:
					}
				}
			}
		}
	}()
	select {
	case a := <-found:
		return a, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("the server did not say where it serves within %s", timeout)
	}
}
