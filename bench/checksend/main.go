// Command checksend measures CheckSend's latency at concurrency 1, as a
// sender asking before each send sees it: N calls, one after the other,
// each for the next demo HCP, without and with reserve, interleaved in
// rounds. It prints the median and 99th percentile of each, per round and
// over all rounds (bench/checksend.sh runs it against a seeded server).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "server address")
	action := flag.String("action", "email-glucanor-efficacy", "the action checked")
	n := flag.Int("n", 1000, "calls per run")
	rounds := flag.Int("rounds", 10, "rounds; each runs check, then check with reserve, the order alternating")
	hcps := flag.Int("hcps", 10000, "demo HCPs to cycle through")
	flag.Parse()
	c, err := client.Dial(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	ctx := context.Background()
	next := 0
	run := func(reserve bool, round int) []time.Duration {
		lat := make([]time.Duration, 0, *n)
		for i := range *n {
			id := demo.HCPID(1 + next%*hcps)
			next++
			sc := client.SendCheck{HCPID: id, ActionID: *action, Reserve: reserve}
			if reserve {
				sc.IdempotencyKey = fmt.Sprintf("bench-%d-%d-%d", os.Getpid(), round, i)
			}
			t0 := time.Now()
			if _, err := c.CheckSend(ctx, sc); err != nil {
				fmt.Fprintln(os.Stderr, id, err)
				os.Exit(1)
			}
			lat = append(lat, time.Since(t0))
		}
		return lat
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(p*float64(len(s)-1))]
	}
	run(false, -1) // warm up
	var all [2][]time.Duration
	fmt.Printf("| round | CheckSend p50 | p99 | CheckSend reserve p50 | p99 |\n|---|---|---|---|---|\n")
	for r := range *rounds {
		var got [2][]time.Duration
		for k := range 2 {
			reserve := (k+r)%2 == 1
			i := 0
			if reserve {
				i = 1
			}
			got[i] = run(reserve, r)
			all[i] = append(all[i], got[i]...)
		}
		fmt.Printf("| %d | %v | %v | %v | %v |\n", r+1, pct(got[0], .5).Round(time.Microsecond), pct(got[0], .99).Round(time.Microsecond),
			pct(got[1], .5).Round(time.Microsecond), pct(got[1], .99).Round(time.Microsecond))
	}
	fmt.Printf("| all | %v | %v | %v | %v |\n", pct(all[0], .5).Round(time.Microsecond), pct(all[0], .99).Round(time.Microsecond),
		pct(all[1], .5).Round(time.Microsecond), pct(all[1], .99).Round(time.Microsecond))
}
