package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mcpes/mcpes/domain"
)

// ErrInvalid is wrapped by every *Error. It wraps domain.ErrInvalidConfig, so
// errors.Is(err, domain.ErrInvalidConfig) holds for a bad config file too.
var ErrInvalid = fmt.Errorf("invalid config file: %w", domain.ErrInvalidConfig)

// ErrTooLarge is returned (wrapped) for a config file larger than MaxFileSize.
var ErrTooLarge = errors.New("config file too large")

// ErrEmpty is returned (wrapped) for a config file with no content (0 bytes, or
// only comments): applying it would remove every server the file registered, which
// is never what an empty file means. A file that means "no servers" says
// "mcpServers: {}".
var ErrEmpty = errors.New("config file is empty")

// Problem is one thing wrong with (or, as a Warning, worth knowing about) a config
// file: where (server and field, or a top-level setting), why, and the line and
// column when the parser knows them (0 when not).
type Problem struct {
	// Server names the mcpServers entry, "" for mcpes's own settings.
	Server string `json:"server,omitempty"`
	// Field is the field of the server, or the dotted path of a setting.
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// Warning is a Problem that does not stop a file from loading (an unknown key).
type Warning = Problem

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d:%d: ", p.Line, p.Column)
	}
	switch {
	case p.Server != "" && p.Field != "":
		fmt.Fprintf(&b, "server %s, field %s: ", p.Server, p.Field)
	case p.Server != "":
		fmt.Fprintf(&b, "server %s: ", p.Server)
	case p.Field != "":
		fmt.Fprintf(&b, "%s: ", p.Field)
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Error lists every problem found in a config file. Nothing of a file that gives an
// Error is applied. It wraps ErrInvalid.
type Error struct {
	// File is the path of the file, or a name given to Parse.
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	name := e.File
	if name == "" {
		name = "config"
	}
	fmt.Fprintf(&b, "%s: %d problem", name, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return ErrInvalid }
