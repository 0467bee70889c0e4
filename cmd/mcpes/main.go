// Command mcpes runs the MCP connection manager (`mcpes serve`) and talks to it (or
// reads its data directory) for operators: servers, connections, the event log and
// its audit (verify, replay, explain, export). Run `mcpes --help` for the commands.
//
// Exit codes: 0 success, 1 failure (for example verify found a problem), 2 usage.
package main

import (
	"os"
)

func main() {
	os.Exit(Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
