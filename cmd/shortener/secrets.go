package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"shortener/secrets"
)

func secretsCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Make and rotate the NATS credentials: a CA, the servers' certificate, a user nkey per region and tool",
		Long: `A secrets folder holds what every NATS connection and listener needs:
ca.crt (the CAs trusted), ca.key, nats.crt and nats.key (the servers'
certificate, for routes, gateways and clients alike), users.json (every user's
role and public nkeys) and <user>.nk (each user's seed). Keys and seeds are
written 0600 in a 0700 folder. Give a region --secrets DIR, or each file by its
own flag. docs/security.md has the threat model and the rotation procedure.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "var/dev/secrets", "the secrets folder")

	var regions, hosts []string
	var validity time.Duration
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Make a new set: CA, servers' certificate, a user per region and tool",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(regions) == 0 {
				return usageError{errors.New("give the regions: --region NAME, once for each (--region us-east --region eu-west)")}
			}
			if err := secrets.Generate(dir, secrets.Options{Regions: regions, Hosts: hosts, Validity: validity}); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secrets for %d regions and the tools written to %s\n", len(regions), dir)
			return nil
		},
	}
	initCmd.Flags().StringSliceVar(&regions, "region", nil, "a region to make a user for (repeatable)")
	initCmd.Flags().StringSliceVar(&hosts, "host", nil, "an address or name the servers are reached at, added to their certificate (repeatable; the certificate always names "+secrets.ServiceName+")")
	initCmd.Flags().DurationVar(&validity, "validity", 0, "validity of the servers' certificate (default 397 days)")

	certCmd := &cobra.Command{
		Use:   "cert",
		Short: "Issue a fresh servers' certificate from the folder's CA (rotation: then restart the regions one at a time)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := secrets.Issue(dir, hosts, validity, time.Now()); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new %s and %s written to %s\n", secrets.CertFile, secrets.KeyFile, dir)
			return nil
		},
	}
	certCmd.Flags().StringSliceVar(&hosts, "host", nil, "an address or name the servers are reached at (repeatable)")
	certCmd.Flags().DurationVar(&validity, "validity", 0, "validity (default 397 days)")

	httpCmd := &cobra.Command{
		Use:   "http-cert",
		Short: "Issue an HTTPS certificate for the regions' HTTP listeners from the folder's CA (give it to a region with --tls-cert/--tls-key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := secrets.IssueHTTP(dir, hosts, validity, time.Now()); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new %s and %s written to %s\n", secrets.HTTPCertFile, secrets.HTTPKeyFile, dir)
			return nil
		},
	}
	httpCmd.Flags().StringSliceVar(&hosts, "host", nil, "an address or name clients reach the regions at (repeatable, at least one)")
	httpCmd.Flags().DurationVar(&validity, "validity", 0, "validity (default 397 days)")

	var out string
	exportCmd := &cobra.Command{
		Use:   "export REGION",
		Short: "Copy what one region's hosts need into --out: CA certificates, servers' certificate and key, users table, the region's seed (not the CA key, not other seeds)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("give --out, the folder for %s's hosts", args[0])}
			}
			if err := secrets.ExportRegion(dir, args[0], out); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s's credentials written to %s\n", args[0], out)
			return nil
		},
	}
	exportCmd.Flags().StringVar(&out, "out", "", "the folder to write (created 0700)")

	addKey := &cobra.Command{
		Use:   "add-key USER",
		Short: "Give a user a new nkey beside its old ones and write its seed to <user>.nk.next (rotation, step 1)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := secrets.AddKey(dir, args[0])
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: new key %s, its seed in %s (restart every region with the new users table, then use-key)\n", args[0], pub, secrets.NextSeedFile(dir, args[0]))
			return nil
		},
	}
	addUser := &cobra.Command{
		Use:   "add-user NAME",
		Short: "Add a tool's user (switch, audit, backup, bench, restore) to a folder made before that tool had one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := secrets.AddToolUser(dir, args[0])
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: key %s, its seed in %s (restart every region with the new users table to admit it)\n", args[0], pub, secrets.SeedFile(dir, args[0]))
			return nil
		},
	}
	useKey := &cobra.Command{
		Use:   "use-key USER",
		Short: "Put the new seed of add-key in use, once every region has the new users table (rotation, step 2)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := secrets.UseKey(dir, args[0])
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: seed of key %s in use (old keys still accepted until retire-keys)\n", args[0], pub)
			return nil
		},
	}
	retire := &cobra.Command{
		Use:   "retire-keys USER",
		Short: "Drop every key of a user but the newest (rotation, last step)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := secrets.RetireKeys(dir, args[0])
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: %d old keys retired\n", args[0], n)
			return nil
		},
	}
	cmd.AddCommand(initCmd, certCmd, httpCmd, exportCmd, addKey, addUser, useKey, retire)
	return cmd
}
