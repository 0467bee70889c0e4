package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/oauth"
	"github.com/mcpes/mcpes/upstream"
)

// newBroker builds the OAuth broker of the service: grants and flows sealed in the
// credential store, events in the log, user-scope servers behind the SSRF guard.
// The redirect URL is set once the listener's address is known (setPublicURL).
func newBroker(m *Main, guard *upstream.Guard, nodeID string, log *slog.Logger) *oauth.Broker {
	guarded := guard.Client()
	guarded.Timeout = 30 * time.Second
	return &oauth.Broker{
		Client:  &oauth.Client{ClientName: "mcpes", ApplicationType: "web"},
		Guarded: guarded,
		Vault:   m.creds,
		Servers: func(owner, name string) (domain.ServerState, bool) {
			st, view, _ := m.servers.Effective(owner, name)
			return st, view.Found
		},
		Secret: func(ref string) (string, error) {
			b, err := m.creds.Secret(context.Background(), ref)
			return string(b), err
		},
		Env:    os.LookupEnv,
		Source: "mcpes://" + nodeID,
		OnChange: func(_, server string) {
			if m.manager != nil {
				m.manager.GrantChanged(server)
			}
		},
		Logger: log,
	}
}

// setPublicURL sets the callback (and, for an https public URL, the client ID
// metadata document URL) from oauth.publicURL, or from the listen address.
func setPublicURL(c *oauth.Client, public, listenAddr string) {
	if public == "" {
		public = "http://" + listenAddr
	}
	public = strings.TrimSuffix(public, "/")
	c.RedirectURL = public + handlers.CallbackPath
	if strings.HasPrefix(public, "https://") {
		c.ClientMetadataURL = public + handlers.ClientMetadataPath
	}
}

// clientMetadata is the document served at handlers.ClientMetadataPath, when mcpes
// has an https public URL to be identified by.
func clientMetadata(c *oauth.Client) map[string]any {
	if c.ClientMetadataURL == "" {
		return nil
	}
	return c.ClientMetadata()
}
