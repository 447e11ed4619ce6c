// Command httpfloor is the floor of an HTTP/JSON call: a net/http server
// whose one handler answers a small fixed JSON body, for bench/http.sh to
// set HTTP/JSON Decide against (what any Go HTTP server pays per call).
//
//	httpfloor -listen 127.0.0.1:8081
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen address")
	flag.Parse()
	body := []byte(`{"decision_id":"floor","recommendations":[]}`)
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})}
	log.Fatal(srv.ListenAndServe())
}
