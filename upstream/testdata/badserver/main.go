// Command badserver is a misbehaving stdio "MCP server" for the upstream tests.
//
//	badserver hang      reads stdin and never answers
//	badserver garbage   answers every line with text that is not JSON-RPC
//	badserver exit      writes to stderr and exits with status 3 at once
//	badserver initerr   answers every request with a JSON-RPC error
//
// With PIDFILE set it first writes its pid there.
//
//	badserver secret    prints the value of $SECRET_TOKEN on stderr, then exits 1
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
)

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	if f := os.Getenv("PIDFILE"); f != "" {
		_ = os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	switch mode {
	case "exit":
		fmt.Fprintln(os.Stderr, "badserver: giving up")
		os.Exit(3)
	case "secret":
		fmt.Fprintln(os.Stderr, "token is", os.Getenv("SECRET_TOKEN"))
		os.Exit(1)
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch mode {
		case "garbage":
			fmt.Println("Server starting... this is not JSON-RPC")
		case "initerr":
			var req struct {
				ID any `json:"id"`
			}
			if json.Unmarshal(sc.Bytes(), &req) == nil && req.ID != nil {
				b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID,
					"error": map[string]any{"code": -32600, "message": "go away"}})
				fmt.Println(string(b))
			}
		}
	}
	// hang: also ignore stdin EOF, until killed.
	if mode == "hang" {
		select {}
	}
}
