package registry

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// InspectMode says when Put inspects a server it registered or changed.
type InspectMode string

// Inspection modes of Options.InspectOnPut.
const (
	// InspectAsync inspects in the background; Put returns before the result is recorded.
	InspectAsync InspectMode = "async"
	// InspectSync inspects before Put returns (tests, the CLI).
	InspectSync InspectMode = "sync"
	// InspectOff never inspects on Put.
	InspectOff InspectMode = "off"
)

// Defaults of Options.
const (
	DefaultStartupConcurrency = 8
	DefaultConflictRetries    = 5
	DefaultNodeID             = "local"
)

// Options configure a Service. The zero value is valid: every field has a default.
type Options struct {
	// InspectOnPut says when Put inspects (default InspectAsync).
	InspectOnPut InspectMode
	// NodeID names this node in event sources: mcpes://<NodeID> (default "local").
	NodeID string
	// Source, when set, is the event source instead (the service adds its version:
	// mcpes://<NodeID>?version=<v>).
	Source string
	// ConflictRetries bounds how often a command re-reads the projection after a
	// stream version conflict (default 5).
	ConflictRetries int
	// StartupConcurrency is StartupInspect's default bound (default 8).
	StartupConcurrency int
	// LookupEnv expands ${VAR} placeholders of app-scope configs (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Now is the clock of event times (default time.Now).
	Now func() time.Time
	// Logger receives the service's logs (default slog.Default()).
	Logger *slog.Logger
	// Inspector runs one inspection (default: the upstream adapter).
	Inspector InspectFunc
	// MaxMessageBytes bounds one message an inspection reads from a server (0: the
	// upstream default); passed on in InspectRequest.
	MaxMessageBytes int64
	// Claims, on a cluster, lets one node at a time inspect a server config (nil: this
	// node inspects whatever it is asked to).
	Claims Claimer
}

func (o *Options) setDefaults() {
	if o.InspectOnPut == "" {
		o.InspectOnPut = InspectAsync
	}
	if o.NodeID == "" {
		o.NodeID = DefaultNodeID
	}
	if o.Source == "" {
		o.Source = "mcpes://" + o.NodeID
	}
	if o.ConflictRetries == 0 {
		o.ConflictRetries = DefaultConflictRetries
	}
	if o.StartupConcurrency == 0 {
		o.StartupConcurrency = DefaultStartupConcurrency
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Inspector == nil {
		o.Inspector = UpstreamInspector
	}
}

// Validate checks the options after defaults are applied. Returns an error naming the
// first bad field.
func (o Options) Validate() error {
	switch o.InspectOnPut {
	case InspectAsync, InspectSync, InspectOff:
	default:
		return fmt.Errorf("registry options: InspectOnPut %q: want async, sync or off", o.InspectOnPut)
	}
	if strings.ContainsAny(o.NodeID, " /\t\n") {
		return fmt.Errorf("registry options: NodeID %q: no spaces or slashes", o.NodeID)
	}
	if o.ConflictRetries < 1 {
		return fmt.Errorf("registry options: ConflictRetries %d: want at least 1", o.ConflictRetries)
	}
	if o.StartupConcurrency < 1 {
		return fmt.Errorf("registry options: StartupConcurrency %d: want at least 1", o.StartupConcurrency)
	}
	return nil
}
