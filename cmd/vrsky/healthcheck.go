package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// defaultHealthURL is what `vrsky healthcheck` probes without --url: the
// /healthz of a vrsky serve listening on the container image's address.
const defaultHealthURL = "http://127.0.0.1:8080/healthz"

// newHealthcheckCmd is `vrsky healthcheck`: one GET that succeeds on a 2xx
// answer and fails otherwise. Container images without a shell or curl
// (distroless, scratch) run it as their HEALTHCHECK.
func newHealthcheckCmd() *cobra.Command {
	var url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a vrsky serve's /healthz (or /readyz): exit 0 on a 2xx answer, 1 otherwise",
		Long: "Sends one GET to --url and exits 0 when the answer is 2xx, 1 otherwise (the status and the start of the body are printed).\n" +
			"Made for container HEALTHCHECKs in images with no shell or curl.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return probe(cmd.Context(), url, timeout, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&url, "url", defaultHealthURL, "URL to GET (VRSKY_HEALTHCHECK_URL)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	// Not envDefaults: VRSKY_URL is the client commands' API URL.
	cmd.PreRun = func(cmd *cobra.Command, _ []string) {
		if v, ok := os.LookupEnv("VRSKY_HEALTHCHECK_URL"); ok && !cmd.Flags().Changed("url") {
			url = v
		}
	}
	return cmd
}

// probe GETs url within timeout; a non-2xx status is an error naming it.
func probe(ctx context.Context, url string, timeout time.Duration, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck --url %q: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("healthcheck: GET %s: %s: %s", url, resp.Status, body)
	}
	fmt.Fprintf(out, "%s: %s\n", url, resp.Status)
	return nil
}
