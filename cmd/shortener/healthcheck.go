package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"shortener/secrets"
)

// caPool reads a CA file for a command's HTTPS client.
func caPool(path string) (*x509.CertPool, error) { return secrets.CAPool(path) }

// healthcheckCmd is what the containers' HEALTHCHECK runs (compose/): images
// are built FROM scratch, so there is no curl or wget, only this binary.
func healthcheckCmd() *cobra.Command {
	var timeout time.Duration
	var ca string
	cmd := &cobra.Command{
		Use:   "healthcheck URL",
		Short: "Exit 0 if GET URL answers 2xx within --timeout, else 1 (for container health checks)",
		Args:  exactArgs(1, "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
			if err != nil {
				return usageError{err}
			}
			client := http.DefaultClient
			if ca != "" {
				pool, err := caPool(ca)
				if err != nil {
					return usageError{err}
				}
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}}
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("%s: %v", args[0], shortErr(err))
			}
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("%s: %s", args[0], resp.Status)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "give up after this long")
	cmd.Flags().StringVar(&ca, "ca", "", "for an https URL, trust the CA certificates in this file")
	return cmd
}
