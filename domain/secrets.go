package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
)

// SecretPrefix starts every secret reference: "secret:<32 hex characters>".
const SecretPrefix = "secret:"

// Redacted replaces secret values in API output.
const Redacted = "[redacted]"

// SecretRef returns the reference of a secret value under the store key:
// "secret:" + hex of the first 16 bytes of HMAC-SHA256(key, value). Equal values give
// equal references, so re-registering an unchanged config changes nothing.
func SecretRef(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	sum := m.Sum(nil)
	return SecretPrefix + hex.EncodeToString(sum[:16])
}

// IsSecretRef reports whether v has the exact shape of a secret reference.
func IsSecretRef(v string) bool {
	if len(v) != len(SecretPrefix)+32 || v[:len(SecretPrefix)] != SecretPrefix {
		return false
	}
	for i := len(SecretPrefix); i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// SealSecrets returns a copy of cfg whose header and env values are secret
// references, and the reference→value pairs the caller must store (Store.PutSecret)
// before appending the config. A value that is exactly a ${VAR} placeholder, or that
// already is a reference, is kept as is. cfg itself is not changed.
func SealSecrets(cfg ServerConfig, ref func(value string) string) (ServerConfig, map[string]string) {
	out := cfg.Clone()
	secrets := map[string]string{}
	seal := func(m map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			if IsPlaceholder(v) || IsSecretRef(v) {
				continue
			}
			r := ref(v)
			secrets[r] = v
			m[k] = r
		}
	}
	seal(out.Headers)
	seal(out.Env)
	editOAuthSecret(&out, func(v string) (string, bool) {
		if IsPlaceholder(v) || IsSecretRef(v) {
			return v, false
		}
		r := ref(v)
		secrets[r] = v
		return r, true
	})
	return out, secrets
}

// OAuthBlock is what mcpes reads of the LibreChat `oauth` block of a server (kept
// whole, unchanged, in Extra["oauth"]): a pre-registered client, and the scope to ask.
type OAuthBlock struct {
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// OAuthClient returns the config's `oauth` block, if any. Its client_secret is a
// secret reference (or a ${VAR} placeholder in the app scope) once sealed.
func (c ServerConfig) OAuthClient() (OAuthBlock, bool) {
	raw, ok := c.Extra["oauth"]
	if !ok {
		return OAuthBlock{}, false
	}
	var b OAuthBlock
	if err := json.Unmarshal(raw, &b); err != nil {
		return OAuthBlock{}, false
	}
	return b, true
}

// editOAuthSecret replaces oauth.client_secret in cfg.Extra (other keys of the
// block kept as they are) with edit's result when edit says so.
func editOAuthSecret(cfg *ServerConfig, edit func(string) (string, bool)) {
	raw, ok := cfg.Extra["oauth"]
	if !ok {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	var v string
	if json.Unmarshal(m["client_secret"], &v) != nil || v == "" {
		return
	}
	nv, change := edit(v)
	if !change {
		return
	}
	m["client_secret"], _ = json.Marshal(nv)
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	cfg.Extra["oauth"] = b
}

// RedactSecrets returns a copy of cfg for API output: every header and env value
// becomes "[redacted]" unless it is a ${VAR} placeholder.
func RedactSecrets(cfg ServerConfig) ServerConfig {
	out := cfg.Clone()
	for _, m := range []map[string]string{out.Headers, out.Env} {
		for k, v := range m {
			if !IsPlaceholder(v) {
				m[k] = Redacted
			}
		}
	}
	editOAuthSecret(&out, func(v string) (string, bool) { return Redacted, !IsPlaceholder(v) })
	return out
}
