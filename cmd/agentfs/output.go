package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// Every command prints one line for people on success, or with --json one JSON value (see
// docs/cli.md, "Output"). The helpers here keep that shape the same everywhere.

// jsonFlag adds --json to c.
func jsonFlag(c *cobra.Command, p *bool) {
	c.Flags().BoolVar(p, "json", false, "print JSON (see docs/cli.md)")
}

// done reports success: v as JSON with --json, else the one line format.
func done(asJSON bool, v any, format string, a ...any) error {
	if asJSON {
		return printJSON(v)
	}
	_, err := fmt.Printf(format+"\n", a...)
	return err
}
