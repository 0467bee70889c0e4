package credentials

import (
	"bytes"
	"crypto/rand"
	"fmt"
)

// magic starts every sealed value: "mcpes-aead1" and a zero byte, then the key id's
// length (one byte), the key id, a 12-byte nonce and the AES-256-GCM ciphertext.
var magic = []byte("mcpes-aead1\x00")

// aadPrefix binds a sealed value to the record key it is stored under.
const aadPrefix = "mcpes-secret\x00"

// IsSealed reports whether b has the shape of a sealed value.
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, magic) }

// Seal encrypts plain under the active key with ref as additional data.
// Returns ErrNoKey for a Keyring without keys.
func (k *Keyring) Seal(ref string, plain []byte) ([]byte, error) {
	id := k.Active()
	if id == "" {
		return nil, ErrNoKey
	}
	a := k.aead[id]
	out := make([]byte, 0, len(magic)+1+len(id)+a.NonceSize()+len(plain)+a.Overhead())
	out = append(out, magic...)
	out = append(out, byte(len(id)))
	out = append(out, id...)
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return a.Seal(out, nonce, plain, []byte(aadPrefix+ref)), nil
}

// Open decrypts a sealed value stored under ref and says which key sealed it.
// Returns ErrPlaintext for a value that is not sealed, ErrUnknownKey for a key id
// not in the ring, and ErrDecrypt when authentication fails (changed bytes, or a
// value copied from another ref).
func (k *Keyring) Open(ref string, sealed []byte) (plain []byte, keyID string, err error) {
	if !IsSealed(sealed) {
		return nil, "", ErrPlaintext
	}
	rest := sealed[len(magic):]
	if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
		return nil, "", fmt.Errorf("%w: truncated", ErrDecrypt)
	}
	keyID, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	if k == nil {
		return nil, keyID, ErrNoKey
	}
	a, ok := k.aead[keyID]
	if !ok {
		return nil, keyID, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	if len(rest) < a.NonceSize()+a.Overhead() {
		return nil, keyID, fmt.Errorf("%w: truncated", ErrDecrypt)
	}
	plain, err = a.Open(nil, rest[:a.NonceSize()], rest[a.NonceSize():], []byte(aadPrefix+ref))
	if err != nil {
		return nil, keyID, ErrDecrypt
	}
	if plain == nil {
		plain = []byte{}
	}
	return plain, keyID, nil
}
