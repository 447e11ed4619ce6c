// Command costsplit says where a call's server CPU goes: it reads two CPU
// profiles of the same arbiter, one taken under Decide and one under Ping
// (the empty call), assigns every sample to one part of the work by the
// functions on its stack, and prints a Markdown table of each part's µs
// per call for both, and the difference.
//
//	costsplit -bin arbiter -decide d.pprof -decide-rate 5200 -ping p.pprof -ping-rate 38000
//
// The rates are the calls per second made while each profile was taken;
// a part's µs per call is its sampled CPU seconds over (rate x the
// profile's duration). Samples are read with `go tool pprof -traces`, so
// the tool needs nothing but Go. bench/cost.sh runs it with BENCH_PROFILE=1.
//
// A sample belongs to the first part, in the order of the table, that
// names a function on its stack: GC's background work first, then the
// decision log, then the state load and so on, down to the transport,
// which is every other frame of the gRPC server and the network, and
// "other" (the scheduler, timers, idle spinning). Allocation is counted
// where it happens, in the part that allocates; garbage collection's
// assists and background marking are "GC".
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// part is one line of the table: the functions whose presence on a
// sample's stack puts the sample in it.
type part struct {
	name string
	re   *regexp.Regexp
}

var parts = []part{
	{"GC (background marking, assists, sweeping)", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|gcAssistAlloc|bgsweep|bgscavenge|gcDrain|markroot|scanobject|gcStart|gcMarkDone|gcMarkTermination)`)},
	{"decision log (receipt encoding, queue, writes)", regexp.MustCompile(`arbiter/server\.\(\*Server\)\.logDecision|arbiter/server\.\(\*receiptLog\)|arbiter/server\.(EncodeReceipt|receiptProto|inputsProto|packSuppressions|indexesOf|stored)|arbiter/redisstore\.\(\*Store\)\.(AppendReceipts|receiptArgs)|arbiter/decision\.(\(\*Receipt\)|NewReceipt|receipt)`)},
	{"state load (Redis round trip, decoding the recipient)", regexp.MustCompile(`arbiter/redisstore\.|github\.com/redis/go-redis`)},
	{"rules, personas, journeys (CEL)", regexp.MustCompile(`arbiter/celrules\.|cel\.dev/|github\.com/google/cel-go`)},
	{"scoring and ranking", regexp.MustCompile(`arbiter/scoring\.`)},
	{"gates (eligibility, consent, MLR, contact policy, journeys)", regexp.MustCompile(`arbiter/decision\.(\(\*?)?[a-zA-Z]*([gG]ate|Memo|contactCheck|journey)|arbiter/(consent|contact)\.`)},
	{"decision, the rest (set-up, candidates, explanation)", regexp.MustCompile(`arbiter/decision\.`)},
	{"response: building and encoding", regexp.MustCompile(`arbiter/server\.decideResponse|arbiter/server\.\(\*[A-Za-z]*\)\.encode|google\.golang\.org/protobuf/.*[mM]arshal|grpc/encoding/proto\.\(\*codecV2\)\.Marshal|arbiter/server\.\(\*?codec\)\.Marshal`)},
	{"request: decoding and validation", regexp.MustCompile(`google\.golang\.org/protobuf/.*[uU]nmarshal|arbiter/server\.\(\*Server\)\.validate|arbiter/server\.decideRequest|codec\)\.Unmarshal`)},
	{"authentication, authorization, interceptors, metrics", regexp.MustCompile(`arbiter/(authn|access)\.|arbiter/server\.[A-Za-z(*)]*([iI]ntercept|[aA]uth|[aA]dmission|[mM]etrics|[rR]ate)|prometheus|go-grpc-middleware`)},
	{"transport (gRPC, HTTP/2, syscalls)", regexp.MustCompile(`google\.golang\.org/grpc|golang\.org/x/net/http2|^net\.|^syscall\.|internal/poll\.|^runtime\.netpoll|^os\.`)},
}

const other = "other (scheduler, timers, idle)"

func main() {
	bin := flag.String("bin", "", "the arbiter binary the profiles are of")
	decide := flag.String("decide", "", "CPU profile under Decide")
	ping := flag.String("ping", "", "CPU profile under Ping")
	decideRate := flag.Float64("decide-rate", 0, "Decide calls per second during its profile")
	pingRate := flag.Float64("ping-rate", 0, "Ping calls per second during its profile")
	flag.Parse()
	if *decide == "" || *ping == "" || *decideRate <= 0 || *pingRate <= 0 {
		fmt.Fprintln(os.Stderr, "usage: costsplit -bin BIN -decide FILE -decide-rate R -ping FILE -ping-rate R")
		os.Exit(2)
	}
	d, err := split(*bin, *decide)
	if err != nil {
		fail(err)
	}
	p, err := split(*bin, *ping)
	if err != nil {
		fail(err)
	}
	dPer := perCall(d, *decideRate)
	pPer := perCall(p, *pingRate)
	fmt.Printf("Where the server's CPU goes (CPU profiles, %s under Decide and %s under Ping; µs per call):\n\n",
		d.duration.Round(time.Second), p.duration.Round(time.Second))
	fmt.Println("| part | Decide | Ping | Decide − Ping |")
	fmt.Println("|---|--:|--:|--:|")
	var dt, pt float64
	for _, name := range names() {
		fmt.Printf("| %s | %.1f | %.1f | %+.1f |\n", name, dPer[name], pPer[name], dPer[name]-pPer[name])
		dt += dPer[name]
		pt += pPer[name]
	}
	fmt.Printf("| **total** | **%.1f** | **%.1f** | **%+.1f** |\n", dt, pt, dt-pt)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "costsplit:", err)
	os.Exit(1)
}

func names() []string {
	out := make([]string, 0, len(parts)+1)
	for _, p := range parts {
		out = append(out, p.name)
	}
	return append(out, other)
}

// profile is a profile's CPU seconds by part, and its duration.
type profile struct {
	seconds  map[string]float64
	duration time.Duration
}

func perCall(p profile, rate float64) map[string]float64 {
	out := map[string]float64{}
	calls := rate * p.duration.Seconds()
	for k, v := range p.seconds {
		out[k] = v / calls * 1e6
	}
	return out
}

// split runs `go tool pprof -traces` on the profile and adds up each
// sample's value under its part.
func split(bin, file string) (profile, error) {
	args := []string{"tool", "pprof", "-traces"}
	if bin != "" {
		args = append(args, bin)
	}
	var out bytes.Buffer
	cmd := exec.Command("go", append(args, file)...)
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return profile{}, fmt.Errorf("go tool pprof -traces %s: %w", file, err)
	}
	return parseTraces(&out)
}

var durationLine = regexp.MustCompile(`^Duration: ([0-9.]+[a-zµ]+)`)

// parseTraces reads pprof's -traces text: a header, then samples separated
// by lines of dashes, each a value and the leaf function on its first
// line and one caller per line after it.
func parseTraces(r io.Reader) (profile, error) {
	p := profile{seconds: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var value float64
	var stack []string
	flush := func() {
		if value > 0 {
			p.seconds[classify(stack)] += value
		}
		value, stack = 0, stack[:0]
	}
	for sc.Scan() {
		line := sc.Text()
		if m := durationLine.FindStringSubmatch(line); m != nil {
			d, err := time.ParseDuration(strings.TrimSuffix(m[1], ","))
			if err != nil {
				return p, fmt.Errorf("duration %q: %w", m[1], err)
			}
			p.duration = d
			continue
		}
		if strings.HasPrefix(line, "-----------+") {
			flush()
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if v, ok := sampleValue(fields[0]); ok && len(fields) >= 2 {
			flush()
			value = v
			stack = append(stack, fields[1])
			continue
		}
		if value > 0 {
			stack = append(stack, fields[0])
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return p, err
	}
	if p.duration <= 0 {
		return p, fmt.Errorf("no Duration line in the profile's header")
	}
	return p, nil
}

// sampleValue parses a sample's CPU time ("10ms", "1.20s").
func sampleValue(s string) (float64, bool) {
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"ms", 1e-3}, {"us", 1e-6}, {"µs", 1e-6}, {"ns", 1e-9}, {"s", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			return v * u.scale, err == nil
		}
	}
	return 0, false
}

// classify names the first part any frame of the stack (leaf first)
// belongs to.
func classify(stack []string) string {
	for _, p := range parts {
		for _, f := range stack {
			if p.re.MatchString(f) {
				return p.name
			}
		}
	}
	return other
}
