package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
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

// requestCmd sends one HTTP request and prints the status line and the
// body: the images are FROM scratch, so this is the curl an operator (and
// the compose test) has inside a region's network.
func requestCmd() *cobra.Command {
	var data, ca string
	var headers []string
	var insecure bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "request METHOD URL",
		Short: "Send one HTTP request, print the status line and the body, never follow a redirect (the curl of the FROM scratch image)",
		Args:  exactArgs(2, "METHOD URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var body io.Reader
			if data != "" {
				body = strings.NewReader(data)
			}
			req, err := http.NewRequestWithContext(ctx, strings.ToUpper(args[0]), args[1], body)
			if err != nil {
				return usageError{err}
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok {
					return usageError{fmt.Errorf("--header %q: want NAME: VALUE", h)}
				}
				req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
			if ca != "" {
				if tc.RootCAs, err = caPool(ca); err != nil {
					return usageError{err}
				}
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("%s: %v", args[1], shortErr(err))
			}
			defer resp.Body.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n\n", resp.Proto, resp.Status)
			_, err = io.Copy(cmd.OutOrStdout(), io.LimitReader(resp.Body, 1<<20))
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&data, "data", "", "the request body")
	fl.StringArrayVar(&headers, "header", nil, "a header, NAME: VALUE (repeatable)")
	fl.StringVar(&ca, "ca", "", "for an https URL, trust the CA certificates in this file")
	fl.BoolVar(&insecure, "insecure", false, "for an https URL, do not verify the certificate")
	fl.DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	return cmd
}
