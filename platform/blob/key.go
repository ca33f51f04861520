package blob

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidKey: the key does not follow the key rules of Store.
var ErrInvalidKey = errors.New("invalid object key")

// MaxKeyLen bounds a key's length, below what S3 (1024 bytes) allows.
const MaxKeyLen = 900

// ValidateKey reports whether key is a slash-separated path of non-empty
// [A-Za-z0-9._-] segments, none of them "." or "..". Every implementation
// checks keys with it, so a key valid on one backend is valid on all.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %q: length must be 1..%d", ErrInvalidKey, key, MaxKeyLen)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q: empty, \".\" or \"..\" segment", ErrInvalidKey, key)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: %q: character %q not allowed", ErrInvalidKey, key, c)
			}
		}
	}
	return nil
}
