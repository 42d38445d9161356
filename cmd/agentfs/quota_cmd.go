package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
)

// parseSize reads a byte count: a number with an optional K, M, G or T suffix (powers of
// 1024; a trailing "iB" or "B" is accepted: 10M = 10MiB = 10485760).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional K, M, G or T suffix, e.g. 10M", s)
	}
	return v * mult, nil
}

func branchQuotaCmd() *cobra.Command {
	var bytes string
	var inodes int64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "quota BRANCH [--bytes SIZE] [--inodes N] [--json]",
		Short: "Limit what a branch holds beyond what it shares (0 removes a limit); without flags, show it",
		Args:  nargs(1, "BRANCH"),
		RunE: func(c *cobra.Command, args []string) error {
			var q api.QuotaRequest
			if c.Flags().Changed("bytes") {
				b, err := parseSize(bytes)
				if err != nil {
					return usageError{err}
				}
				q.Bytes = &b
			}
			if c.Flags().Changed("inodes") {
				if inodes < 0 {
					return usageError{fmt.Errorf("--inodes %d: want a count, 0 for no limit", inodes)}
				}
				q.Inodes = &inodes
			}
			return run(func(ctx context.Context, s api.Service) error {
				b, err := s.SetQuota(ctx, args[0], q)
				if err != nil {
					return err
				}
				return done(asJSON, b, "%s: %s", b.Name, quotaText(b))
			})
		},
	}
	cmd.Flags().StringVar(&bytes, "bytes", "", "exclusive bytes the branch may hold, e.g. 10M, 2G (0: no limit)")
	cmd.Flags().Int64Var(&inodes, "inodes", 0, "inodes the branch may create beyond its fork point (0: no limit)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// quotaText describes usage against the quota, e.g. "3.2 MiB of 10.0 MiB, 12 of 100 inodes"
// ("at most 10.0 MiB" when the space was not counted).
func quotaText(b api.BranchInfo) string {
	var parts []string
	if b.QuotaBytes > 0 {
		if b.ExclusiveBytes != nil {
			parts = append(parts, fmt.Sprintf("%s of %s", mib(*b.ExclusiveBytes), mib(b.QuotaBytes)))
		} else { // branch list without --space
			parts = append(parts, "at most "+mib(b.QuotaBytes))
		}
	}
	if b.QuotaInodes > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d inodes", b.InodesUsed, b.QuotaInodes))
	}
	if len(parts) == 0 {
		return "no quota"
	}
	return strings.Join(parts, ", ")
}
