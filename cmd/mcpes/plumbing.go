package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/store"
)

// call sends one request to the running service named by --url and returns the
// raw answer and its status (see apiClient.call). A bad --url is a usage error.
func (e *env) call(ctx context.Context, method, path string, q url.Values, body []byte, out any) ([]byte, int, error) {
	cl, err := e.client()
	if err != nil {
		return nil, 0, err
	}
	return cl.call(ctx, method, path, q, body, out)
}

// change is call for the command what, which changes state: with --data it is
// refused with a usage error before anything is sent.
func (e *env) change(ctx context.Context, what, method, path string, q url.Values, body []byte, out any) ([]byte, int, error) {
	if err := e.refuseOffline(what); err != nil {
		return nil, 0, err
	}
	return e.call(ctx, method, path, q, body, out)
}

// printListFrom prints a list (see printList): with --data the one load reads from
// the stopped service's log, otherwise the answer of GET path from the running one.
// Errors opening the data directory, loading, or calling the API are returned as is.
func (e *env) printListFrom(ctx context.Context, load func(context.Context, store.Store) (any, error),
	path string, q url.Values, cols []column, keys ...string) error {
	var raw []byte
	if e.data != "" {
		st, err := openData(e.data)
		if err != nil {
			return err
		}
		defer st.Close()
		list, err := load(ctx, st)
		if err != nil {
			return err
		}
		if raw, err = json.Marshal(list); err != nil {
			return err
		}
	} else {
		var err error
		if raw, _, err = e.call(ctx, "GET", path, q, nil, nil); err != nil {
			return err
		}
	}
	return e.printList(raw, cols, keys...)
}

// printList prints an API answer as JSON (--json) or as a table.
func (e *env) printList(raw []byte, cols []column, keys ...string) error {
	if e.json {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return printJSON(e.stdout, v)
	}
	rows, err := listOf(raw, keys...)
	if err != nil {
		return err
	}
	return printTable(e.stdout, rows, cols)
}

// writeRaw copies an API answer to stdout as it came (for --json), plus a newline.
func (e *env) writeRaw(raw []byte) error {
	_, err := e.stdout.Write(append(raw, '\n'))
	return err
}

// readServerFile reads the one server config of the command what's -f FILE (YAML
// or JSON) and prints its warnings on stderr. A missing -f is a usage error; read
// and parse errors are returned as is.
func (e *env) readServerFile(what, file string) (domain.ServerConfig, error) {
	if file == "" {
		return domain.ServerConfig{}, usagef("%s: -f FILE is required", what)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return domain.ServerConfig{}, err
	}
	cfg, warns, err := config.ParseServer(data, file)
	if err != nil {
		return domain.ServerConfig{}, err
	}
	for _, w := range warns {
		fmt.Fprintf(e.stderr, "warning: %s: %s\n", file, w)
	}
	return cfg, nil
}
