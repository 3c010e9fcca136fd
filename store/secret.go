package store

import "crypto/rand"

// FingerprintKeySize is the length of a store's fingerprint key.
const FingerprintKeySize = 32

// NewFingerprintKey makes a random fingerprint key for a new store.
func NewFingerprintKey() []byte {
	k := make([]byte, FingerprintKeySize)
	_, _ = rand.Read(k) // never fails (crypto/rand since Go 1.24)
	return k
}
