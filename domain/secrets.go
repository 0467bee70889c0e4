package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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

// SealSecrets returns a copy of cfg whose header, env, requestHeaders and
// oauth_headers values, apiKey.key and oauth.client_secret are secret references, and the reference→value pairs the caller must store (Store.PutSecret)
// before appending the config. A value that is exactly a ${VAR} placeholder, that
// already is a reference, or that uses a {{VAR}} placeholder (a template completed
// per owner at connect, whose secret part is the owner's value) is kept as is. cfg
// itself is not changed.
func SealSecrets(cfg ServerConfig, ref func(value string) string) (ServerConfig, map[string]string) {
	out := cfg.Clone()
	secrets := map[string]string{}
	seal := func(m map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			if IsPlaceholder(v) || IsSecretRef(v) || usesUserPlaceholder(v) {
				continue
			}
			r := ref(v)
			secrets[r] = v
			m[k] = r
		}
	}
	seal(out.Headers)
	seal(out.Env)
	seal(out.RequestHeaders)
	seal(out.OAuthHeaders)
	sealOne := func(p *string) {
		if *p == "" || IsPlaceholder(*p) || IsSecretRef(*p) {
			return
		}
		r := ref(*p)
		secrets[r] = *p
		*p = r
	}
	if out.APIKey != nil {
		sealOne(&out.APIKey.Key)
	}
	if out.OAuth != nil {
		sealOne(&out.OAuth.ClientSecret)
	}
	return out, secrets
}

// OAuthClient returns the config's LibreChat `oauth` block (a pre-registered client
// and the scope to ask), if any. Its client_secret is a secret reference (or a ${VAR}
// placeholder in the app scope) once sealed.
func (c ServerConfig) OAuthClient() (OAuthConfig, bool) {
	if c.OAuth == nil {
		return OAuthConfig{}, false
	}
	return *c.OAuth, true
}

// RedactSecrets returns a copy of cfg for API output: every header, env,
// requestHeaders and oauth_headers value, apiKey.key and oauth.client_secret
// becomes "[redacted]" unless it is a ${VAR} placeholder.
func RedactSecrets(cfg ServerConfig) ServerConfig {
	out := cfg.Clone()
	for _, m := range []map[string]string{out.Headers, out.Env, out.RequestHeaders, out.OAuthHeaders} {
		for k, v := range m {
			if !IsPlaceholder(v) {
				m[k] = Redacted
			}
		}
	}
	redact := func(p *string) {
		if *p != "" && !IsPlaceholder(*p) {
			*p = Redacted
		}
	}
	if out.APIKey != nil {
		redact(&out.APIKey.Key)
	}
	if out.OAuth != nil {
		redact(&out.OAuth.ClientSecret)
	}
	return out
}

// usesUserPlaceholder reports whether v contains a {{NAME}} placeholder.
func usesUserPlaceholder(v string) bool {
	found := false
	replaceUserPlaceholders(v, func(string) string { found = true; return "" })
	return found
}
