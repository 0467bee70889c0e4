package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcpes/mcpes/handlers"
)

func newTokenCmd(e *env) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Access token helpers",
		Example: "  echo \"$MY_TOKEN\" | mcpes token hash"}
	c.AddCommand(&cobra.Command{
		Use:   "hash",
		Short: "Read a token on stdin and print the hex SHA-256 to put in auth.tokens",
		Long: `hash reads one token from standard input (the first line; a trailing newline is
dropped) and prints its hex SHA-256, the value of auth.tokens[].sha256. The token
itself never goes into the config file.`,
		Example: `  head -c 32 /dev/urandom | base64 > admin.token
  mcpes token hash < admin.token`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(e.stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("token hash: no token on stdin")
			}
			tok := strings.TrimRight(line, "\r\n")
			if tok == "" {
				return fmt.Errorf("token hash: empty token")
			}
			fmt.Fprintln(e.stdout, handlers.HashToken(tok))
			return nil
		},
	})
	return c
}
