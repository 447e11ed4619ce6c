// Command faults is Arbiter's fault suite: real processes (redis-server
// with AOF, the arbiter binary, a delaying TCP proxy between them) under a
// mixed load of decisions, consent changes and events, through the faults
// an operator meets:
//
//   - Redis frozen (SIGSTOP), killed (SIGKILL) and restarted, and stopped
//     (SIGTERM) and restarted;
//   - a slow Redis (every reply delayed by the proxy);
//   - the server terminated (SIGTERM) and killed (SIGKILL) under load, and
//     terminated while Redis is frozen;
//   - bad input on every RPC that takes a recipient's data;
//   - overload at 3x capacity, open loop, with the server and Redis on one
//     CPU and the load generator on the other (taskset).
//
// It prints a report (and writes it with -out): load held, faults
// survived, bad inputs tried, acknowledged writes lost, consent
// violations, and the figures of the drain and the overload. It exits
// non-zero when an acknowledged write is lost, consent is violated, a call
// in flight at SIGTERM fails, a bad input is answered Internal or Unknown,
// or the server does not exit within its grace. Timings are reported, not
// asserted.
//
//	go run ./cmd/faults            # the full suite (about 4 minutes)
//	go run ./cmd/faults -short     # the form CI runs (about 1.5 minutes)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
)

// population is the number of demo recipients seeded.
const population = 2000

const (
	drain = 2 * time.Second
	grace = 5 * time.Second
)

var serverArgs *string

func main() {
	short := flag.Bool("short", false, "shorter phases and fewer bad inputs (what CI runs)")
	out := flag.String("out", "", "also write the report to this file")
	overloadOnly := flag.Bool("overload-only", false, "run only the overload measurement")
	serverArgs = flag.String("server-args", "", "more flags for the server, e.g. \"-max-in-flight 16\"")
	pin := flag.Bool("pin", true, "pin the server and Redis to CPU 0 and this suite to CPU 1 (taskset), when there are two CPUs")
	flag.Parse()
	if err := pinSelf(*pin); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(2)
	}
	rep := &report{}
	err := run(*short, *overloadOnly, os.Getenv("FAULTS_PINNED") == "1", rep)
	text := rep.String()
	fmt.Print(text)
	if *out != "" {
		_ = os.WriteFile(*out, []byte(text), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: FAILED:", err)
		os.Exit(1)
	}
	if len(rep.failures) > 0 {
		fmt.Fprintln(os.Stderr, "faults: FAILED:", strings.Join(rep.failures, "; "))
		os.Exit(1)
	}
}

// pinSelf runs this program again on CPU 1 under taskset, once.
func pinSelf(pin bool) error {
	if !pin || os.Getenv("FAULTS_PINNED") != "" || runtime.NumCPU() < 2 {
		return nil
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		os.Setenv("FAULTS_PINNED", "0")
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("taskset", append([]string{"-c", "1", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), "FAULTS_PINNED=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		return err
	}
	os.Exit(0)
	return nil
}

func run(short, overloadOnly, pinned bool, rep *report) error {
	phase := 10 * time.Second
	badInputs := 20000
	overloadFor := 10 * time.Second
	if short {
		phase, badInputs, overloadFor = 3*time.Second, 3000, 4*time.Second
	}
	cpus := ""
	if pinned {
		cpus = "0"
	}
	rep.pinned = pinned
	work, err := os.MkdirTemp("", "arbiter-faults-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	bin := filepath.Join(work, "arbiter")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/arbiter").CombinedOutput(); err != nil {
		return fmt.Errorf("build arbiter (run from the repository's root): %v\n%s", err, out)
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server is not installed (apt-get install redis-server)")
	}
	rdb, err := newRedis(redisBin, work, cpus)
	if err != nil {
		return err
	}
	defer rdb.stop()
	px, err := newProxy(rdb.addr())
	if err != nil {
		return err
	}
	defer px.close()
	if out, err := exec.Command(bin, "seed", "-demo-size", fmt.Sprint(population), "-redis-addr", rdb.addr(),
		"-log-level", "warn").CombinedOutput(); err != nil {
		return fmt.Errorf("seed: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(work, "arbiter.log"))
	if err != nil {
		return err
	}
	mport, err := freePort()
	if err != nil {
		return err
	}
	srv := &serverProc{bin: bin, listen: fmt.Sprintf("127.0.0.1:%d", port), cpus: cpus, log: logFile,
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), args: []string{
			"-metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport),
			"-redis-addr", px.addr(), "-catalog", "catalog/demo_catalog.json", "-model", "scoring/demo_model.json",
			"-consent-policy", "consent/policy.json", "-contact-policy", "contact/demo_policy.json",
			"-durability", "refuse", "-shutdown-drain", drain.String(), "-shutdown-grace", grace.String()}}
	srv.args = append(srv.args, strings.Fields(*serverArgs)...)
	if err := srv.start(); err != nil {
		return fmt.Errorf("%w (log: %s)", err, tail(logFile.Name()))
	}
	defer srv.stop()

	c, err := client.Dial(srv.listen, client.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()

	if overloadOnly {
		if err := floodEffect(srv.listen, overloadFor/2, rep); err != nil {
			return err
		}
		return overload(srv, overloadFor, rep)
	}
	l := &load{c: c, state: map[string]*toggleState{}}
	for i := 1; i <= 20; i++ {
		hcp := demo.HCPID(i)
		l.withdrawn = append(l.withdrawn, hcp)
		for _, ch := range arbiter.Channels() {
			if _, err := c.StopAllContact(ctx, hcp, client.ChannelChange{Channel: ch, CapturedAt: time.Now().UTC(),
				Source: "fault-suite"}); err != nil {
				return fmt.Errorf("withdraw consent: %w", err)
			}
		}
	}
	for i := 21; i <= 80; i++ {
		l.toggled = append(l.toggled, demo.HCPID(i))
		l.state[demo.HCPID(i)] = &toggleState{}
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	workers := l.run(loadCtx, 6, 2, 2)
	faults := []fault{
		{name: "steady load", do: func() error { time.Sleep(phase); return nil }},
		{name: "Redis frozen (SIGSTOP) for 3 s", do: func() error {
			if err := rdb.signal(syscall.SIGSTOP); err != nil {
				return err
			}
			time.Sleep(3 * time.Second) // the fault's length
			return rdb.signal(syscall.SIGCONT)
		}},
		{name: "Redis killed (SIGKILL), restarted from its AOF", do: func() error {
			if err := rdb.kill(syscall.SIGKILL); err != nil {
				return err
			}
			time.Sleep(time.Second) // down for a second
			return rdb.start()
		}},
		{name: "Redis stopped (SIGTERM), restarted", do: func() error {
			if err := rdb.kill(syscall.SIGTERM); err != nil {
				return err
			}
			return rdb.start()
		}},
		{name: "slow Redis: every reply 20 ms late", do: func() error {
			px.setDelay(20 * time.Millisecond)
			time.Sleep(phase)
			px.setDelay(0)
			return nil
		}},
		{name: "server terminated (SIGTERM) under load, restarted", do: func() error {
			return terminate(srv, rep, l, false, rdb)
		}},
		{name: "server killed (SIGKILL) under load, restarted", do: func() error {
			if err := srv.cmd.Process.Kill(); err != nil {
				return err
			}
			if _, err := srv.waitExit(10 * time.Second); err != nil {
				return err
			}
			return srv.start()
		}},
		{name: "server terminated (SIGTERM) with Redis frozen, restarted", do: func() error {
			return terminate(srv, rep, l, true, rdb)
		}},
	}
	for _, f := range faults {
		okBefore, errBefore := l.decisions.Load(), l.decideErrs.Load()+l.writeErrs.Load()
		t0 := time.Now()
		if err := f.do(); err != nil {
			stopLoad()
			workers.Wait()
			return fmt.Errorf("%s: %w", f.name, err)
		}
		recovered, rerr := waitRecovered(l, time.Now(), 15*time.Second)
		if rerr != nil {
			rep.failures = append(rep.failures, f.name+": "+rerr.Error())
		}
		// A moment of load after each fault, so that the next starts from service.
		time.Sleep(phase / 3)
		rep.phases = append(rep.phases, phaseResult{name: f.name, took: time.Since(t0),
			decisions: l.decisions.Load() - okBefore, errors: l.decideErrs.Load() + l.writeErrs.Load() - errBefore,
			recovery: recovered})
	}
	stopLoad()
	workers.Wait()

	rep.decisions, rep.writes = l.decisions.Load(), l.writes.Load()
	rep.errCodes = l.codeSummary()
	rep.violations = l.violations.Load()
	rep.violationSamples = l.violationSamples
	if rep.violations > 0 {
		rep.failures = append(rep.failures, fmt.Sprintf("%d consent violations", rep.violations))
	}
	verifyCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rep.ackedEvents, rep.ackedEntries = len(l.ackedEvents), len(l.ackedEntries)
	rep.lostEvents, rep.lostEntries, err = l.lost(verifyCtx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if rep.lostEvents+rep.lostEntries > 0 {
		rep.failures = append(rep.failures, fmt.Sprintf("%d acknowledged events and %d acknowledged consent changes lost",
			rep.lostEvents, rep.lostEntries))
	}
	if rep.wrongConsent, err = l.finalConsent(verifyCtx); err != nil {
		return fmt.Errorf("verify consent: %w", err)
	}
	if rep.wrongConsent > 0 {
		rep.failures = append(rep.failures, fmt.Sprintf("%d recipients' consent is not their last acknowledged change", rep.wrongConsent))
	}

	if err := badInput(verifyCtx, srv.listen, badInputs, rep); err != nil {
		return fmt.Errorf("bad input: %w", err)
	}
	if err := floodEffect(srv.listen, overloadFor/2, rep); err != nil {
		return fmt.Errorf("rapid reset: %w", err)
	}
	if err := overload(srv, overloadFor, rep); err != nil {
		return fmt.Errorf("overload: %w", err)
	}
	return nil
}

type fault struct {
	name string
	do   func() error
}

// waitRecovered waits for a decision that succeeds after since, and says
// how long that took.
func waitRecovered(l *load, since time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := since.Add(timeout)
	for time.Now().Before(deadline) {
		if ok := l.lastOK.Load(); ok > since.UnixNano() {
			return time.Duration(ok - since.UnixNano()), nil
		}
		time.Sleep(5 * time.Millisecond) // a poll of the load's books
	}
	return timeout, fmt.Errorf("no decision succeeded within %s of the fault's end", timeout)
}

// terminate sends SIGTERM under load (with Redis frozen if freeze) and
// watches readiness through the drain: calls in flight at the signal must
// all succeed (Redis running), and the process must exit within drain plus
// grace. The server is started again.
func terminate(srv *serverProc, rep *report, l *load, freeze bool, rdb *redisProc) error {
	conn, err := grpc.NewClient(srv.listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	// In flight: calls that start before the signal and end after it.
	probe := probeInFlight(srv.listen, 8)
	if freeze {
		if err := rdb.signal(syscall.SIGSTOP); err != nil {
			return err
		}
	}
	time.Sleep(200 * time.Millisecond) // let the probes' calls be in flight
	sent := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	// Readiness through the drain.
	var ready, notServing, checks int // SERVING after the first NOT_SERVING, NOT_SERVING
	for time.Since(sent) < drain-200*time.Millisecond {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "nba.v1.DecisionService"})
		cancel()
		checks++
		switch {
		case err == nil && r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING:
			notServing++
		case err == nil && notServing > 0:
			ready++ // back to SERVING in the drain (before the first NOT_SERVING, the signal may not have arrived)
		}
		time.Sleep(50 * time.Millisecond) // a load balancer's poll interval
	}
	exit, err := srv.waitExit(drain + grace + 5*time.Second)
	exit += time.Since(sent) - exit
	failed, total := probe(sent)
	if freeze {
		if err := rdb.signal(syscall.SIGCONT); err != nil {
			return err
		}
	}
	d := drainResult{frozen: freeze, exit: exit, checks: checks, notServing: notServing, inFlight: total, inFlightFailed: failed}
	rep.drains = append(rep.drains, d)
	if err != nil {
		rep.failures = append(rep.failures, fmt.Sprintf("SIGTERM (Redis frozen: %v): %v", freeze, err))
		srv.stop()
	} else if exit > drain+grace+time.Second {
		rep.failures = append(rep.failures, fmt.Sprintf("SIGTERM (Redis frozen: %v): exited after %s, past drain+grace", freeze, exit.Round(time.Millisecond)))
	}
	if ready > 0 || notServing == 0 {
		rep.failures = append(rep.failures, fmt.Sprintf("readiness in the drain: NOT_SERVING %d times, then SERVING %d times", notServing, ready))
	}
	if !freeze && failed > 0 {
		rep.failures = append(rep.failures, fmt.Sprintf("%d of %d calls in flight at SIGTERM failed", failed, total))
	}
	return srv.start()
}
