// Command requests writes the Decide requests of the end-to-end benchmark:
// one nba.v1.DecideRequest per demo HCP (HCP-000001 upwards), each naming
// the first -candidates actions of the demo catalog, with -limit and a rep
// tool as the caller. The output is ghz's binary data format, length-
// delimited messages (a varint byte count before each), for
// `ghz --binary --data-file`: ghz decodes the file once at start-up and
// sends the i-th call the (i mod n)-th message, so a run walks the whole
// population round-robin and spends no CPU on templates or JSON.
//
//	requests -hcps 10000 -candidates 50 -limit 3 -o decide-requests.bin
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "requests:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("requests", flag.ContinueOnError)
	hcps := fs.Int("hcps", demo.Size, "HCPs in the demo population: one request each")
	candidates := fs.Int("candidates", 50, "candidates per request: the first n actions of the demo catalog")
	limit := fs.Int("limit", 3, "recommendations per request")
	out := fs.String("o", "", "output file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-o is required")
	}
	actions := catalog.Demo().Actions
	if *candidates < 0 || *candidates > len(actions) {
		return fmt.Errorf("-candidates: the demo catalog has %d actions, got %d", len(actions), *candidates)
	}
	ids := make([]string, *candidates)
	for i, a := range actions[:*candidates] {
		ids[i] = a.ID
	}

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var buf []byte
	for i := 1; i <= *hcps; i++ {
		req := &nbapb.DecideRequest{
			HcpId:      demo.HCPID(i),
			Limit:      int32(*limit),
			Candidates: ids,
			Context:    &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL},
		}
		msg, err := proto.Marshal(req)
		if err != nil {
			f.Close()
			return err
		}
		buf = protowire.AppendVarint(buf[:0], uint64(len(msg)))
		buf = append(buf, msg...)
		if _, err := w.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
