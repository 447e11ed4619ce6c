// Command arbiterctl talks to an Arbiter server from the shell: ask for a
// decision, report an outcome, read and change consent and profiles, import
// a CRM feed, and write the demo population as a feed.
//
// It uses the Go client (package client) and nothing server-side, except
// that demo-data reads the demo generator. Exit status: 0 on success, 1 when
// a call or a file failed, 2 for a command-line mistake.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
	})
	stop()
	os.Exit(code)
}

// env is what a command may touch of the process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is a subcommand, or a group of them (consent, profile).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
	subs    []command // a group's commands; run is nil
}

var commands = []command{
	{name: "decide", summary: "rank the next best actions for one HCP", run: decideCmd},
	{name: "whynot", summary: "every reason an action may not go to a recipient now (or at a time ahead), and when each clears", run: whyNotCmd},
	{name: "batch", summary: "decide for a list of HCPs (DecideBatch), e.g. before a send", run: batchCmd},
	{name: "suggestions", summary: "a territory's suggestions for a rep (title, reason, priority, expiry; each a decision); 'suggestions feedback' records done or dismissed", run: suggestionsCmd},
	{name: "event", summary: "report one outcome (sent, opened, attended...)", run: eventCmd},
	{name: "events", summary: "outcomes in bulk", subs: []command{
		{name: "import", summary: "send a CSV or JSON Lines log of sends, deliveries, opens and clicks in batches (RecordEvents), with progress and a report of rejected rows", run: eventsImportCmd},
	}},
	{name: "campaign", summary: "pre-send checks for a campaign list", subs: []command{
		{name: "check", summary: "check (and with -reserve book) every recipient of a CSV or JSON Lines list", run: campaignCheckCmd},
	}},
	{name: "journey", summary: "where recipients are in journeys, who is due, and operators' moves", subs: []command{
		{name: "progress", summary: "show a recipient's progress in every journey", run: journeyProgressCmd},
		{name: "due", summary: "list (CSV) the members of a journey due for a step", run: journeyDueCmd},
		{name: "move", summary: "move a recipient to a step of a journey, or out of it", run: journeyMoveCmd},
		{name: "pause", summary: "pause a journey for everyone", run: journeyPauseCmd(true)},
		{name: "resume", summary: "resume a paused journey", run: journeyPauseCmd(false)},
		{name: "stats", summary: "a journey's KPIs: completion, drop-off per step, conversion, engagement after field visits", run: journeyStatsCmd},
	}},
	{name: "decisions", summary: "the decision log: read, list, replay and export decision receipts", subs: []command{
		{name: "get", summary: "show a decision's receipt and what allowed each recommended action", run: decisionsGetCmd},
		{name: "list", summary: "list a recipient's decisions and checks in a time range", run: decisionsListCmd},
		{name: "replay", summary: "recompute a decision from its receipt and say whether it is identical", run: decisionsReplayCmd},
		{name: "export", summary: "write every receipt of a time range as JSON Lines, with progress; -follow keeps going", run: decisionsExportCmd},
	}},
	{name: "audit", summary: "compliance inquiries", subs: []command{
		{name: "why", summary: "every decision and check for a recipient on a day, with the consent and approval that allowed each", run: auditWhyCmd},
		{name: "verify", summary: "verify the consent ledgers' chains (and against a checkpoint, their length); names each tampered entry", run: auditVerifyCmd},
		{name: "checkpoint", summary: "write a checkpoint of the consent ledgers' chains, to keep outside the store", run: auditCheckpointCmd},
	}},
	{name: "consent", summary: "set, get or page through an HCP's consent", subs: []command{
		{name: "set", summary: "record one consent change", run: consentSetCmd},
		{name: "get", summary: "show an HCP's current consent", run: consentGetCmd},
		{name: "history", summary: "page through an HCP's consent ledger", run: consentHistoryCmd},
		{name: "export", summary: "write every ledger entry recorded since a time (JSON Lines), to keep outside the store", run: consentExportCmd},
		{name: "reapply", summary: "after a restore from an older backup, write again the exported entries the ledger lacks", run: consentReapplyCmd},
	}},
	{name: "profile", summary: "get or upsert an HCP's profile", subs: []command{
		{name: "get", summary: "print an HCP's profile and counters as JSON", run: profileGetCmd},
		{name: "upsert", summary: "create or replace a profile from a JSON file", run: profileUpsertCmd},
	}},
	{name: "erase", summary: "erase a recipient (GDPR Art. 17), keeping the minimal proof of their withdrawals", run: eraseCmd},
	{name: "import", summary: "stream a JSON Lines feed of HCPs to the server", run: importCmd},
	{name: "crm", summary: "CRM exports (CSV) into Arbiter, through a mapping file", subs: []command{
		{name: "import", summary: "accounts, multichannel consent and approved documents (CSV) into profiles, consent records and MLR approvals; -dry-run, a report of bad rows", run: crmImportCmd},
	}},
	{name: "demo-data", summary: "write the demo population as a JSON Lines feed", run: demoDataCmd},
	{name: "health", summary: "ask the server's gRPC health service; exit 0 only when SERVING (a container or Kubernetes probe)", run: healthCmd},
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr, "", commands)
		return 2
	}
	if isHelp(args[0]) {
		// "help consent set" is "consent set -h", with the help on stdout.
		help := *e
		help.stderr = e.stdout
		e, args = &help, append(args[1:], "-h")
	}
	return dispatch(ctx, e, "", commands, args)
}

// dispatch runs the command that args name among cs, within the group
// called prefix ("" for the top level).
func dispatch(ctx context.Context, e *env, prefix string, cs []command, args []string) int {
	if len(args) == 0 || isHelp(args[0]) {
		if len(args) == 0 {
			usage(e.stderr, prefix, cs)
			return 2
		}
		usage(e.stdout, prefix, cs)
		return 0
	}
	for _, c := range cs {
		if c.name != args[0] {
			continue
		}
		name := strings.TrimSpace(prefix + " " + c.name)
		if c.subs != nil {
			return dispatch(ctx, e, name, c.subs, args[1:])
		}
		return exitStatus(e.stderr, name, c.run(ctx, e, args[1:]))
	}
	fmt.Fprintf(e.stderr, "arbiterctl: unknown command %q\n\n", strings.TrimSpace(prefix+" "+args[0]))
	usage(e.stderr, prefix, cs)
	return 2
}

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func usage(w io.Writer, prefix string, cs []command) {
	group := ""
	if prefix != "" {
		group = prefix + " "
	}
	fmt.Fprintf(w, "usage: arbiterctl %s<command> [flags]\n\ncommands:\n", group)
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'arbiterctl help %s<command>' for its flags.\n", group)
	if prefix == "" {
		fmt.Fprint(w, "The server address is -addr, or $ARBITER_ADDR, or "+defaultAddr+".\n")
	}
}

// exitStatus reports err, if any, and returns the exit status for it.
func exitStatus(w io.Writer, name string, err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsageShown):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(w, "arbiterctl %s: %s\n", name, ue.msg)
		return 2
	}
	printError(w, name, err)
	return 1
}
