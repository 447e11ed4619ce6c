package main

// arbiterctl crm import: CRM exports (CSV) into Arbiter, through a mapping
// file that says which column is which field and how the CRM's values
// translate. Three kinds of file:
//
//   - accounts: one profile each (id, specialty, market, territories, ...);
//   - consents: multichannel consent records, each tied to an account by
//     its id (channel, opt type, capture time, content type as the topic,
//     source);
//   - documents: approved documents (MLR): their approval state and dates
//     update the catalog's approvals, by document number or content id, in
//     a definitions set that is then written out or published.
//
// Columns the mapping does not name are never read further: a CRM export's
// names and e-mail addresses stay where they are. Every bad row is reported
// with its file, row and column; an account with any bad row (its own or
// one of its consents) is not imported at all, and each account that is
// goes in one import item: its profile and consents together or not at
// all. -dry-run reads and checks everything and writes nothing.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
	_ "github.com/arbiter-nba/arbiter/celrules" // a definitions set's rules compile with it
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/recipient"
)

// field says where a field comes from: a column (with its values
// translated by Values, when given, and split by Split into a list), or a
// constant Value. In the mapping file a field is a column's name, or an
// object.
type field struct {
	Column   string            `json:"column"`
	Value    string            `json:"value"`
	Values   map[string]string `json:"values"`
	Split    string            `json:"split"`
	Layout   string            `json:"layout"` // a time's layout (Go's); default RFC 3339
	Required bool              `json:"required"`
}

func (f *field) UnmarshalJSON(b []byte) error {
	var col string
	if json.Unmarshal(b, &col) == nil {
		*f = field{Column: col}
		return nil
	}
	type plain field
	return json.Unmarshal(b, (*plain)(f))
}

func (f *field) set() bool { return f.Column != "" || f.Value != "" }

// crmMapping is the mapping file.
type crmMapping struct {
	Accounts struct {
		ID          field `json:"id"`
		Specialty   field `json:"specialty"`
		Market      field `json:"market"`
		Territories field `json:"territories"`
		Segment     field `json:"segment"`
		TimeZone    field `json:"time_zone"`
		Audience    field `json:"audience"`
	} `json:"accounts"`
	Consents struct {
		Account       field `json:"account"`
		Channel       field `json:"channel"`
		Purpose       field `json:"purpose"`
		Status        field `json:"status"`
		CapturedAt    field `json:"captured_at"`
		ExpiresAt     field `json:"expires_at"`
		Topic         field `json:"topic"`
		Source        field `json:"source"`
		CapturedBy    field `json:"captured_by"`
		NoticeVersion field `json:"notice_version"`
		// Complete: the file holds each account's complete consent, so the
		// completeness marker is written (an account without a consent row
		// then has none: deny).
		Complete bool `json:"complete"`
	} `json:"consents"`
	Documents struct {
		ID         field `json:"id"`
		ContentID  field `json:"content_id"`
		Status     field `json:"status"`
		ValidFrom  field `json:"valid_from"`
		ValidUntil field `json:"valid_until"`
		Markets    field `json:"markets"`
	} `json:"documents"`
}

// rowError is one problem, where it was found.
type rowError struct {
	file   string
	row    int // 1 is the header
	column string
	msg    string
}

func (e rowError) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.file, e.row, e.column, e.msg)
}

// csvFile is a CSV export read whole, with its header.
type csvFile struct {
	name   string
	header map[string]int
	rows   [][]string
}

func readCSVFile(path string) (*csvFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM, as spreadsheet exports write
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	all, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%s: empty: want a header row", filepath.Base(path))
	}
	f := &csvFile{name: filepath.Base(path), header: map[string]int{}, rows: all[1:]}
	for i, h := range all[0] {
		f.header[strings.TrimSpace(h)] = i
	}
	return f, nil
}

// checkColumns reports the mapped columns the file lacks.
func (f *csvFile) checkColumns(fields map[string]*field) []rowError {
	var errs []rowError
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if c := fields[n].Column; c != "" {
			if _, ok := f.header[c]; !ok {
				errs = append(errs, rowError{f.name, 1, c, fmt.Sprintf("no such column (mapped to %s)", n)})
			}
		}
	}
	return errs
}

// row reads one data row's fields; i is its index among the data rows.
type row struct {
	f    *csvFile
	i    int
	errs *[]rowError
}

func (r row) line() int { return r.i + 2 }

func (r row) fail(column, format string, args ...any) {
	*r.errs = append(*r.errs, rowError{r.f.name, r.line(), column, fmt.Sprintf(format, args...)})
}

// str is the field's value, translated; "" when the field is not mapped or
// the cell is empty (an error when it is required).
func (r row) str(name string, fd *field) string {
	if !fd.set() {
		return ""
	}
	v := fd.Value
	if fd.Column != "" {
		if j := r.f.header[fd.Column]; j < len(r.f.rows[r.i]) {
			v = strings.TrimSpace(r.f.rows[r.i][j])
		} else {
			v = ""
		}
	}
	if v == "" {
		if fd.Required {
			r.fail(fd.Column, "%s is required", name)
		}
		return ""
	}
	if fd.Values != nil {
		t, ok := fd.Values[v]
		if !ok {
			r.fail(fd.Column, "%q is not a known %s (the mapping knows %s)", v, name, strings.Join(sortedKeys(fd.Values), ", "))
			return ""
		}
		v = t
	}
	return v
}

// list is the field's values: the cell split by Split, each translated.
func (r row) list(name string, fd *field) []string {
	if fd.Split == "" {
		if v := r.str(name, fd); v != "" {
			return []string{v}
		}
		return nil
	}
	v := r.str(name, &field{Column: fd.Column, Value: fd.Value, Required: fd.Required})
	if v == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, fd.Split) {
		if p = strings.TrimSpace(p); p != "" {
			if fd.Values != nil {
				t, ok := fd.Values[p]
				if !ok {
					r.fail(fd.Column, "%q is not a known %s", p, name)
					continue
				}
				p = t
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (r row) time(name string, fd *field) time.Time {
	v := r.str(name, &field{Column: fd.Column, Value: fd.Value, Required: fd.Required})
	if v == "" {
		return time.Time{}
	}
	layout := fd.Layout
	if layout == "" {
		layout = time.RFC3339
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		r.fail(fd.Column, "%q is not a %s time (want the layout %s)", v, name, layout)
		return time.Time{}
	}
	return t.UTC()
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func crmImportCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "crm import", "-mapping veeva.json -accounts accounts.csv [-consents consents.csv] [-documents documents.csv -definitions DIR (-out DIR | -publish)]")
	conn := addConnFlags(fs, e)
	var (
		mappingFile, accountsFile, consentsFile, documentsFile, defsDir, outDir, errorsFile, capturedBy string
		dryRun, publish, allowPartial                                                                   bool
	)
	fs.StringVar(&mappingFile, "mapping", "", "the mapping `file` (JSON): columns to fields, CRM values to Arbiter's (required)")
	fs.StringVar(&accountsFile, "accounts", "", "accounts export (CSV): one profile per row")
	fs.StringVar(&consentsFile, "consents", "", "multichannel consent export (CSV): consent records, by account")
	fs.StringVar(&documentsFile, "documents", "", "approved documents export (CSV): MLR approvals, applied to the catalog of -definitions")
	fs.StringVar(&defsDir, "definitions", "", "the definitions set `directory` whose catalog the documents update")
	fs.StringVar(&outDir, "out", "", "write the updated definitions set to this `directory`")
	fs.BoolVar(&publish, "publish", false, "publish the updated definitions set (the server needs -admin-rpc; the admin role)")
	fs.StringVar(&errorsFile, "errors", "", "write every bad row (file, row, column, problem) to this CSV `file`")
	fs.StringVar(&capturedBy, "captured-by", "crm-import", "who ran the import, recorded with each consent record (a system id)")
	fs.BoolVar(&allowPartial, "allow-partial", false, "write or publish the approvals of the documents' good rows even when others failed")
	fs.BoolVar(&dryRun, "dry-run", false, "read and check everything, show what would change, write nothing")
	if err := parseFlags(fs, args, "mapping"); err != nil {
		return err
	}
	if accountsFile == "" && documentsFile == "" {
		return usagef("give -accounts (with -consents) or -documents, or both")
	}
	if consentsFile != "" && accountsFile == "" {
		return usagef("-consents needs -accounts: consent records belong to the accounts imported with them")
	}
	if documentsFile != "" && (defsDir == "" || (!dryRun && outDir == "" && !publish)) {
		return usagef("-documents needs -definitions DIR, and -out DIR or -publish (or -dry-run)")
	}
	data, err := os.ReadFile(mappingFile)
	if err != nil {
		return err
	}
	var m crmMapping
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%s: %w", mappingFile, err)
	}

	var errs []rowError
	var items []client.ImportItem
	var badAccounts int
	if accountsFile != "" {
		if items, badAccounts, errs, err = readAccounts(&m, accountsFile, consentsFile, capturedBy); err != nil {
			return err
		}
	}
	var defsChanges []string
	var newDefs map[string][]byte
	if documentsFile != "" {
		var derrs []rowError
		newDefs, defsChanges, derrs, err = applyDocuments(&m, documentsFile, defsDir)
		if err != nil {
			return err
		}
		errs = append(errs, derrs...)
		if len(derrs) > 0 && !allowPartial {
			// A withdrawal in a bad row would be lost: the content would
			// stay approved. Nothing of the documents is written.
			newDefs, defsChanges = nil, nil
			errs = append(errs, rowError{filepath.Base(documentsFile), 0, "-", "rows failed: the approvals are not written or published (fix them, or give -allow-partial)"})
		}
	}
	for _, re := range errs {
		fmt.Fprintln(e.stderr, re)
	}
	if errorsFile != "" {
		if err := writeRowErrors(errorsFile, errs); err != nil {
			return err
		}
	}
	for _, c := range defsChanges {
		fmt.Fprintln(e.stdout, c)
	}

	if dryRun {
		fmt.Fprintf(e.stdout, "dry run: %d accounts would be imported, %d left out for bad rows; %d approvals would change; %d problems\n",
			len(items), badAccounts, len(defsChanges), len(errs))
		return nil
	}
	var imported int64
	if len(items) > 0 || publish {
		c, err := conn.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		if len(items) > 0 {
			if imported, err = sendImport(ctx, e, c, items); err != nil {
				return err
			}
		}
		if publish && newDefs != nil {
			p, err := c.PublishDefinitions(ctx, newDefs)
			if err != nil {
				return fmt.Errorf("publish the definitions: %w", err)
			}
			fmt.Fprintf(e.stdout, "published definitions %s (%d replicas confirmed, %d did not)\n", p.Version, len(p.Confirmed), len(p.Unconfirmed))
		}
	}
	if outDir != "" && newDefs != nil {
		if err := writeDefinitions(outDir, newDefs); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote the definitions set to %s (publish it with: arbiter definitions publish %s)\n", outDir, outDir)
	}
	fmt.Fprintf(e.stdout, "imported %d accounts, %d left out for bad rows; %d approvals changed; %d problems\n",
		imported, badAccounts, len(defsChanges), len(errs))
	if len(errs) > 0 {
		return errors.New("some rows were not imported: see the problems above")
	}
	return nil
}

// readAccounts reads the accounts and their consents into import items. An
// account with a bad row is left out whole.
func readAccounts(m *crmMapping, accountsFile, consentsFile, capturedBy string) ([]client.ImportItem, int, []rowError, error) {
	af, err := readCSVFile(accountsFile)
	if err != nil {
		return nil, 0, nil, err
	}
	a := &m.Accounts
	if !a.ID.set() {
		return nil, 0, nil, errors.New("the mapping's accounts need an id")
	}
	a.ID.Required = true
	errs := af.checkColumns(map[string]*field{"id": &a.ID, "specialty": &a.Specialty, "market": &a.Market,
		"territories": &a.Territories, "segment": &a.Segment, "time_zone": &a.TimeZone, "audience": &a.Audience})
	if len(errs) > 0 {
		return nil, 0, errs, nil
	}
	byID := map[string]int{}
	bad := map[string]bool{}
	var items []client.ImportItem
	var lines []int // each item's row in the accounts file
	for i := range af.rows {
		var rerrs []rowError
		r := row{af, i, &rerrs}
		id := r.str("id", &a.ID)
		p := client.Profile{HCPID: id, Specialty: r.str("specialty", &a.Specialty), Market: r.str("market", &a.Market),
			Territories: r.list("territory", &a.Territories), Segment: r.str("segment", &a.Segment),
			TimeZone: r.str("time_zone", &a.TimeZone), Audience: arbiter.HCP}
		if v := r.str("audience", &a.Audience); v != "" {
			aud, ok := arbiter.ParseAudience(v)
			if !ok {
				r.fail(a.Audience.Column, "%q is not an audience (hcp, patient)", v)
			}
			p.Audience = aud
		}
		if j, dup := byID[id]; dup && id != "" {
			r.fail(a.ID.Column, "repeats the account of row %d", j+2)
			bad[id] = true
		}
		if len(rerrs) > 0 {
			errs = append(errs, rerrs...)
			if id != "" {
				bad[id] = true
			}
			continue
		}
		byID[id] = len(items)
		lines = append(lines, r.line())
		items = append(items, client.ImportItem{Profile: p, CapturedBy: capturedBy, ConsentComplete: consentsFile != "" && m.Consents.Complete})
	}
	if consentsFile != "" {
		cf, err := readCSVFile(consentsFile)
		if err != nil {
			return nil, 0, nil, err
		}
		c := &m.Consents
		c.Account.Required, c.Channel.Required, c.Status.Required, c.CapturedAt.Required = true, true, true, true
		cerrs := cf.checkColumns(map[string]*field{"account": &c.Account, "channel": &c.Channel, "purpose": &c.Purpose,
			"status": &c.Status, "captured_at": &c.CapturedAt, "expires_at": &c.ExpiresAt, "topic": &c.Topic,
			"source": &c.Source, "captured_by": &c.CapturedBy, "notice_version": &c.NoticeVersion})
		if len(cerrs) > 0 {
			return nil, 0, append(errs, cerrs...), nil
		}
		for i := range cf.rows {
			var rerrs []rowError
			r := row{cf, i, &rerrs}
			acct := r.str("account", &c.Account)
			rec := client.ConsentRecord{Topic: r.str("topic", &c.Topic), Status: client.ConsentStatus(r.str("status", &c.Status)),
				CapturedAt: r.time("capture", &c.CapturedAt), ExpiresAt: r.time("expiry", &c.ExpiresAt),
				Source: r.str("source", &c.Source), CapturedBy: r.str("captured_by", &c.CapturedBy),
				NoticeVersion: r.str("notice_version", &c.NoticeVersion), Purpose: arbiter.Promotional}
			if ch := r.str("channel", &c.Channel); ch != "" {
				var ok bool
				if rec.Channel, ok = arbiter.ParseChannel(ch); !ok {
					r.fail(c.Channel.Column, "%q is not a channel", ch)
				}
			}
			if pu := r.str("purpose", &c.Purpose); pu != "" {
				var ok bool
				if rec.Purpose, ok = arbiter.ParsePurpose(pu); !ok {
					r.fail(c.Purpose.Column, "%q is not a purpose (promotional, medical, service)", pu)
				}
			}
			switch rec.Status {
			case "", client.ConsentOptIn, client.ConsentOptOut, client.ConsentPending, client.ConsentBarred:
			default:
				r.fail(c.Status.Column, "%q is not a consent status (opt_in, opt_out, pending, barred)", rec.Status)
			}
			j, known := byID[acct]
			switch {
			case acct == "" || len(rerrs) > 0:
			case bad[acct]:
				r.fail(c.Account.Column, "account %s has a bad row: none of its records is imported", acct)
			case !known:
				r.fail(c.Account.Column, "no account %s in %s", acct, af.name)
			}
			if len(rerrs) > 0 {
				errs = append(errs, rerrs...)
				if known {
					bad[acct] = true
				}
				continue
			}
			items[j].Consents = append(items[j].Consents, rec)
		}
	}
	// The server's own checks, here, so that an account it would refuse is
	// left out whole rather than stopping the import stream half-way.
	now := time.Now()
	for i, it := range items {
		if bad[it.Profile.HCPID] {
			continue
		}
		ri := domainItem(it)
		err := ri.ValidateAt(now)
		var inv *arbiter.InvalidError
		if errors.As(err, &inv) {
			for _, v := range inv.Violations {
				errs = append(errs, rowError{af.name, lines[i], columnOf(m, v.Field), v.Field + ": " + v.Description})
			}
			bad[it.Profile.HCPID] = true
		}
	}
	kept := items[:0]
	for _, it := range items {
		if !bad[it.Profile.HCPID] {
			kept = append(kept, it)
		}
	}
	return kept, len(bad), errs, nil
}

// domainItem is an import item as the server checks it.
func domainItem(it client.ImportItem) recipient.ImportItem {
	p := it.Profile
	ri := recipient.ImportItem{Profile: recipient.Profile{HCPID: p.HCPID, Specialty: p.Specialty, Market: p.Market,
		Audience: p.Audience, Segment: p.Segment, TimeZone: p.TimeZone, Territories: p.Territories, Attributes: p.Attributes},
		ConsentComplete: it.ConsentComplete, CapturedBy: it.CapturedBy}
	statuses := map[client.ConsentStatus]consent.Status{client.ConsentOptIn: consent.OptIn, client.ConsentOptOut: consent.OptOut,
		client.ConsentPending: consent.Pending, client.ConsentBarred: consent.Barred}
	for _, r := range it.Consents {
		ri.Consent = append(ri.Consent, consent.Record{Channel: r.Channel, Purpose: r.Purpose, Topic: r.Topic, Address: r.AddressRef,
			Status: statuses[r.Status], CapturedAt: r.CapturedAt, ExpiresAt: r.ExpiresAt, Source: r.Source,
			CapturedBy: r.CapturedBy, NoticeVersion: r.NoticeVersion})
	}
	return ri
}

// columnOf names the mapped column of a violated field ("profile.market"),
// or the field itself when no column maps to it (the row is the account's).
func columnOf(m *crmMapping, fieldPath string) string {
	a, c := &m.Accounts, &m.Consents
	for prefix, f := range map[string]*field{"profile.hcp_id": &a.ID, "profile.specialty": &a.Specialty,
		"profile.market": &a.Market, "profile.territories": &a.Territories, "profile.segment": &a.Segment,
		"profile.time_zone": &a.TimeZone, "profile.audience": &a.Audience} {
		if strings.HasPrefix(fieldPath, prefix) && f.Column != "" {
			return f.Column
		}
	}
	if strings.HasPrefix(fieldPath, "consents[") && c.Account.Column != "" {
		return fieldPath + " (" + filepath.Base(c.Account.Column) + ")"
	}
	return fieldPath
}

// sendImport streams the items, with a progress line, and returns how many
// the server imported.
func sendImport(ctx context.Context, e *env, c *client.Client, items []client.ImportItem) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	im, err := c.Import(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i, it := range items {
		if err := im.Send(it); err != nil {
			cancel()
			_, _ = im.Close()
			return 0, fmt.Errorf("import stopped at account %d of %d (each account written whole or not at all): %w", i+1, len(items), err)
		}
		if (i+1)%500 == 0 || i+1 == len(items) {
			fmt.Fprintf(e.stderr, "\raccounts sent: %d/%d (%.0f/s)", i+1, len(items), float64(i+1)/max(time.Since(start).Seconds(), 1e-3))
		}
	}
	fmt.Fprintln(e.stderr)
	return im.Close()
}

// applyDocuments updates the approvals of the catalog in defsDir from the
// documents export, and returns the new set's files (validated whole) and
// a line per change.
func applyDocuments(m *crmMapping, documentsFile, defsDir string) (map[string][]byte, []string, []rowError, error) {
	files, err := definitions.ReadDir(defsDir)
	if err != nil {
		return nil, nil, nil, err
	}
	df, err := readCSVFile(documentsFile)
	if err != nil {
		return nil, nil, nil, err
	}
	d := &m.Documents
	if !d.ID.set() && !d.ContentID.set() {
		return nil, nil, nil, errors.New("the mapping's documents need an id (the approval's document number) or a content_id")
	}
	d.Status.Required = true
	errs := df.checkColumns(map[string]*field{"id": &d.ID, "content_id": &d.ContentID, "status": &d.Status,
		"valid_from": &d.ValidFrom, "valid_until": &d.ValidUntil, "markets": &d.Markets})
	if len(errs) > 0 {
		return nil, nil, errs, nil
	}
	var cat map[string]any
	if err := json.Unmarshal(files[definitions.CatalogFile], &cat); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", definitions.CatalogFile, err)
	}
	actions, _ := cat["actions"].([]any)
	var changes []string
	for i := range df.rows {
		var rerrs []rowError
		r := row{df, i, &rerrs}
		id, contentID := r.str("id", &d.ID), r.str("content_id", &d.ContentID)
		status := r.str("status", &d.Status)
		from, until := r.time("valid_from", &d.ValidFrom), r.time("valid_until", &d.ValidUntil)
		markets := r.list("market", &d.Markets)
		switch status {
		case "", "approved", "pending", "withdrawn", "rejected":
		default:
			r.fail(d.Status.Column, "%q is not an approval status (approved, pending, withdrawn, rejected)", status)
		}
		if len(rerrs) > 0 {
			errs = append(errs, rerrs...)
			continue
		}
		matched := 0
		for _, a := range actions {
			act, _ := a.(map[string]any)
			ap, _ := act["approval"].(map[string]any)
			if ap == nil || !(id != "" && ap["id"] == id || contentID != "" && act["content_id"] == contentID) {
				continue
			}
			matched++
			before := fmt.Sprintf("%v %v..%v", ap["status"], ap["valid_from"], ap["valid_until"])
			ap["status"] = status
			if id != "" {
				ap["id"] = id
			}
			if !from.IsZero() {
				ap["valid_from"] = from.Format(time.RFC3339)
			}
			if !until.IsZero() {
				ap["valid_until"] = until.Format(time.RFC3339)
			}
			if len(markets) > 0 {
				ap["markets"] = markets
			}
			after := fmt.Sprintf("%v %v..%v", ap["status"], ap["valid_from"], ap["valid_until"])
			if before != after {
				changes = append(changes, fmt.Sprintf("approval of %v: %s -> %s", act["id"], before, after))
			}
		}
		if matched == 0 {
			col := d.ID.Column
			if col == "" {
				col = d.ContentID.Column
			}
			r.fail(col, "no catalog action has this document (id %q, content %q)", id, contentID)
			errs = append(errs, rerrs...)
		}
	}
	out, err := json.MarshalIndent(cat, "", " ")
	if err != nil {
		return nil, nil, nil, err
	}
	files[definitions.CatalogFile] = append(out, '\n')
	if _, err := definitions.Parse(files); err != nil {
		return nil, nil, nil, fmt.Errorf("the updated definitions set is not valid: %w", err)
	}
	return files, changes, errs, nil
}

func writeDefinitions(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeRowErrors(path string, errs []rowError) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"file", "row", "column", "problem"})
	for _, e := range errs {
		_ = w.Write([]string{e.file, fmt.Sprint(e.row), e.column, e.msg})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
