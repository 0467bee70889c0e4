package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/store"
)

// clientPrefix keys the dynamic registrations the broker keeps, by issuer hash.
const clientPrefix = domain.OAuthRecordPrefix + "client/"

// registrations is the Broker's RegistrationCache: sealed in the Vault, keyed by the
// issuer and the redirect URL (a registration names its redirect URIs).
type registrations struct{ b *Broker }

func (r registrations) ref(issuer string) string {
	h := sha256.Sum256([]byte(issuer + "\x00" + r.b.Client.RedirectURL))
	return clientPrefix + hex.EncodeToString(h[:16])
}

func (r registrations) Registration(ctx context.Context, issuer string) (*Registration, error) {
	raw, err := r.b.Vault.Secret(ctx, r.ref(issuer))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var reg Registration
	if err := json.Unmarshal(raw, &reg); err != nil {
		return nil, err
	}
	return &reg, nil
}

func (r registrations) SaveRegistration(ctx context.Context, issuer string, reg Registration) error {
	b, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	return r.b.Vault.Update(ctx, r.ref(issuer), func([]byte, bool) ([]byte, error) { return b, nil })
}

// probe asks the server for its challenge: an unauthenticated initialize.
func (b *Broker) probe(ctx context.Context, hc *http.Client, serverURL string) Challenge {
	body := []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
		`"capabilities":{},"clientInfo":{"name":"mcpes","version":"probe"}}}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, bytes.NewReader(body))
	if err != nil {
		return Challenge{}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return Challenge{}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	ch, _ := ParseChallenge(resp.Header.Values("WWW-Authenticate"))
	return ch
}
