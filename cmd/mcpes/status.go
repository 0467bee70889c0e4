package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func newStatusCmd(e *env) *cobra.Command {
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "status [--wait]",
		Short: "Whether the service is up and ready (startup inspection done)",
		Long: `status asks the running service for /healthz and /readyz. With --wait it polls until
the service is ready or --timeout passes. Exit 1 when it is not ready.`,
		Example: `  mcpes status
  mcpes status --wait --timeout 2m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			for {
				ready, detail, err := cl.ready(ctx)
				if ready {
					fmt.Fprintln(e.stdout, "ready")
					return nil
				}
				if !wait || ctx.Err() != nil {
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "not ready %s\n", detail)
					return errReported
				}
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "wait until the service is ready")
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long --wait waits")
	return c
}

// ready reports GET /readyz: true on 200, with the body as detail otherwise.
func (c *apiClient) ready(ctx context.Context) (bool, string, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.do(rctx, "GET", "/readyz", nil, nil, "application/json")
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == 503 {
			return false, ae.Message, nil
		}
		return false, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return true, "", nil
}
