package registry

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// SignatureFile is the signature's file name in a connector's folder.
const SignatureFile = "vrsky-connector.sig"

// signedMessage is what a signature covers: the module's SHA-256 and the
// manifest's, as hex, under a domain-separating prefix.
func signedMessage(moduleSHA256 string, manifest []byte) []byte {
	m := sha256.Sum256(manifest)
	return []byte("vrsky-connector-signature-v1\nmodule sha256:" + moduleSHA256 + "\nmanifest sha256:" + hex.EncodeToString(m[:]) + "\n")
}

// Sign returns the signature (base64) of a module and its manifest bytes.
func Sign(key ed25519.PrivateKey, module, manifest []byte) string {
	d := sha256.Sum256(module)
	sig := ed25519.Sign(key, signedMessage(hex.EncodeToString(d[:]), manifest))
	return base64.StdEncoding.EncodeToString(sig) + "\n"
}

// verify checks sig (base64) over the module digest and manifest against
// keys and returns the fingerprint of the key that signed.
func verify(keys []ed25519.PublicKey, sig []byte, moduleSHA256 string, manifest []byte) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return "", errors.New("the signature is not a base64 ed25519 signature (64 bytes)")
	}
	msg := signedMessage(moduleSHA256, manifest)
	for _, k := range keys {
		if ed25519.Verify(k, msg, raw) {
			return Fingerprint(k), nil
		}
	}
	if len(keys) == 0 {
		return "", errors.New("no trusted keys are configured to check it against")
	}
	return "", errors.New("no trusted key verifies it over this module and manifest")
}

// Fingerprint names a public key: "ed25519:" and the first 16 hex digits
// of its SHA-256.
func Fingerprint(k ed25519.PublicKey) string {
	d := sha256.Sum256(k)
	return "ed25519:" + hex.EncodeToString(d[:8])
}

// GenerateKey returns a new key pair as PEM: the private key (PKCS #8) and
// the public key (PKIX), the one to add to the trusted keys.
func GenerateKey() (private, public []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	px, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: px}), nil
}

// ParsePrivateKey reads a PEM PKCS #8 ed25519 private key.
func ParsePrivateKey(doc []byte) (ed25519.PrivateKey, error) {
	b, _ := pem.Decode(doc)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is a %T, not ed25519", k)
	}
	return ek, nil
}

// ParsePublicKeys reads every PEM "PUBLIC KEY" block (ed25519) of doc.
func ParsePublicKeys(doc []byte) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for {
		var b *pem.Block
		b, doc = pem.Decode(doc)
		if b == nil {
			break
		}
		if b.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is a %T, not ed25519", k)
		}
		out = append(out, ek)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM \"PUBLIC KEY\" block")
	}
	return out, nil
}
