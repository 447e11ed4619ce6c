package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arbiter-nba/arbiter/client"
)

// printError reports a failed command: the gRPC code and message and the
// field violations of a call the server refused, or the text of a local
// error.
func printError(w io.Writer, name string, err error) {
	code, msg, ok := client.StatusOf(err)
	if !ok {
		fmt.Fprintf(w, "arbiterctl %s: %v\n", name, err)
		return
	}
	violations := client.FieldViolations(err)
	fmt.Fprintf(w, "arbiterctl %s: %s: %s\n", name, code, withoutViolations(msg, violations))
	for _, field := range slices.Sorted(maps.Keys(violations)) {
		fmt.Fprintf(w, "  %s: %s\n", field, violations[field])
	}
}

// withoutViolations cuts from msg the list of violations that the server
// usually restates in it ("invalid argument: limit: must be ...; hcp_id:
// ..."), since they are printed one per line below it. A message that does
// not restate them is kept whole.
func withoutViolations(msg string, violations map[string]string) string {
	cut := len(msg)
	for field := range violations {
		if i := strings.Index(msg, field+": "); i >= 0 {
			cut = min(cut, i)
		}
	}
	if short := strings.TrimRight(msg[:cut], ":; "); short != "" {
		return short
	}
	return msg
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; cells that are empty show as "-".
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fmtTime formats t in RFC 3339, or "" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// fmtName is an enum's name, or "" for its zero value.
func fmtName[E named](e E) string {
	if e == 0 {
		return ""
	}
	return e.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
