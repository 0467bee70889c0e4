package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
		OnAuthorized: func(owner, server string) {
			st, view, _ := m.servers.Effective(owner, server)
			if !view.Found || st.LastSuccess != nil || m.registry == nil {
				return
			}
			// A server that answers nobody without a token has no catalogue yet:
			// inspect it once with this owner's grant.
			m.bg.Go(func() {
				wrap := func(base http.RoundTripper) http.RoundTripper { return m.oauth.Transport(owner, server, base) }
				if _, err := m.registry.InspectAs(context.Background(), st.Scope, server, owner, wrap); err != nil {
					log.Warn("inspection with the owner's grant", "owner", owner, "server", server, "err", err)
				}
			})
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

func newAuthorizeCmd(e *env) *cobra.Command {
	var owner string
	var revoke bool
	c := &cobra.Command{
		Use:   "authorize NAME [--owner ID] [--revoke]",
		Short: "Print the URL where an owner authorizes mcpes to use an OAuth server (or, with --revoke, drop the grant)",
		Long: `authorize starts an OAuth authorization of server NAME for an owner (an owner token:
its own; an admin: --owner) and prints the URL to open in a browser. After the
authorization server redirects back to mcpes, that owner's connections carry the
token. With --revoke it drops the owner's grant, tells the authorization server where
it supports revocation, and the open connection is evicted.`,
		Example: `  MCPES_TOKEN=$ALICE mcpes authorize github
  mcpes authorize github --owner alice --revoke`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/servers/" + url.PathEscape(args[0])
			if revoke {
				var out struct {
					Told bool `json:"authorizationServerNotified"`
				}
				if _, _, err := e.change(cmd.Context(), "authorize --revoke", "DELETE", path+"/authorization", ownerQuery(owner), nil, &out); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "authorization of %s revoked (authorization server notified: %t)\n", args[0], out.Told)
				return nil
			}
			var out handlers.AuthorizeResponse
			if _, _, err := e.change(cmd.Context(), "authorize", "POST", path+"/authorize", ownerQuery(owner), nil, &out); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, out.URL)
			return nil
		},
	}
	c.Flags().StringVar(&owner, "owner", "", "owner who authorizes (admin only)")
	c.Flags().BoolVar(&revoke, "revoke", false, "drop the owner's grant instead")
	return c
}
