// Package credentials encrypts every secret mcpes keeps (config header and env
// values, per-owner variables, OAuth client credentials, tokens and flow records)
// with AES-256-GCM before it reaches the data file. Keys live outside the data file:
// in MCPES_KEYS ("k2:<base64>,k1:<base64>", the first is active) or in a 0600 key
// file named in the config. Each sealed value names the key that sealed it, and the
// record's key (its ref) is the additional data, so a value copied under another
// ref (another owner's, say) does not decrypt.
package credentials

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// EnvKeys is the environment variable that holds the keys.
const EnvKeys = "MCPES_KEYS"

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// maxKeyID bounds a key id; ids are short names such as "k1" or "2026-12".
const maxKeyID = 32

// Keyring holds the encryption keys by id. The first is active: it seals new values;
// the others only open values sealed before a rotation. The zero Keyring has no key.
type Keyring struct {
	ids  []string
	aead map[string]cipher.AEAD
}

// ParseKeys reads "id:<base64 of 32 bytes>" entries separated by commas or newlines;
// blank lines and lines starting with # are skipped. Returns ErrBadKey naming the entry
// (never its value) when one is malformed, and ErrNoKey when there is none.
func ParseKeys(spec string) (*Keyring, error) {
	k := &Keyring{aead: map[string]cipher.AEAD{}}
	for _, f := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		f = strings.TrimSpace(f)
		if f == "" || strings.HasPrefix(f, "#") {
			continue
		}
		id, b64, ok := strings.Cut(f, ":")
		if !ok || !validID(id) {
			return nil, fmt.Errorf("%w: entry %d: want id:<base64>, id of 1-%d letters, digits, '-' or '_'", ErrBadKey, len(k.ids)+1, maxKeyID)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil || len(raw) != KeySize {
			return nil, fmt.Errorf("%w: key %q: want base64 of %d bytes", ErrBadKey, id, KeySize)
		}
		if _, dup := k.aead[id]; dup {
			return nil, fmt.Errorf("%w: key id %q twice", ErrBadKey, id)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrBadKey, id, err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrBadKey, id, err)
		}
		k.ids = append(k.ids, id)
		k.aead[id] = gcm
	}
	if len(k.ids) == 0 {
		return nil, ErrNoKey
	}
	return k, nil
}

// LoadKeys returns the keys from env (the value of MCPES_KEYS) when it is set, else
// from the key file at path when path is set; the file must not be readable or
// writable by group or others. Returns ErrNoKey when neither is given.
func LoadKeys(env, path string) (*Keyring, error) {
	if strings.TrimSpace(env) != "" {
		k, err := ParseKeys(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKeys, err)
		}
		return k, nil
	}
	if path == "" {
		return nil, ErrNoKey
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %v; chmod 600 it", ErrBadKey, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	k, err := ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// GenerateKey returns a new "id:<base64>" entry for MCPES_KEYS or a key file.
func GenerateKey(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("%w: key id %q", ErrBadKey, id)
	}
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(raw), nil
}

// Active returns the id of the key that seals new values ("" for a nil Keyring).
func (k *Keyring) Active() string {
	if k == nil || len(k.ids) == 0 {
		return ""
	}
	return k.ids[0]
}

// IDs returns the key ids, the active one first.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	return append([]string(nil), k.ids...)
}

func validID(id string) bool {
	if id == "" || len(id) > maxKeyID {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
