package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

// suggestionsCmd lists a territory's suggestions, or with "feedback" first
// records a rep's feedback on one.
func suggestionsCmd(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "feedback" {
		return suggestionsFeedbackCmd(ctx, e, args[1:])
	}
	fs := newFlagSet(e, "suggestions", "[-territory T] [-day YYYY-MM-DD] [-page-size N] [-page-token TOKEN | -all] [-set NAME] [-json]\n"+
		"       arbiterctl suggestions feedback -decision ID -action ID (-done | -dismiss REASON) [-note TEXT]")
	conn := addConnFlags(fs, e)
	var (
		opts   client.SuggestionOptions
		all    bool
		asJSON bool
	)
	fs.StringVar(&opts.Territory, "territory", "", "a `territory` of the caller's token (default: all of them; required without a token)")
	fs.StringVar(&opts.Day, "day", "", "the `day` the suggestions are for, YYYY-MM-DD: today (default) or up to 31 days ahead")
	fs.IntVar(&opts.PageSize, "page-size", 0, "HCPs per page, 1 to 500 (default 100)")
	fs.StringVar(&opts.PageToken, "page-token", "", "start at this page (a previous page's next page `token`)")
	fs.StringVar(&opts.CandidateSet, "set", "", "a candidate set of the catalog to choose from (default: the whole catalog)")
	fs.BoolVar(&all, "all", false, "follow every page to the last")
	fs.BoolVar(&asJSON, "json", false, "print each page as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	first := true
	for {
		page, err := c.ListSuggestions(ctx, opts)
		if err != nil {
			return err
		}
		if asJSON {
			if err := writeJSON(e.stdout, page); err != nil {
				return err
			}
		} else if err := printSuggestions(e, page, first); err != nil {
			return err
		}
		first = false
		if !all || page.NextPageToken == "" {
			if !asJSON && page.NextPageToken != "" {
				fmt.Fprintf(e.stdout, "\nmore: -page-token %s (or -all)\n", page.NextPageToken)
			}
			return nil
		}
		opts.PageToken = page.NextPageToken
	}
}

func printSuggestions(e *env, page *client.SuggestionPage, header bool) error {
	if len(page.Suggestions) == 0 {
		if header {
			fmt.Fprintln(e.stdout, "no suggestion on this page")
		}
		return nil
	}
	if !header {
		fmt.Fprintln(e.stdout)
	}
	t := newTable(e.stdout, "RANK", "PRIORITY", "HCP", "TITLE", "CHANNEL", "EXPIRES", "ACTION", "DECISION", "REASON")
	for _, s := range page.Suggestions {
		t.row(strconv.Itoa(s.Rank), string(s.Priority), s.HCPID, s.Title, fmtName(s.Channel), fmtTime(s.ExpiresAt),
			s.ActionID, s.DecisionID, s.Reason)
	}
	return t.flush()
}

func suggestionsFeedbackCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "suggestions feedback", "-decision ID -action ID (-done | -dismiss not_relevant|already_done|other) [-note TEXT] [-hcp ID] [-at TIME]")
	conn := addConnFlags(fs, e)
	var (
		f      client.Feedback
		asJSON bool
	)
	fs.StringVar(&f.DecisionID, "decision", "", "the suggestion's decision `id` (required)")
	fs.StringVar(&f.ActionID, "action", "", "the suggested action `id` (required)")
	fs.BoolVar(&f.Completed, "done", false, "the rep did it")
	enumVar(fs, &f.Dismissal, "dismiss", arbiter.ParseDismissReason, "the rep dismissed it, for this `reason` (not_relevant holds the action back for the HCP for 30 days)")
	fs.StringVar(&f.Note, "note", "", "the rep's words (at most 256 bytes, no '|')")
	fs.StringVar(&f.HCPID, "hcp", "", "the HCP `id`, checked against the decision's")
	timeVar(fs, &f.OccurredAt, "at", "when the rep did or dismissed it (default: the server's clock)")
	fs.BoolVar(&asJSON, "json", false, "print the answer as JSON")
	if err := parseFlags(fs, args, "decision", "action"); err != nil {
		return err
	}
	if f.Completed == (f.Dismissal != arbiter.DismissUnspecified) {
		return usagef("give either -done or -dismiss REASON; run 'arbiterctl help suggestions feedback'")
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.SuggestionFeedback(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, r)
	}
	what := "completed"
	if !f.Completed {
		what = "dismissed as " + f.Dismissal.String()
	}
	switch {
	case r.Duplicate:
		fmt.Fprintf(e.stdout, "%s for %s was recorded before: nothing changed\n", f.ActionID, r.HCPID)
	default:
		fmt.Fprintf(e.stdout, "%s for %s: %s\n", f.ActionID, r.HCPID, what)
	}
	if !r.SuppressedUntil.IsZero() {
		fmt.Fprintf(e.stdout, "held back for %s until %s\n", r.HCPID, r.SuppressedUntil.Format(time.RFC3339))
	}
	return nil
}
