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
	fmt.Fprintf(w, "arbiterctl %s: %s: %s\n", name, code, msg)
	violations := client.FieldViolations(err)
	for _, field := range slices.Sorted(maps.Keys(violations)) {
		fmt.Fprintf(w, "  %s: %s\n", field, violations[field])
	}
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
