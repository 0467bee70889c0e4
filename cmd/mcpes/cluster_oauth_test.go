package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/internal/testnats"
	"github.com/mcpes/mcpes/oauth/oauthtest"
)

// TestServe_ClusterNodesShareOAuthGrants: behind one public URL, an owner authorizes
// through one node, the callback lands on another, a third connects with the grant,
// a revocation on the first reaches the third, and every node's decisions replay.
func TestServe_ClusterNodesShareOAuthGrants(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server nats cluster")
	}
	// given three nodes on one nats cluster, one credential key, and an app server
	// that answers nobody without a token
	dir := t.TempDir()
	nc := testnats.StartCluster(t, 3, filepath.Join(dir, "nats"))
	as := oauthtest.Start(t)
	key, _ := credentials.GenerateKey("k1")
	t.Setenv(credentials.EnvKeys, key)
	const aliceTok, adminTok = "alice-api-token-0123456789", "admin-api-token-0123456789"
	const public = "http://mcpes.example.invalid"
	var bases []string
	for i := range 3 {
		_, base := runService(t, &config.Config{DataDir: filepath.Join(dir, fmt.Sprintf("node%d", i)), Listen: "127.0.0.1:0",
			NodeID:  fmt.Sprintf("node%d", i),
			Cluster: config.Cluster{URL: nc.URL(i), MaxStaleness: config.Duration(config.MinMaxStaleness)},
			OAuth:   config.OAuth{PublicURL: public},
			Auth: config.Auth{Tokens: []config.Token{{SHA256: handlers.HashToken(aliceTok), Role: config.RoleOwner, Owner: "alice"},
				{SHA256: handlers.HashToken(adminTok), Role: config.RoleAdmin}}},
			MCPServers: map[string]domain.ServerConfig{"gh": {Type: "streamable-http", URL: as.URL + "/mcp", InitTimeoutMS: 10000}}})
		bases = append(bases, base)
	}
	eventually(t, "gh to be known to need OAuth", func() bool {
		_, body := call(t, "GET", bases[2]+"/v1/servers/gh", adminTok)
		return strings.Contains(body, `"requiresOAuth":true`)
	})
	if code, body := call(t, "POST", bases[2]+"/v1/connections/gh", aliceTok); code != http.StatusForbidden || !strings.Contains(body, string(domain.RuleNoGrant)) {
		t.Fatalf("connect on node 2 before authorizing: %d %s", code, body)
	}

	// when alice starts authorizing on node 0 and the balancer sends the callback to
	// node 1
	code, body := call(t, "POST", bases[0]+"/v1/servers/gh/authorize", aliceTok)
	var ar handlers.AuthorizeResponse
	if code != http.StatusOK || json.Unmarshal([]byte(body), &ar) != nil {
		t.Fatalf("authorize on node 0: %d %s", code, body)
	}
	code, loc := call(t, "GET", ar.URL, "")
	if code != http.StatusFound || !strings.HasPrefix(loc, public+handlers.CallbackPath+"?") {
		t.Fatalf("authorization endpoint: %d %s", code, loc)
	}
	cb, _ := url.Parse(loc)
	if code, body := call(t, "GET", bases[1]+cb.RequestURI(), ""); code != http.StatusOK || !strings.Contains(body, "Authorized") {
		t.Fatalf("callback on node 1: %d %s", code, body)
	}

	// then node 2 connects with her grant (the server answers only a valid token)
	eventually(t, "node 2 to connect with the grant", func() bool {
		code, _ := call(t, "POST", bases[2]+"/v1/connections/gh", aliceTok)
		return code == http.StatusOK
	})

	// when the access token expires and node 2 connects again, then node 2 refreshes
	// it, once; node 0 then connects on the rotated tokens without presenting the old
	// refresh token (which the server would take for a stolen one)
	as.Expire()
	if code, body := call(t, "DELETE", bases[2]+"/v1/connections/gh", aliceTok); code >= 300 {
		t.Fatalf("disconnect on node 2: %d %s", code, body)
	}
	if code, body := call(t, "POST", bases[2]+"/v1/connections/gh", aliceTok); code != http.StatusOK {
		t.Fatalf("connect on node 2 after expiry: %d %s", code, body)
	}
	if code, body := call(t, "POST", bases[0]+"/v1/connections/gh", aliceTok); code != http.StatusOK {
		t.Fatalf("connect on node 0 after node 2 refreshed: %d %s", code, body)
	}
	if n := as.RefreshRequests.Load(); n != 1 || as.FamilyRevoked() {
		t.Fatalf("%d refreshes (want 1), refresh token reused: %v", n, as.FamilyRevoked())
	}

	// when she revokes on node 0, then node 2 refuses her and evicts its connection
	if code, body := call(t, "DELETE", bases[0]+"/v1/servers/gh/authorization", aliceTok); code != http.StatusOK {
		t.Fatalf("revoke on node 0: %d %s", code, body)
	}
	eventually(t, "node 2 to refuse after the revocation", func() bool {
		code, body := call(t, "POST", bases[2]+"/v1/connections/gh", aliceTok)
		return code == http.StatusForbidden && strings.Contains(body, string(domain.RuleNoGrant))
	})
	_, evs := call(t, "GET", bases[2]+"/v1/events?type=mcpes.connection.evicted.v1", adminTok)
	if !strings.Contains(evs, `"owner":"alice"`) {
		t.Errorf("node 2 did not evict alice's connection: %s", evs)
	}

	// and every node holds the grant's facts, explains them, and re-derives its own
	// decisions (node 2's name a grant that node 1 obtained)
	for i, base := range bases {
		eventually(t, fmt.Sprintf("node %d to hold the grant facts", i), func() bool {
			_, evs := call(t, "GET", base+"/v1/events?subject="+url.QueryEscape(domain.GrantStream("alice", "gh")), adminTok)
			return strings.Contains(evs, "mcpes.oauth.completed.v1") && strings.Contains(evs, "mcpes.token.revoked.v1")
		})
		if _, ex := call(t, "GET", base+"/v1/audit/explain?owner=alice&server=gh", adminTok); !strings.Contains(ex, "revoked (owner)") {
			t.Errorf("node %d explain: %s", i, ex)
		}
		if code, body := call(t, "POST", base+"/v1/audit/verify", adminTok); code != http.StatusOK || !strings.Contains(body, `"ok":true`) {
			t.Errorf("node %d verify: %d %s", i, code, body)
		}
	}
}
