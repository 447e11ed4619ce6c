// Command requests writes the Decide requests of the end-to-end benchmark:
// -n nba.v1.DecideRequests, each naming the first -candidates actions of
// the catalog the server under test uses (-catalog, the same file as the
// server's -catalog; default the embedded demo catalog), with -limit and a
// rep tool as the caller, for demo HCPs chosen by -keys among HCP-000001 to
// -hcps. The output is ghz's binary data format, length-delimited messages
// (a varint byte count before each), for `ghz --binary-file`: ghz decodes
// the file once at start-up and sends the i-th call the (i mod n)-th
// message, so it spends no CPU on templates or JSON. bench/probe reads the
// same file (-requests).
//
// -keys chooses the HCP of message k (0-based):
//
//   - uniform: round-robin over all HCPs when -n >= -hcps (message k is
//     HCP k mod hcps + 1); with fewer messages than HCPs, a fixed stride
//     coprime with -hcps spreads the n messages evenly over the whole
//     population, each HCP at most once;
//   - hot: 80/20 skew: -hot-share of the messages (default 0.8) go to a hot
//     set of -hot-fraction of the HCPs (default 0.2), the rest to the
//     others, each uniformly at random (seeded, so deterministic); the hot
//     set is spread over the population by the same stride;
//   - zipf: HCP rank r drawn with probability ~ 1/r^1.1 (math/rand/v2 Zipf,
//     seeded), ranks mapped to ids by the stride: a long tail, a very hot
//     head.
//
// With -candidate-set the requests name the catalog's candidate set
// "first-N" (bench/catalog writes one for N = 10, 50, 100 and 1000)
// instead of listing the N ids: the same decision, a request of a few
// bytes.
//
// Requests for 1000 candidates are ~10 KB each; -n bounds the file (and
// ghz's memory) when -hcps is large.
//
//	requests -catalog bench-catalog.json -hcps 10000 -n 10000 -candidates 100 -keys uniform -o decide.bin
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
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
	hcps := fs.Int("hcps", demo.Size, "HCPs in the demo population (HCP-000001 to this)")
	n := fs.Int("n", 0, "messages to write; 0: one per HCP")
	catFile := fs.String("catalog", "", "catalog JSON file the server uses (its -catalog); empty: the embedded demo catalog")
	candidates := fs.Int("candidates", 50, "candidates per request: the first n actions of the catalog")
	limit := fs.Int("limit", 3, "recommendations per request")
	useSet := fs.Bool("candidate-set", false, `name the catalog's candidate set "first-N" instead of listing the N ids`)
	keys := fs.String("keys", "uniform", "HCP choice: uniform, hot (-hot-share of calls on -hot-fraction of HCPs) or zipf")
	hotShare := fs.Float64("hot-share", 0.8, "with -keys hot: share of messages for the hot HCPs")
	hotFraction := fs.Float64("hot-fraction", 0.2, "with -keys hot: share of HCPs that are hot")
	out := fs.String("o", "", "output file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-o is required")
	}
	if *hcps < 1 {
		return fmt.Errorf("-hcps must be at least 1")
	}
	if *n == 0 {
		*n = *hcps
	}
	cat := catalog.Demo()
	if *catFile != "" {
		data, err := os.ReadFile(*catFile)
		if err != nil {
			return err
		}
		if cat, err = catalog.Parse(data); err != nil {
			return fmt.Errorf("%s: %w", *catFile, err)
		}
	}
	if *candidates < 0 || *candidates > len(cat.Actions) {
		return fmt.Errorf("-candidates: the catalog has %d actions, got %d", len(cat.Actions), *candidates)
	}
	ids := make([]string, *candidates)
	for i, a := range cat.Actions[:*candidates] {
		ids[i] = a.ID
	}
	var setName string
	if *useSet {
		setName = fmt.Sprintf("first-%d", *candidates)
		set, ok := cat.Set(setName)
		if !ok || len(set) != *candidates {
			return fmt.Errorf("-candidate-set: the catalog has no candidate set %q of %d actions", setName, *candidates)
		}
		ids = nil
	}
	pick, err := chooser(*keys, *hcps, *n, *hotShare, *hotFraction)
	if err != nil {
		return err
	}

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var buf []byte
	for k := range *n {
		req := &nbapb.DecideRequest{
			HcpId:        demo.HCPID(pick(k)),
			Limit:        int32(*limit),
			Candidates:   ids,
			CandidateSet: setName,
			Context:      &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL},
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

// chooser returns the 1-based HCP number of message k.
func chooser(keys string, hcps, n int, hotShare, hotFraction float64) (func(k int) int, error) {
	// spread maps 0..hcps-1 onto itself, a bijection that scatters
	// neighbours over the whole range (stride coprime with hcps).
	stride := 1
	for _, s := range []int{7919, 104729, 1299709, 15485863} {
		if gcd(s, hcps) == 1 {
			stride = s
			break
		}
	}
	spread := func(j int) int { return int(uint64(j)*uint64(stride)%uint64(hcps)) + 1 }
	r := rand.New(rand.NewPCG(42, 0x6172626974657221))
	switch keys {
	case "uniform":
		if n >= hcps {
			return func(k int) int { return k%hcps + 1 }, nil
		}
		return spread, nil
	case "hot":
		if !(hotShare >= 0 && hotShare <= 1) || !(hotFraction > 0 && hotFraction < 1) {
			return nil, fmt.Errorf("-hot-share must be in [0, 1] and -hot-fraction in (0, 1)")
		}
		hot := max(1, int(float64(hcps)*hotFraction))
		if hot >= hcps {
			return spread, nil
		}
		return func(int) int {
			if r.Float64() < hotShare {
				return spread(r.IntN(hot))
			}
			return spread(hot + r.IntN(hcps-hot))
		}, nil
	case "zipf":
		z := rand.NewZipf(r, 1.1, 1, uint64(hcps-1))
		return func(int) int { return spread(int(z.Uint64())) }, nil
	}
	return nil, fmt.Errorf("-keys: want uniform, hot or zipf, got %q", keys)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
