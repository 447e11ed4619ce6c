package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter/client"
)

const defaultAddr = "127.0.0.1:50051"

var (
	// errHelp: the user asked for help and got it (exit 0).
	errHelp = flag.ErrHelp
	// errUsageShown: a command-line mistake already reported (exit 2).
	errUsageShown = errors.New("usage shown")
)

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// newFlagSet returns a flag set for "arbiterctl <name>" that reports its
// errors instead of exiting.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: arbiterctl %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and checks that the named flags were given a
// value and that no positional arguments are left.
func parseFlags(fs *flag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsageShown // the flag package has printed the error and usage
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q; run 'arbiterctl help %s'", fs.Arg(0), fs.Name())
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return usagef("-%s is required; run 'arbiterctl help %s'", name, fs.Name())
		}
	}
	return nil
}

// connFlags are the flags every command that calls the server has.
type connFlags struct {
	addr      string
	timeout   time.Duration
	tokenFile string
	token     string // $ARBITER_TOKEN
}

func addConnFlags(fs *flag.FlagSet, e *env) *connFlags {
	c := &connFlags{token: e.getenv("ARBITER_TOKEN")}
	addrVar(fs, e, &c.addr)
	fs.DurationVar(&c.timeout, "timeout", client.DefaultTimeout, "per-call timeout")
	fs.StringVar(&c.tokenFile, "token-file", "", "send the bearer token in this `file` (or set $ARBITER_TOKEN); sent over plaintext only to a loopback address")
	return c
}

// addrVar defines -addr, defaulting to $ARBITER_ADDR, then defaultAddr.
func addrVar(fs *flag.FlagSet, e *env, p *string) {
	addr := e.getenv("ARBITER_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	fs.StringVar(p, "addr", addr, "server `address`; $ARBITER_ADDR sets the default")
}

func (c *connFlags) dial() (*client.Client, error) {
	opts := []client.Option{client.WithTimeout(c.timeout)}
	token := c.token
	if c.tokenFile != "" {
		data, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, err
		}
		token = strings.TrimSpace(string(data))
	}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	return client.Dial(c.addr, opts...)
}

// named is an arbiter enum: a small number with a name.
type named interface {
	~uint8
	String() string
}

// enumValue is a flag holding one arbiter enum, set by name.
type enumValue[E named] struct {
	p     *E
	parse func(string) (E, bool)
}

func enumVar[E named](fs *flag.FlagSet, p *E, name string, parse func(string) (E, bool), usage string) {
	fs.Var(enumValue[E]{p, parse}, name, usage+"; one of: "+strings.Join(enumNames(parse), ", "))
}

func (v enumValue[E]) String() string {
	if v.p == nil || *v.p == 0 {
		return ""
	}
	return (*v.p).String()
}

func (v enumValue[E]) Set(s string) error {
	e, ok := v.parse(s)
	if !ok {
		return fmt.Errorf("unknown value %q", s)
	}
	*v.p = e
	return nil
}

// enumListValue is a comma-separated list of arbiter enums.
type enumListValue[E named] struct {
	p     *[]E
	parse func(string) (E, bool)
}

func enumListVar[E named](fs *flag.FlagSet, p *[]E, name string, parse func(string) (E, bool), usage string) {
	fs.Var(enumListValue[E]{p, parse}, name, usage+"; comma-separated, of: "+strings.Join(enumNames(parse), ", "))
}

func (v enumListValue[E]) String() string {
	if v.p == nil {
		return ""
	}
	names := make([]string, len(*v.p))
	for i, e := range *v.p {
		names[i] = e.String()
	}
	return strings.Join(names, ",")
}

func (v enumListValue[E]) Set(s string) error {
	*v.p = (*v.p)[:0]
	for _, name := range splitList(s) {
		e, ok := v.parse(name)
		if !ok {
			return fmt.Errorf("unknown value %q", name)
		}
		*v.p = append(*v.p, e)
	}
	return nil
}

// enumNames lists the names that parse accepts, in numeric order: the
// names of the enum's valid values.
func enumNames[E named](parse func(string) (E, bool)) []string {
	var names []string
	for i := 1; i <= 255; i++ {
		name := E(i).String()
		if e, ok := parse(name); ok && e == E(i) {
			names = append(names, name)
		}
	}
	return names
}

// statusValue is a flag holding a consent status.
type statusValue struct{ p *client.ConsentStatus }

func (v statusValue) String() string {
	if v.p == nil {
		return ""
	}
	return string(*v.p)
}

func (v statusValue) Set(s string) error {
	st := client.ConsentStatus(s)
	if !st.Valid() {
		return fmt.Errorf("unknown value %q", s)
	}
	*v.p = st
	return nil
}

// timeValue is a flag holding an RFC 3339 time.
type timeValue struct{ p *time.Time }

func timeVar(fs *flag.FlagSet, p *time.Time, name, usage string) {
	fs.Var(timeValue{p}, name, usage+"; an RFC 3339 `time`, e.g. 2026-03-14T09:30:00Z")
}

func (v timeValue) String() string {
	if v.p == nil || v.p.IsZero() {
		return ""
	}
	return v.p.Format(time.RFC3339Nano)
}

func (v timeValue) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return errors.New("not an RFC 3339 time")
	}
	*v.p = t
	return nil
}

// listValue is a comma-separated list of strings.
type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v listValue) Set(s string) error {
	*v.p = splitList(s)
	return nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
