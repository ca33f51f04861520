package runtime

import (
	"errors"
	"testing"
)

// A payload reference is accepted only as a clean key under the tenant's
// own payload prefix whose claim-check marker key is valid; anything
// else is a permanent ErrPayloadRef, never repaired into another key.
func TestCheckPayloadRef(t *testing.T) {
	for _, tc := range []struct {
		name, ref string
		ok        bool
	}{
		{"the runtime's own object", "payloads/acme/orders/0192f1c2-7e1a-7b3c-9d4e-5f6a7b8c9d0e", true},
		{"a step's output object", "payloads/acme/orders/m1.o0", true},
		{"an idempotency key with dots", "payloads/acme/orders/k.1.2", true},
		{"dot-dot into another tenant", "payloads/acme/../globex/orders/m1", false},
		{"dot-dot back into the tenant", "payloads/acme/orders/../orders/m1", false},
		{"another tenant", "payloads/globex/orders/m1", false},
		{"a tenant whose name extends ours", "payloads/acme-x/orders/m1", false},
		{"dot segment", "payloads/acme/./m1", false},
		{"empty segment", "payloads/acme//m1", false},
		{"trailing slash", "payloads/acme/orders/", false},
		{"leading slash", "/payloads/acme/orders/m1", false},
		{"the prefix alone", "payloads/acme/", false},
		{"the prefix without its slash", "payloads/acme", false},
		{"double dot inside a segment", "payloads/acme/orders/a..b", false},
		{"segment starting with a dot", "payloads/acme/orders/.m1", false},
		{"segment ending with a dot", "payloads/acme/orders/m1.", false},
		{"outside payloads", "modules/acme/x", false},
		{"backslash", `payloads/acme/orders\..\..\globex`, false},
		{"not ASCII", "payloads/acme/orders/ü", false},
		{"NUL", "payloads/acme/orders/m\x001", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPayloadRef("acme", tc.ref)
			if tc.ok {
				if err != nil {
					t.Fatalf("checkPayloadRef(%q) = %v, want it accepted", tc.ref, err)
				}
				return
			}
			if !errors.Is(err, ErrPayloadRef) || !IsPermanent(err) {
				t.Fatalf("checkPayloadRef(%q) = %v, want a permanent ErrPayloadRef", tc.ref, err)
			}
		})
	}
	if err := checkPayloadRef("", "payloads//x"); !errors.Is(err, ErrPayloadRef) {
		t.Fatalf("no tenant: err = %v, want ErrPayloadRef", err)
	}
}

// FuzzCheckPayloadRef checks that an accepted reference is under the
// tenant's prefix and makes a valid claim-check marker key.
func FuzzCheckPayloadRef(f *testing.F) {
	for _, s := range []string{"payloads/acme/o/m1", "payloads/acme/../globex/x", "payloads/acme/a..b", "payloads/acme//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if checkPayloadRef("acme", ref) != nil {
			return
		}
		if len(ref) <= len("payloads/acme/") || ref[:len("payloads/acme/")] != "payloads/acme/" {
			t.Fatalf("accepted %q outside the tenant's prefix", ref)
		}
		if err := checkStateKey(markerKey(ref, "api")); err != nil {
			t.Fatalf("accepted %q, whose marker key is invalid: %v", ref, err)
		}
	})
}
