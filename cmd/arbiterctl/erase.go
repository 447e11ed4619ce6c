package main

import (
	"context"
	"fmt"
)

// eraseCmd erases a recipient (GDPR Article 17).
func eraseCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "erase", "-recipient ID -yes")
	conn := addConnFlags(fs, e)
	var id string
	var yes bool
	fs.StringVar(&id, "recipient", "", "the recipient `id` to erase (required)")
	fs.BoolVar(&yes, "yes", false, "confirm: the erasure cannot be undone")
	if err := parseFlags(fs, args, "recipient"); err != nil {
		return err
	}
	if !yes {
		return usagef("erasing %s cannot be undone: give -yes", id)
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.EraseRecipient(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s erased: %d keys and %d decision receipts deleted, left %d journeys; kept as proof: %d consent ledger entries (minimised) and %d withdrawals in force\n",
		id, r.GetKeysDeleted(), r.GetReceiptsDeleted(), r.GetJourneysLeft(), r.GetLedgerEntriesKept(), r.GetWithdrawalsKept())
	return nil
}
