package store

import (
	"crypto/rand"
	"encoding/hex"
)

func randSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
